"""The whole path a force's admin takes: a force sold through the API becomes Ready through the
operator, a drone key issued through the API is taken by the gateway, and once revoked it is
refused within seconds; the reports it sent are on the force's invoice."""

from __future__ import annotations

import json
import random
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from peaceland.api.app import bootstrap_admin, create_app
from peaceland.api.db import make_engine
from peaceland.api.migrate import upgrade
from peaceland.api.settings import ApiSettings
from peaceland.node.platform import LocalPlatform
from peaceland.operator import manifests
from peaceland.services.gateway.app import create_app as create_gateway
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.stack import Endpoints, Stack
from peaceland.stack.kube import KubeApiServer
from peaceland.tenants.reports import Citizen, encode_report
from tests.api.conftest import ADMIN_EMAIL, serving
from tests.factories import make_report
from tests.kafka_helpers import kafka_fields


@pytest.fixture
def platform(stack: Stack, kubernetes: KubeApiServer) -> Iterator[LocalPlatform]:
    namespace = f"t-api-{uuid.uuid4().hex[:8]}"
    platform = LocalPlatform(stack, manifests.definitions(), namespace=namespace)
    platform.start(lambda _: None)
    yield platform
    platform.kubectl("delete", "policeforce", "--all", "-n", namespace, "--timeout=60s")
    platform.stop()


def _report(drone_id: str, seed: int, *citizens: Citizen) -> dict[str, Any]:
    """A report of ``drone_id`` that sees ``citizens`` only (none: it raises no alert)."""
    report = make_report(random.Random(seed), citizens=0).model_copy(
        update={"drone_id": drone_id, "citizens": list(citizens)}
    )
    doc: dict[str, Any] = json.loads(encode_report(report))
    return doc


def test_a_force_sold_through_the_api_takes_its_drones_reports_until_a_key_is_revoked(
    platform: LocalPlatform,
    kubernetes: KubeApiServer,
    database_url: str,
    endpoints: Endpoints,
    tmp_path: Path,
):
    password = tmp_path / "admin-password"
    password.write_text(secrets.token_urlsafe(18))
    gateway_token = secrets.token_urlsafe(32)
    settings = ApiSettings(
        database_url=database_url,
        namespace=platform.namespace,
        kubeconfig=kubernetes.kubeconfig,
        gateway_token=gateway_token,
        bootstrap_admin_email=ADMIN_EMAIL,
        bootstrap_admin_password_file=password,
        kafka_replication_factor=1,
        cassandra_replication_factor=1,
        reconcile_seconds=1,
        kafka_bootstrap_servers=endpoints.kafka_bootstrap_servers,
        cassandra_contact_points=endpoints.cassandra_contact_points,
        cassandra_local_dc=endpoints.cassandra.local_dc,
        alert_meter_seconds=1,
    )
    engine = make_engine(settings.database_url)
    upgrade(engine)
    bootstrap_admin(settings, engine)
    with (
        serving(create_app(settings, engine=engine)) as api_url,
        httpx2.Client(base_url=api_url, timeout=30) as api,
    ):
        token = api.post(
            "/v1/auth/token", json={"email": ADMIN_EMAIL, "password": password.read_text()}
        )
        admin = {"Authorization": f"Bearer {token.json()['access_token']}"}
        plan = {
            "id": "city",
            "display_name": "City",
            "max_drones": 10,
            "max_reports_per_second": 50,
            "monthly_price_cents": 1000,
            "price_per_million_reports_cents": 1_000_000,
        }
        assert api.post("/v1/plans", json=plan, headers=admin).status_code == 201
        force_id = f"e2e-{uuid.uuid4().hex[:6]}"
        created = api.post(
            "/v1/forces",
            json={
                "id": force_id,
                "display_name": "E2E",
                "plan_id": "city",
                "deletion_policy": "Delete",
            },
            headers=admin,
        )
        assert created.status_code == 202, created.text
        deadline = time.monotonic() + 180
        while not (shown := api.get(f"/v1/forces/{force_id}", headers=admin).json())["status"][
            "ready"
        ]:
            assert time.monotonic() < deadline, shown["status"]
            time.sleep(0.5)
        assert {c["type"] for c in shown["status"]["conditions"]} >= {
            "TopicsReady",
            "ConsumersReady",
        }

        drones = f"/v1/forces/{force_id}/drones"
        assert api.post(drones, json={"id": "d-1"}, headers=admin).status_code == 201
        assert api.post(drones, json={"id": "d-2"}, headers=admin).status_code == 201
        issued = api.post(f"{drones}/d-1/keys", headers=admin).json()
        key = {"Authorization": f"Bearer {issued['key']}"}

        gateway_settings = GatewaySettings(
            **kafka_fields(endpoints.kafka),
            control_plane_url=api_url,
            control_plane_token=SecretStr(gateway_token),
            key_refresh_seconds=0.5,
            usage_interval_seconds=0.5,
        )
        with TestClient(create_gateway(gateway_settings)) as gateway:
            deadline = time.monotonic() + 30
            while gateway.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, gateway.get("/readyz").text
                time.sleep(0.2)
            wanted = Citizen(name="Wanted Person", score=0.0)  # below any threshold
            accepted = gateway.post(
                "/v1/reports",
                json=[_report("d-1", s, *([wanted] if s == 0 else [])) for s in range(5)],
                headers=key,
            )
            assert accepted.status_code == 202, accepted.text
            assert accepted.json()["accepted"] == 5
            # The key is d-1's: it cannot speak for d-2.
            other = gateway.post("/v1/reports", json=_report("d-2", 9), headers=key)
            assert other.status_code == 422
            assert "d-1" in other.json()["results"][0]["reason"]

            revoked_at = time.monotonic()
            gone = api.delete(f"{drones}/d-1/keys/{issued['key_id']}", headers=admin)
            assert gone.status_code == 204
            taken_meanwhile = 0
            while (
                answer := gateway.post("/v1/reports", json=_report("d-1", 7), headers=key)
            ).status_code != 401:
                assert answer.status_code == 202, answer.text
                taken_meanwhile += 1
                assert time.monotonic() - revoked_at < 30, "the revoked key is still taken"
                time.sleep(0.05)
            delay = time.monotonic() - revoked_at
            print(f"revocation refused by the gateway {delay:.2f} s after the API took it")  # noqa: T201

            def invoiced() -> int:
                invoice = api.get(f"/v1/forces/{force_id}/invoice", headers=admin).json()
                return int(invoice["reports_accepted"])

            deadline = time.monotonic() + 20
            expected = 5 + taken_meanwhile  # what was taken while the revocation travelled
            while invoiced() < expected:
                assert time.monotonic() < deadline, invoiced()
                time.sleep(0.2)
            time.sleep(1)  # another post or two: nothing is counted twice
            assert invoiced() == expected
            keys = api.get(f"{drones}/d-1/keys", headers=admin).json()
            assert keys[0]["last_used_at"] is not None

            # The one alert raised, counted once from the force's alerts topic.
            def billed() -> tuple[int, int]:
                invoice = api.get(f"/v1/forces/{force_id}/invoice", headers=admin).json()
                return int(invoice["alerts_raised"]), int(invoice["peak_storage_bytes"])

            deadline = time.monotonic() + 60
            while billed()[0] < 1:
                assert time.monotonic() < deadline, billed()
                time.sleep(0.5)
            assert billed()[0] == 1
    engine.dispose()
