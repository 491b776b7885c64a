"""Alerts raised, counted for the invoice from each force's alerts topic: each raise once,
across passes, restarts and replicas, by the day it was raised, read as the force's own
principal."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient

from peaceland.api.alert_meter import AlertMeter
from peaceland.api.force_data import ForceData
from peaceland.stack import Endpoints
from peaceland.tenants.alerts import AlertEventKind, encode_alert
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics
from tests.api.conftest import Api, Provisioned, made_with_kubectl, provision, unprovision
from tests.factories import make_alert
from tests.kafka_helpers import produce, wait_until
from tests.operator.kube_helpers import Kubectl

DAY_1 = datetime(2026, 11, 3, 23, 59, tzinfo=UTC)
DAY_2 = datetime(2026, 11, 4, 0, 1, tzinfo=UTC)


def _event(force_id: str, event: AlertEventKind, raised_at: datetime) -> bytes:
    return encode_alert(make_alert(force_id, "Jane Doe", raised_at, event=event))


@pytest.fixture
def force(
    api: Api, kubectl: Kubectl, namespace: str, kafka_admin: AdminClient, cassandra: Session
) -> Iterator[Provisioned]:
    force_id = f"m-{uuid.uuid4().hex[:8]}"
    made = provision(force_id, kubectl, namespace, kafka_admin, cassandra,
                     manifest=made_with_kubectl(force_id))  # fmt: skip
    api.member(force_id, "force_admin")  # the API holds it
    yield made
    unprovision(made, kafka_admin, cassandra)


def _meter(api: Api) -> tuple[AlertMeter, ForceData]:
    servers = api.settings.data_servers()
    assert servers is not None
    data = ForceData(*servers, api.app.state.forces.secret_data)
    return AlertMeter(api.app.state.sessions, api.app.state.forces, data, interval=60), data


def _days(api: Api, force_id: str) -> dict[str, int]:
    invoice = api.client.get(
        f"/v1/forces/{force_id}/invoice", params={"month": "2026-11"}, headers=api.admin
    ).json()
    return {d["day"]: d["alerts_raised"] for d in invoice["days"]}


def test_each_raised_alert_is_counted_once_by_the_day_it_was_raised(
    api: Api, force: Provisioned, endpoints: Endpoints
):
    force_id, topic = force.resources.force_id, force.resources.alerts_topic
    produce(endpoints.kafka, topic, [
        (b"a", _event(force_id, "raised", DAY_1)),
        (b"b", _event(force_id, "raised", DAY_2)),
        (b"c", _event(force_id, "updated", DAY_2)),  # a later sighting: no new alert
        (b"d", _event(force_id, "raised", DAY_2)),
        (b"e", b"not an alert"),  # breaks the contract: skipped, never blocks
    ])  # fmt: skip
    meter, data = _meter(api)
    try:
        assert meter.meter(force_id) == 3
        assert meter.meter(force_id) == 0  # a second pass counts nothing again
    finally:
        meter.stop()
        data.close()
    assert _days(api, force_id) == {"2026-11-03": 1, "2026-11-04": 2}

    # A restarted control plane (another meter) goes on from the stored positions.
    produce(endpoints.kafka, topic, [(b"f", _event(force_id, "raised", DAY_2))])
    again, data = _meter(api)
    try:
        assert again.meter(force_id) == 1
    finally:
        again.stop()
        data.close()
    assert _days(api, force_id) == {"2026-11-03": 1, "2026-11-04": 3}


def test_new_topics_under_the_same_name_are_read_from_their_beginning(
    api: Api, force: Provisioned, endpoints: Endpoints, kafka_admin: AdminClient
):
    force_id, topic = force.resources.force_id, force.resources.alerts_topic
    produce(endpoints.kafka, topic, [(b"a", _event(force_id, "raised", DAY_1))] * 3)
    meter, data = _meter(api)
    try:
        assert meter.meter(force_id) == 3
        # The force deleted with its topics and made again: the new topic starts at 0,
        # below the stored position; its one alert is counted all the same.
        delete_topics(kafka_admin, force.resources)
        wait_until(lambda: topic not in kafka_admin.list_topics(timeout=10).topics, 30, "deletion")
        ensure_topics(kafka_admin, force.resources, TopicSettings(partitions=2))
        produce(endpoints.kafka, topic, [(b"b", _event(force_id, "raised", DAY_2))])
        assert meter.meter(force_id) == 1
    finally:
        meter.stop()
        data.close()
    assert _days(api, force_id) == {"2026-11-03": 3, "2026-11-04": 1}


def test_two_meters_at_once_count_each_alert_once(
    api: Api, force: Provisioned, endpoints: Endpoints
):
    force_id, topic = force.resources.force_id, force.resources.alerts_topic
    produce(endpoints.kafka, topic, [(b"a", _event(force_id, "raised", DAY_1))] * 50)
    (one, first), (two, second) = _meter(api), _meter(api)
    try:
        with ThreadPoolExecutor(2) as pool:
            counted = list(pool.map(lambda m: m.meter(force_id), [one, two, one, two]))
    finally:
        for meter, data in ((one, first), (two, second)):
            meter.stop()
            data.close()
    assert sum(counted) == 50
    assert _days(api, force_id) == {"2026-11-03": 50}
