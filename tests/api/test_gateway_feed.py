"""The gateway's drone-key feed outlives whatever fails while it reads: a token file missing
for a moment, the control plane away; revocations go on reaching it afterwards."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient
from fastapi.testclient import TestClient

from peaceland.services.gateway.app import create_app as create_gateway
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.stack import Endpoints
from peaceland.tenants.forces import resources_for
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics
from peaceland.tenants.reports import encode_report
from tests.api.conftest import Api, serving
from tests.factories import make_report
from tests.kafka_helpers import kafka_fields


def _report(drone_id: str) -> dict[str, Any]:
    report = make_report(random.Random(1)).model_copy(update={"drone_id": drone_id})
    doc: dict[str, Any] = json.loads(encode_report(report))
    return doc


def _until(check: Any, timeout: float, what: str) -> float:
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, what
        time.sleep(0.1)
    return time.monotonic() - began


def test_a_feed_that_failed_for_a_while_still_applies_revocations(
    api: Api, endpoints: Endpoints, kafka_admin: AdminClient, tmp_path: Path
):
    force_id = api.force(api.plan()["id"])["id"]
    ensure_topics(kafka_admin, resources_for(force_id), TopicSettings(partitions=1))
    drones = f"/v1/forces/{force_id}/drones"
    api.client.post(drones, json={"id": "d-1"}, headers=api.admin)
    issued = api.client.post(f"{drones}/d-1/keys", headers=api.admin).json()
    key = {"Authorization": f"Bearer {issued['key']}"}
    token = tmp_path / "gateway-token"
    token.write_text(api.gateway_token)
    try:
        with serving(api.app) as url:
            settings = GatewaySettings(
                **kafka_fields(endpoints.kafka),
                control_plane_url=url,
                control_plane_token_file=token,
                key_refresh_seconds=0.2,
            )
            with TestClient(create_gateway(settings)) as gateway:

                def status() -> int:
                    return gateway.post("/v1/reports", json=_report("d-1"), headers=key).status_code

                _until(lambda: status() == 202, 30, "the key taken")
                token.unlink()  # a Secret being replaced: the file gone for a moment
                time.sleep(1)
                assert status() == 202  # the keys it has still work meanwhile
                token.write_text(api.gateway_token)
                api.client.delete(f"{drones}/d-1/keys/{issued['key_id']}", headers=api.admin)
                _until(lambda: status() == 401, 30, "the revocation applied")
                metrics = gateway.get("/metrics/").text
                age = next(
                    line
                    for line in metrics.splitlines()
                    if line.startswith("peaceland_gateway_key_feed_age_seconds ")
                )
                assert float(age.split()[1]) < 5
    finally:
        delete_topics(kafka_admin, resources_for(force_id))
