"""The servers' configuration files: package-data templates, rendered with no server running."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import pytest

from peaceland.stack import StackSettings
from peaceland.stack.kube import Etcd, KubeApiServer
from peaceland.stack.servers import (
    Cassandra,
    CassandraNode,
    Kafka,
    KafkaNode,
    Postgres,
    Server,
    render_template,
)


def every_server(tmp_path: Path) -> list[Server]:
    """Every kind of server the stack and the fault tests' clusters start, none started."""
    settings = StackSettings(state_dir=tmp_path / "state")
    voters = ((1, 30001), (2, 30002), (3, 30003))
    hosts = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    return [
        Kafka(settings),
        Kafka(settings, KafkaNode(2, 29092, 30002, voters, "cluster", auto_create_topics=True)),
        Cassandra(settings),
        Cassandra(settings, CassandraNode(2, hosts[1], 31000, hosts)),
        Postgres(settings),
        Etcd(settings),
        KubeApiServer(settings),
    ]


def templates() -> list[str]:
    """Every template of the package, as ``<server>/<file>``."""
    found: list[str] = []

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            else:
                found.append(f"{prefix}{entry.name}")

    walk(files("peaceland.stack") / "templates", "")
    return sorted(found)


def test_the_templates_are_package_data():
    assert templates() == [
        "cassandra/cassandra.yaml",
        "cassandra/logback.xml",
        "kafka/log4j2.properties",
        "kafka/server.properties",
    ]


def test_every_template_renders_completely_with_what_its_server_gives(tmp_path: Path):
    rendered: set[str] = set()
    for server in every_server(tmp_path):
        for path, text in server.config_files().items():
            assert "$" not in text, f"{path} keeps a placeholder:\n{text}"
            assert path.is_relative_to(server.home)
            rendered.add(f"{server.name.split('-')[0]}/{path.name}")
    assert rendered == set(templates())
    # Rendering writes nothing but the administrator's credentials (made on first use, mode
    # 0600): prepare() does, and no server was prepared.
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["credentials"]
    for secret in (tmp_path / "state" / "credentials").iterdir():
        assert secret.stat().st_mode & 0o777 == 0o600


def test_the_settings_reach_the_rendered_files(tmp_path: Path):
    voters = ((1, 30001), (2, 30002), (3, 30003))
    kafka = Kafka(StackSettings(state_dir=tmp_path), KafkaNode(2, 29092, 30002, voters))
    properties = kafka.config_files()[kafka.home / "server.properties"]
    assert "node.id=2\n" in properties
    assert "controller.quorum.voters=1@127.0.0.1:30001,2@127.0.0.1:30002,3@127.0.0.1:30003\n" in (
        properties
    )
    assert f"log.dirs={tmp_path}/kafka-2/data\n" in properties
    assert "auto.create.topics.enable=false\n" in properties
    assert "min.insync.replicas=2\n" in properties
    # Security on: SASL/SCRAM for clients, deny without an ACL, the administrator alone super.
    password = (tmp_path / "credentials" / "kafka-admin-password").read_text().strip()
    assert "listeners=SASL_PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:30002\n" in properties
    assert "allow.everyone.if.no.acl.found=false\n" in properties
    assert "super.users=User:peaceland-admin\n" in properties
    assert f'password="{password}"' in properties

    hosts = ("127.0.0.2", "127.0.0.3")
    node = Cassandra(StackSettings(state_dir=tmp_path), CassandraNode(1, hosts[0], 31000, hosts))
    config = node.config_files()[node.home / "conf" / "cassandra.yaml"]
    assert 'seeds: "127.0.0.2:17000,127.0.0.3:17000"\n' in config
    assert "authenticator: PasswordAuthenticator\nauthorizer: CassandraAuthorizer\n" in config
    assert config.endswith("credentials_validity: 2000ms\nauto_bootstrap: false\n")
    alone = Cassandra(StackSettings(state_dir=tmp_path))
    assert alone.config_files()[alone.home / "conf" / "cassandra.yaml"].endswith(
        "credentials_validity: 2000ms\n"
    )


def test_a_placeholder_without_a_value_fails_loudly():
    with pytest.raises(KeyError, match="node_id"):
        render_template("kafka/server.properties", host="127.0.0.1")
