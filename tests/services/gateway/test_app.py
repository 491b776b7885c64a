"""The ingest gateway through HTTP, producing to the real Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from peaceland.services.gateway.app import create_app
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.services.kafka import received_at as kafka_received_at
from peaceland.stack import Endpoints
from peaceland.tenants.cassandra import to_millisecond
from peaceland.tenants.forces import ForceResources, resources_for
from peaceland.tenants.kafka import KafkaAccess
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics
from peaceland.tenants.reports import MAX_REPORT_AGE, decode_report, encode_report, utc_now
from tests.factories import make_report
from tests.kafka_helpers import kafka_fields, read_all, wait_until

log = logging.getLogger(__name__)

KEY = "drone-key-0123456789abcdef"
OTHER_KEY = "other-force-key-0123456789"


def settings_for(
    bootstrap: KafkaAccess, keys: dict[str, list[str]], **extra: Any
) -> GatewaySettings:
    return GatewaySettings(
        **kafka_fields(bootstrap),
        drone_keys={f: [SecretStr(k) for k in ks] for f, ks in keys.items()},
        **extra,
    )


@pytest.fixture
def client(force: ForceResources, endpoints: Endpoints) -> Iterator[TestClient]:
    settings = settings_for(endpoints.kafka, {force.force_id: [KEY]})
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
    [record] = read_all(endpoints.kafka, force.reports_topic)
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
    records = read_all(endpoints.kafka, force.reports_topic)
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
    records = read_all(endpoints.kafka, force.reports_topic)
    assert [json.loads(r.value() or b"")["report_id"] for r in records] == [good["report_id"]]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "one report"),
        (b"[]", "empty"),
        (b"[1,", "not valid JSON"),
        (b'"x"', "one report"),
        (b"{not json", "not valid JSON"),
    ],
)
def test_a_body_that_is_no_report_is_a_400_with_its_reason(client, body, reason):
    response = client.post("/v1/reports", content=body, headers=auth())
    assert response.status_code == 400
    assert reason in response.json()["detail"]


def test_a_batch_over_the_limit_is_refused(force, endpoints):
    settings = settings_for(endpoints.kafka, {force.force_id: [KEY]}, max_batch=3)
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/v1/reports", json=[report_json(i) for i in range(4)], headers=auth()
        )
    assert response.status_code == 400
    assert "at most 3 reports" in response.json()["detail"]


def test_a_body_over_the_size_limit_is_a_413(force, endpoints):
    settings = settings_for(endpoints.kafka, {force.force_id: [KEY]}, max_body_bytes=2048)
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
    assert read_all(endpoints.kafka, force.reports_topic) == []


def test_a_drone_key_writes_only_to_its_own_force(force, endpoints, kafka_admin):
    other = resources_for(f"t-{uuid.uuid4().hex[:12]}")
    ensure_topics(kafka_admin, other, TopicSettings(partitions=1))
    try:
        settings = settings_for(
            endpoints.kafka, {force.force_id: [KEY], other.force_id: [OTHER_KEY]}
        )
        with TestClient(create_app(settings)) as client:
            assert (
                client.post("/v1/reports", json=report_json(1), headers=auth(OTHER_KEY)).status_code
                == 202
            )
        bootstrap = endpoints.kafka
        assert len(read_all(bootstrap, other.reports_topic)) == 1
        assert read_all(bootstrap, force.reports_topic) == []
    finally:
        delete_topics(kafka_admin, other)


def test_when_kafka_is_unreachable_reports_fail_with_a_503_never_a_202(force):
    settings = settings_for(
        KafkaAccess("127.0.0.1:1"), {force.force_id: [KEY]}, delivery_timeout_seconds=1.0
    )
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
        settings_for(KafkaAccess("127.0.0.1:1"), keys)


def test_a_gateway_with_a_control_plane_takes_no_key_from_configuration():
    with pytest.raises(ValidationError, match="keys come from the control plane only"):
        GatewaySettings(
            kafka_bootstrap_servers="127.0.0.1:1",
            control_plane_url="http://127.0.0.1:1",
            control_plane_token=SecretStr("t" * 32),
            drone_keys={"demo": [SecretStr("k" * 16)]},
        )


def test_timestamps_are_judged_at_reception(client):
    old = report_json(1) | {"timestamp": "2020-01-01T00:00:00Z"}
    response = client.post("/v1/reports", json=old, headers=auth())
    assert response.status_code == 422
    assert "older than its reception" in response.json()["results"][0]["errors"][0]["reason"]


def test_the_canonical_report_is_produced(client, force, endpoints):
    doc = report_json(9)
    client.post("/v1/reports", content=json.dumps(doc, indent=4).encode(), headers=auth())
    [record] = read_all(endpoints.kafka, force.reports_topic)
    assert record.value() == encode_report(decode_report(json.dumps(doc), received_at=utc_now()))


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000],
    ids=["array", "object"],
)
def test_a_deeply_nested_body_is_a_400_with_a_reason(client, force, endpoints, body):
    response = client.post("/v1/reports", content=body, headers=auth())
    assert response.status_code == 400, response.text[:500]
    assert "nested too deeply" in response.json()["detail"]
    assert read_all(endpoints.kafka, force.reports_topic) == []


class Silent:
    """A TCP port that accepts connections and never answers: a Kafka that hangs."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.connections.append(self.server.accept()[0])

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self._thread.join(10)
        for connection in self.connections:
            connection.close()


