"""Quotas at the edge: a force sending faster than its plan gets 429 with Retry-After, never
a silent drop, and another force sending at the same time is not touched."""

from __future__ import annotations

import json
import random
import time
from typing import Any

from confluent_kafka.admin import AdminClient
from fastapi.testclient import TestClient
from pydantic import SecretStr

from peaceland.services.gateway.app import create_app as create_gateway
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.stack import Endpoints
from peaceland.tenants.forces import resources_for
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics
from peaceland.tenants.reports import encode_report
from tests.api.conftest import Api, serving
from tests.factories import make_report
from tests.kafka_helpers import kafka_fields


def _batch(drone_id: str, seed: int, size: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        json.loads(encode_report(make_report(rng).model_copy(update={"drone_id": drone_id})))
        for _ in range(size)
    ]


def test_a_force_flooding_past_its_plan_is_told_to_wait_and_another_is_untouched(
    api: Api, endpoints: Endpoints, kafka_admin: AdminClient
):
    slow = api.force(api.plan(max_reports_per_second=20)["id"])["id"]
    fast = api.force(api.plan(max_reports_per_second=10_000)["id"])["id"]
    keys = {}
    for force_id in (slow, fast):
        ensure_topics(kafka_admin, resources_for(force_id), TopicSettings(partitions=1))
        api.client.post(f"/v1/forces/{force_id}/drones", json={"id": "d-1"}, headers=api.admin)
        issued = api.client.post(f"/v1/forces/{force_id}/drones/d-1/keys", headers=api.admin)
        keys[force_id] = {"Authorization": f"Bearer {issued.json()['key']}"}
    try:
        with serving(api.app) as url:
            settings = GatewaySettings(
                **kafka_fields(endpoints.kafka),
                control_plane_url=url,
                control_plane_token=SecretStr(api.gateway_token),
                quota_burst_seconds=1,
                usage_interval_seconds=0.5,
            )
            with TestClient(create_gateway(settings)) as gateway:
                deadline = time.monotonic() + 30
                while gateway.get("/readyz").status_code != 200:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
                slow_answers, fast_answers = [], []
                for seed in range(12):
                    slow_answers.append(
                        gateway.post(
                            "/v1/reports", json=_batch("d-1", seed, 10), headers=keys[slow]
                        )
                    )
                    fast_answers.append(
                        gateway.post(
                            "/v1/reports", json=_batch("d-1", seed, 10), headers=keys[fast]
                        )
                    )
                assert [a.status_code for a in fast_answers] == [202] * 12
                codes = [a.status_code for a in slow_answers]
                assert codes[:2] == [202, 202]  # its burst: one second of its rate
                refused = [a for a in slow_answers if a.status_code == 429]
                assert refused, codes
                assert set(codes) <= {202, 429}
                assert all(int(a.headers["retry-after"]) >= 1 for a in refused)
                assert "20 reports a second" in refused[0].json()["detail"]
                # Waiting as told is enough.
                time.sleep(int(refused[-1].headers["retry-after"]))
                again = gateway.post("/v1/reports", json=_batch("d-1", 99, 10), headers=keys[slow])
                assert again.status_code == 202
                accepted_slow = 10 * (codes.count(202) + 1)

                def invoiced(force_id: str) -> int:
                    answer = api.client.get(f"/v1/forces/{force_id}/invoice", headers=api.admin)
                    return int(answer.json()["reports_accepted"])

                deadline = time.monotonic() + 20
                while invoiced(slow) < accepted_slow or invoiced(fast) < 120:
                    assert time.monotonic() < deadline, (invoiced(slow), invoiced(fast))
                    time.sleep(0.2)
                # Refused reports are not billed.
                assert (invoiced(slow), invoiced(fast)) == (accepted_slow, 120)
    finally:
        for force_id in (slow, fast):
            delete_topics(kafka_admin, resources_for(force_id))
