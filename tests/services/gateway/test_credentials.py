"""A gateway in a cluster produces each force's reports as that force's own principal, read
from the force's credentials Secret on the real API server, signing in to the real Kafka."""

from __future__ import annotations

import base64
import json
import random
import time
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from peaceland.node.launch import local_credentials
from peaceland.services.gateway.app import create_app
from peaceland.services.gateway.credentials import SecretCredentials, kube_client
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.stack import Endpoints, Stack
from peaceland.stack.kube import KubeApiServer
from peaceland.tenants.forces import ForceResources
from peaceland.tenants.provisioning.identities import secret_name
from peaceland.tenants.reports import encode_report
from tests.factories import make_report
from tests.kafka_helpers import kafka_fields
from tests.operator.kube_helpers import Kubectl

pytestmark = pytest.mark.servers

KEY = "drone-key-0123456789abcdef"


def _write_secret(kubectl: Kubectl, namespace: str, force_id: str, data: dict[str, str]) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(force_id), "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(secret))


def _gateway_pair(username: str, password: str) -> dict[str, str]:
    return {"gateway.kafka-username": username, "gateway.kafka-password": password}


def test_a_forces_pair_is_read_from_its_secret_and_again_after_a_rotation(
    kubectl: Kubectl, kubernetes: KubeApiServer, namespace: str
) -> None:
    secrets = SecretCredentials(kube_client(kubernetes.kubeconfig), namespace, 0.2)
    try:
        assert secrets.get("lyon") is None  # no Secret yet
        _write_secret(kubectl, namespace, "lyon", _gateway_pair("lyon.gateway.g0", "a" * 43))
        secrets.refresh()
        assert secrets.get("lyon") == ("lyon.gateway.g0", "a" * 43)
        _write_secret(kubectl, namespace, "lyon", _gateway_pair("lyon.gateway.g1", "b" * 43))
        secrets.start()
        deadline = time.monotonic() + 10
        while secrets.get("lyon") != ("lyon.gateway.g1", "b" * 43):
            assert time.monotonic() < deadline, "the rotation was never read"
            time.sleep(0.1)
    finally:
        secrets.stop()


def test_an_api_that_cannot_answer_says_why_on_first_ask_and_a_known_pair_is_kept(
    kubectl: Kubectl, kubernetes: KubeApiServer, namespace: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # The admin's kubeconfig, pointed at a port where nothing answers.
    config = yaml.safe_load(kubernetes.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = "https://127.0.0.1:9"
    broken = tmp_path / "kubeconfig"
    broken.write_text(yaml.safe_dump(config))
    unreachable = SecretCredentials(kube_client(broken), namespace)
    with pytest.raises(ValueError, match="the Kubernetes API"):
        unreachable.get("lyon")
    unreachable.stop()

    _write_secret(kubectl, namespace, "lyon", _gateway_pair("lyon.gateway.g0", "a" * 43))
    working = kube_client(kubernetes.kubeconfig)
    known = SecretCredentials(working, namespace)
    assert known.get("lyon") == ("lyon.gateway.g0", "a" * 43)
    monkeypatch.setattr(known, "_client", kube_client(broken))
    working.close()
    known.refresh()  # the API away: the pair that works is kept
    assert known.get("lyon") == ("lyon.gateway.g0", "a" * 43)
    known.stop()


def test_a_deleted_secret_takes_the_pair_away(
    kubectl: Kubectl, kubernetes: KubeApiServer, namespace: str
) -> None:
    _write_secret(kubectl, namespace, "lyon", _gateway_pair("lyon.gateway.g0", "a" * 43))
    secrets = SecretCredentials(kube_client(kubernetes.kubeconfig), namespace)
    assert secrets.get("lyon") == ("lyon.gateway.g0", "a" * 43)
    kubectl("delete", "secret", secret_name("lyon"), "-n", namespace)
    secrets.refresh()
    assert secrets.get("lyon") is None
    secrets.stop()


def test_a_secret_without_a_gateway_pair_gives_none(
    kubectl: Kubectl, kubernetes: KubeApiServer, namespace: str
) -> None:
    _write_secret(kubectl, namespace, "lyon", {"cassandra-username": "x"})
    secrets = SecretCredentials(kube_client(kubernetes.kubeconfig), namespace)
    assert secrets.get("lyon") is None
    with pytest.raises(ValueError, match="force id"):
        secrets.get("../kube-system")
    secrets.stop()


def test_the_gateway_produces_as_the_pair_in_the_forces_secret(
    kubectl: Kubectl,
    kubernetes: KubeApiServer,
    namespace: str,
    force: ForceResources,
    endpoints: Endpoints,
    stack: Stack,
) -> None:
    """A wrong pair in the Secret is refused by Kafka (the gateway's own administrator
    credentials are never used instead); the right one, written over it, is taken up."""
    credentials = local_credentials(endpoints, force.force_id, stack.settings.state_dir)
    gateway = credentials.kafka["gateway"]
    _write_secret(kubectl, namespace, force.force_id, _gateway_pair(gateway.username, "x" * 43))
    settings = GatewaySettings(
        **kafka_fields(endpoints.kafka),
        drone_keys={force.force_id: [SecretStr(KEY)]},
        force_credentials_namespace=namespace,
        force_credentials_refresh_seconds=0.5,
        kubeconfig=kubernetes.kubeconfig,
        delivery_timeout_seconds=3,
    )
    body = encode_report(make_report(random.Random(7)))
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    with TestClient(create_app(settings)) as client:
        refused = client.post("/v1/reports", content=body, headers=headers)
        assert refused.status_code == 503, refused.text
        _write_secret(
            kubectl, namespace, force.force_id, _gateway_pair(gateway.username, gateway.password)
        )
        deadline = time.monotonic() + 30
        while (
            answer := client.post("/v1/reports", content=body, headers=headers)
        ).status_code != 202:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.5)


def test_two_sources_of_the_forces_credentials_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="two sources"):
        GatewaySettings(
            kafka_bootstrap_servers="kafka:9092",
            force_credentials_dir=tmp_path,
            force_credentials_namespace="forces",
        )
