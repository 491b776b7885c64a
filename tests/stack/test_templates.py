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
    # Rendering writes nothing: prepare() does, and no server was prepared.
    assert not (tmp_path / "state").exists()


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

    hosts = ("127.0.0.2", "127.0.0.3")
    node = Cassandra(StackSettings(state_dir=tmp_path), CassandraNode(1, hosts[0], 31000, hosts))
    config = node.config_files()[node.home / "conf" / "cassandra.yaml"]
    assert 'seeds: "127.0.0.2:17000,127.0.0.3:17000"\n' in config
    assert config.endswith("auto_snapshot: false\nauto_bootstrap: false\n")
    alone = Cassandra(StackSettings(state_dir=tmp_path))
    assert alone.config_files()[alone.home / "conf" / "cassandra.yaml"].endswith(
        "auto_snapshot: false\n"
    )


def test_a_placeholder_without_a_value_fails_loudly():
    with pytest.raises(KeyError, match="node_id"):
        render_template("kafka/server.properties", host="127.0.0.1")
