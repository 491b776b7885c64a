"""The environment the local node gives a force's processes is what their settings read."""

from __future__ import annotations

from pathlib import Path

import pytest

from peaceland.node.errors import NodeError
from peaceland.node.launch import ForceServices, local_operator
from peaceland.operator.settings import OperatorSettings
from peaceland.services.alerter.settings import AlerterSettings
from peaceland.services.archiver.settings import ArchiverSettings
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.stack import Endpoints
from peaceland.tenants.cassandra import CassandraAccess
from peaceland.tenants.kafka import KafkaAccess
from peaceland.tenants.provisioning.identities import ForceCredentials

ENDPOINTS = Endpoints(
    KafkaAccess("kafka:9092", "peaceland-admin", "admin-password"),
    CassandraAccess("cassandra:9042", username="peaceland-admin", password="admin-password"),
    "postgresql://db",
)
CREDENTIALS = ForceCredentials.generate("lyon-metropole", 3)


def _services(tmp_path: Path) -> ForceServices:
    return ForceServices(
        ENDPOINTS,
        "lyon-metropole",
        tmp_path,
        drone_key="k" * 24,
        credentials=CREDENTIALS,
        settings_file=tmp_path / "force.json",
    )


def _configure(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_the_local_consumers_read_their_force_and_servers(tmp_path, monkeypatch):
    services = _services(tmp_path)
    _configure(monkeypatch, services.processes["alerter"].env)
    alerter = AlerterSettings()
    assert alerter.force_id == "lyon-metropole"
    assert alerter.kafka_bootstrap_servers == "kafka:9092"
    assert alerter.cassandra_contact_points == "cassandra:9042"
    assert alerter.settings_file == tmp_path / "force.json"
    assert alerter.instance == "lyon-metropole-local"
    assert alerter.metrics_port > 0

    monkeypatch.undo()
    _configure(monkeypatch, services.processes["archiver"].env)
    archiver = ArchiverSettings()
    assert archiver.force_id == "lyon-metropole"
    assert archiver.metrics_port > 0
    assert archiver.metrics_port != alerter.metrics_port


def test_the_local_gateway_accepts_the_force_drone_key(tmp_path, monkeypatch):
    services = _services(tmp_path)
    _configure(monkeypatch, services.processes["gateway"].env)
    gateway = GatewaySettings()
    assert gateway.port == services.gateway_port
    assert gateway.kafka_bootstrap_servers == "kafka:9092"
    assert [k.get_secret_value() for k in gateway.drone_keys["lyon-metropole"]] == ["k" * 24]


def test_a_local_gateway_on_the_control_plane_takes_its_keys_from_it_only(tmp_path, monkeypatch):
    token = tmp_path / "gateway-token"
    token.write_text("t" * 32)
    services = ForceServices(
        ENDPOINTS, "lyon-metropole", tmp_path, drone_key=None, credentials=CREDENTIALS,
        control_plane=("http://127.0.0.1:8090", token),
    )  # fmt: skip
    _configure(monkeypatch, services.processes["gateway"].env)
    gateway = GatewaySettings()
    assert gateway.control_plane_url == "http://127.0.0.1:8090"
    assert gateway.drone_keys == {}
    with pytest.raises(NodeError, match="control plane only"):
        ForceServices(
            ENDPOINTS, "lyon-metropole", tmp_path, drone_key="k" * 24, credentials=CREDENTIALS,
            control_plane=("http://127.0.0.1:8090", token),
        )  # fmt: skip


def test_the_local_operator_reads_its_namespaces_and_extra_settings(tmp_path, monkeypatch):
    process = local_operator(
        ENDPOINTS, tmp_path / "kubeconfig", tmp_path, namespaces=["a", "b"], drift_interval="7"
    )
    _configure(monkeypatch, process.env)
    settings = OperatorSettings()
    assert settings.namespaces == ["a", "b"]
    assert settings.drift_interval == 7
    assert settings.kafka_bootstrap_servers == "kafka:9092"
