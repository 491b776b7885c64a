"""The ingest gateway through HTTP, producing to the real Kafka."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from peaceland.cli.stack import Endpoints
from peaceland.services.gateway.app import create_app
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.tenants.forces import ForceResources, resources_for
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics
from peaceland.tenants.reports import decode_report, encode_report, utc_now
from tests.factories import make_report
from tests.kafka_helpers import read_all

KEY = "drone-key-0123456789abcdef"
OTHER_KEY = "other-force-key-0123456789"


def settings_for(bootstrap: str, keys: dict[str, list[str]], **extra: Any) -> GatewaySettings:
    return GatewaySettings(
        kafka_bootstrap_servers=bootstrap,
        drone_keys={f: [SecretStr(k) for k in ks] for f, ks in keys.items()},
        **extra,
    )


@pytest.fixture
def client(force: ForceResources, endpoints: Endpoints) -> Iterator[TestClient]:
    settings = settings_for(endpoints.kafka_bootstrap_servers, {force.force_id: [KEY]})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def report_json(seed: int) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(encode_report(make_report(random.Random(seed))))
    return doc


def test_one_report_is_accepted_once_kafka_has_it(client, force, endpoints):
    doc = report_json(1)
    response = client.post("/v1/reports", json=doc, headers=auth())
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 1
    assert body["results"] == [
        {
            "index": 0,
            "report_id": doc["report_id"],
            "status": "accepted",
            "reason": None,
            "errors": [],
        }
    ]
    [record] = read_all(endpoints.kafka_bootstrap_servers, force.reports_topic)
    assert record.key() == doc["drone_id"].encode()
    assert (
        str(decode_report(record.value() or b"", received_at=utc_now()).report_id)
        == doc["report_id"]
    )


def test_a_batch_is_accepted_whole(client, force, endpoints):
    docs = [report_json(i) for i in range(50)]
    response = client.post("/v1/reports", json=docs, headers=auth())
    assert response.status_code == 202
    assert response.json()["accepted"] == 50
    records = read_all(endpoints.kafka_bootstrap_servers, force.reports_topic)
    assert sorted(json.loads(r.value() or b"")["report_id"] for r in records) == sorted(
        d["report_id"] for d in docs
    )


def test_a_batch_with_bad_reports_names_each_and_keeps_the_good(client, force, endpoints):
    good = report_json(1)
    bad_score = report_json(2) | {"citizens": [{"name": "Eve", "score": 101}]}
    unknown = report_json(3) | {"altitude": 120}
    response = client.post("/v1/reports", json=[bad_score, good, unknown], headers=auth())
    assert response.status_code == 422
    body = response.json()
    assert (body["accepted"], body["rejected"], body["failed"]) == (1, 2, 0)
    first, second, third = body["results"]
    assert first["status"] == "rejected"
    assert first["errors"][0]["field"] == "citizens.0.score"
    assert "less than or equal to 100" in first["errors"][0]["reason"]
    assert second == {
        "index": 1,
        "report_id": good["report_id"],
        "status": "accepted",
        "reason": None,
        "errors": [],
    }
    assert third["errors"] == [
        {"field": "altitude", "reason": "unknown field; version 1 reports take no other fields"}
    ]
    records = read_all(endpoints.kafka_bootstrap_servers, force.reports_topic)
    assert [json.loads(r.value() or b"")["report_id"] for r in records] == [good["report_id"]]


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"", "one report"), (b"[]", "empty"), (b"[1,", "not valid JSON"), (b'"x"', "one report")],
)
def test_a_body_that_is_no_report_is_a_400_with_its_reason(client, body, reason):
    response = client.post("/v1/reports", content=body, headers=auth())
    assert response.status_code == 400
    assert reason in response.json()["detail"]


def test_a_batch_over_the_limit_is_refused(force, endpoints):
    settings = settings_for(endpoints.kafka_bootstrap_servers, {force.force_id: [KEY]}, max_batch=3)
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/v1/reports", json=[report_json(i) for i in range(4)], headers=auth()
        )
    assert response.status_code == 400
    assert "at most 3 reports" in response.json()["detail"]


def test_a_body_over_the_size_limit_is_a_413(force, endpoints):
    settings = settings_for(
        endpoints.kafka_bootstrap_servers, {force.force_id: [KEY]}, max_body_bytes=2048
    )
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/v1/reports", json=[report_json(i) for i in range(20)], headers=auth()
        )
    assert response.status_code == 413


@pytest.mark.parametrize("headers", [{}, auth("not-a-known-key-at-all"), {"Authorization": KEY}])
def test_without_a_known_drone_key_nothing_is_accepted(client, force, endpoints, headers):
    response = client.post("/v1/reports", json=report_json(1), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert read_all(endpoints.kafka_bootstrap_servers, force.reports_topic) == []


def test_a_drone_key_writes_only_to_its_own_force(force, endpoints, kafka_admin):
    other = resources_for(f"t-{uuid.uuid4().hex[:12]}")
    ensure_topics(kafka_admin, other, TopicSettings(partitions=1))
    try:
        settings = settings_for(
            endpoints.kafka_bootstrap_servers, {force.force_id: [KEY], other.force_id: [OTHER_KEY]}
        )
        with TestClient(create_app(settings)) as client:
            assert (
                client.post("/v1/reports", json=report_json(1), headers=auth(OTHER_KEY)).status_code
                == 202
            )
        bootstrap = endpoints.kafka_bootstrap_servers
        assert len(read_all(bootstrap, other.reports_topic)) == 1
        assert read_all(bootstrap, force.reports_topic) == []
    finally:
        delete_topics(kafka_admin, other)


def test_when_kafka_is_unreachable_reports_fail_with_a_503_never_a_202(force):
    settings = settings_for("127.0.0.1:1", {force.force_id: [KEY]}, delivery_timeout_seconds=1.0)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/reports", json=[report_json(1), report_json(2)], headers=auth())
        assert client.get("/readyz").status_code == 503
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    body = response.json()
    assert (body["accepted"], body["failed"]) == (0, 2)
    assert "Kafka did not acknowledge it" in body["results"][0]["reason"]


def test_the_api_is_documented_in_openapi(client):
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/reports"]["post"]
    assert {"202", "400", "401", "422", "503"} <= set(post["responses"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_metrics_are_served(client):
    client.post("/v1/reports", json=report_json(1), headers=auth())
    assert "peaceland_gateway_reports_total" in client.get("/metrics/").text


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"Bad_Force": ["k" * 16]}, "invalid police force id"),
        ({"demo": ["short"]}, "shorter than 16"),
        ({"a": ["k" * 16], "b": ["k" * 16]}, "two forces"),
    ],
)
def test_bad_drone_keys_fail_fast(keys, message):
    with pytest.raises(ValidationError, match=message):
        settings_for("127.0.0.1:1", keys)


def test_timestamps_are_judged_at_reception(client):
    old = report_json(1) | {"timestamp": "2020-01-01T00:00:00Z"}
    response = client.post("/v1/reports", json=old, headers=auth())
    assert response.status_code == 422
    assert "older than its reception" in response.json()["results"][0]["errors"][0]["reason"]


def test_the_canonical_report_is_produced(client, force, endpoints):
    doc = report_json(9)
    client.post("/v1/reports", content=json.dumps(doc, indent=4).encode(), headers=auth())
    [record] = read_all(endpoints.kafka_bootstrap_servers, force.reports_topic)
    assert record.value() == encode_report(decode_report(json.dumps(doc), received_at=utc_now()))