def test_readiness_never_blocks_the_requests_beside_it(force):
    # A /readyz that asks a hanging Kafka must not stall the event loop: /healthz, asked
    # after it, answers before it.
    silent = Silent()
    settings = settings_for(KafkaAccess(f"127.0.0.1:{silent.port}"), {force.force_id: [KEY]})
    app = create_app(settings)
    finished: list[str] = []

    async def get(client: httpx2.AsyncClient, path: str, delay: float) -> None:
        await asyncio.sleep(delay)
        response = await client.get(path)
        finished.append(f"{path} {response.status_code}")

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://gw") as client:
                await asyncio.gather(get(client, "/readyz", 0), get(client, "/healthz", 0.2))

    try:
        asyncio.run(scenario())
    finally:
        silent.close()
        gc.collect()  # the producer's sockets to the silent port go with it
    assert finished == ["/healthz 200", "/readyz 503"]


def test_a_force_flooding_the_gateway_leaves_another_force_untouched(force, endpoints):
    # Force A's topics are gone: its reports wait in the producer for their delivery
    # timeout, as they would behind a broker in trouble, and A keeps sending, more reports
    # than a producer queue holds (100,000). Force B must see every report accepted; A gets
    # 429s once its own share is in flight, never B.
    flooder = resources_for(f"t-{uuid.uuid4().hex[:12]}")
    settings = settings_for(
        endpoints.kafka,
        {force.force_id: [KEY], flooder.force_id: [OTHER_KEY]},
        delivery_timeout_seconds=20,
        max_inflight_bytes_per_force=4 * 1024 * 1024,
    )
    small = make_report(random.Random(1), citizens=0).model_copy(update={"words": []})
    batch = json.dumps(
        [
            json.loads(encode_report(small.model_copy(update={"report_id": uuid.uuid4()})))
            for _ in range(1000)
        ]
    ).encode()
    outcomes: Counter[int] = Counter()
    stop = threading.Event()

    with TestClient(create_app(settings)) as client:

        def flood() -> None:
            while not stop.is_set():
                response = client.post("/v1/reports", content=batch, headers=auth(OTHER_KEY))
                outcomes[response.status_code] += 1
                if response.status_code == 429:
                    # A pause, as Retry-After asks: 128 threads of this one test process
                    # spinning on the GIL would measure Python's thread switching instead.
                    time.sleep(0.2)

        flooders = [threading.Thread(target=flood, daemon=True) for _ in range(128)]
        for thread in flooders:
            thread.start()
        time.sleep(8)  # the flood is in full swing
        latencies, codes = [], Counter[int]()
        for i in range(100):
            began = time.perf_counter()
            response = client.post("/v1/reports", json=report_json(1000 + i), headers=auth())
            latencies.append((time.perf_counter() - began) * 1000)
            codes[response.status_code] += 1
        stop.set()
        for thread in flooders:
            thread.join(60)
    latencies.sort()
    log.info(
        "flood: %s",
        json.dumps(
            {
                "other_force_codes": dict(codes),
                "other_force_ms": {"p50": latencies[49], "p99": latencies[98]},
                "flooder_codes": dict(outcomes),
            }
        ),
    )
    assert codes == {202: 100}
    assert outcomes[429] > 0, outcomes
    assert len(read_all(endpoints.kafka, force.reports_topic)) == 100


def test_a_byte_order_mark_before_the_body_is_ignored(client, force, endpoints):
    doc = report_json(21)
    body = b"\xef\xbb\xbf" + json.dumps(doc).encode()
    response = client.post("/v1/reports", content=body, headers=auth())
    assert response.status_code == 202, response.text


def test_a_report_is_judged_by_the_gateway_and_the_consumers_at_the_same_moment(force, endpoints):
    # The record's time is the reception time the gateway judged the report by: a report
    # accepted at the very edge of the age bound is inside it for the consumers too (they
    # judge it by the record's time), never accepted here and dead-lettered there.
    received = to_millisecond(utc_now())
    settings = settings_for(endpoints.kafka, {force.force_id: [KEY]})
    edge = report_json(22) | {"timestamp": (received - MAX_REPORT_AGE).isoformat()}
    with TestClient(create_app(settings, clock=lambda: received)) as client:
        response = client.post("/v1/reports", json=edge, headers=auth())
    assert response.status_code == 202, response.text
    [record] = read_all(endpoints.kafka, force.reports_topic)
    assert kafka_received_at(record) == received
    decode_report(record.value() or b"", received_at=kafka_received_at(record))  # accepted


def test_a_forces_producer_is_open_before_its_first_report(force, endpoints):
    # Opening a producer (signing in, its producer id, the topic's metadata) took half a
    # second on the stack: the first reports of each force waited that long for their 202
    # (bench pipeline's alert latency p99 was that first half second).
    settings = settings_for(endpoints.kafka, {force.force_id: [KEY]})
    app = create_app(settings)
    with TestClient(app) as client:
        sender = app.state.sender
        wait_until(lambda: sender.is_open(force.force_id), 30, "the force's producer open")
        response = client.post("/v1/reports", json=report_json(7), headers=auth())
        assert response.status_code == 202, response.text
