"""No client of ours makes a force's topic: only the operator does, with its partitions,
copies and retention.

Production brokers create a topic that a client asks for by default
(``auto.create.topics.enable=true``), with the broker's defaults: one partition, the
broker's retention. A gateway producing to a deleted force's topic, or a consumer still
subscribed to it, would bring it back so. These tests run every client against a broker
that auto-creates, and check that the topics stay missing.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient
from fastapi.testclient import TestClient
from pydantic import SecretStr

from peaceland.operator.progress import group_offsets
from peaceland.operator.settings import OperatorSettings
from peaceland.services.alerter.book import AlertBook
from peaceland.services.alerter.consumer import Alerter
from peaceland.services.alerter.settings import AlerterSettings
from peaceland.services.archiver.consumer import Archiver
from peaceland.services.archiver.settings import ArchiverSettings
from peaceland.services.archiver.store import ReportStore
from peaceland.services.gateway.app import create_app
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.stack import Endpoints, KafkaCluster, Stack
from peaceland.tenants.forces import ForceResources, resources_for
from peaceland.tenants.kafka import KafkaAccess, client_config
from peaceland.tenants.provisioning.keyspace import Replication, drop_keyspace, ensure_keyspace
from peaceland.tenants.provisioning.topics import TopicSettings, ensure_topics
from peaceland.tenants.reports import Citizen, encode_report
from tests.factories import make_report
from tests.kafka_helpers import kafka_fields, produce, wait_until

KEY = "auto-create-drone-key-0123456789"


@pytest.fixture(scope="module")
def auto_creating_kafka(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaAccess]:
    """A broker of its own that creates any topic a client asks for."""
    state: Path = tmp_path_factory.mktemp("auto-create-kafka")
    settings = stack.settings.model_copy(update={"state_dir": state, "kafka_heap": "512m"})
    cluster = KafkaCluster(settings, size=1, auto_create_topics=True)
    cluster.up()
    try:
        yield cluster.access
    finally:
        cluster.down()


@pytest.fixture
def unmade_force(cassandra: Session) -> Iterator[ForceResources]:
    """A force with a keyspace but none of its topics made yet."""
    force = resources_for(f"t-{uuid.uuid4().hex[:12]}")
    ensure_keyspace(cassandra, force.keyspace, Replication())
    yield force
    drop_keyspace(cassandra, force.keyspace)


def topics(kafka: KafkaAccess) -> set[str]:
    return set(AdminClient(client_config(kafka)).list_topics(timeout=10).topics)


def test_the_gateway_refuses_reports_for_a_missing_topic_without_making_it(
    auto_creating_kafka: KafkaAccess, unmade_force: ForceResources
):
    settings = GatewaySettings(
        **kafka_fields(auto_creating_kafka),
        drone_keys={unmade_force.force_id: [SecretStr(KEY)]},
        delivery_timeout_seconds=2,
    )
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/v1/reports",
            content=encode_report(make_report(random.Random(1))),
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )
    assert response.status_code == 503, response.text
    assert unmade_force.reports_topic not in topics(auto_creating_kafka)


def test_consumers_never_make_their_topics(
    auto_creating_kafka: KafkaAccess,
    unmade_force: ForceResources,
    cassandra: Session,
    endpoints: Endpoints,
):
    force = unmade_force
    common = {
        "force_id": force.force_id,
        **kafka_fields(auto_creating_kafka),
        "cassandra_contact_points": endpoints.cassandra_contact_points,
        "cassandra_username": endpoints.cassandra.username,
        "cassandra_password": endpoints.cassandra.password,
        "metrics_port": 0,
        "retry_backoff": 0.1,
        "retry_backoff_max": 0.5,
    }
    archiver = Archiver(
        ArchiverSettings(**common, dead_letter_timeout=1.0),
        ReportStore(cassandra, force.keyspace),
    )
    alerter = Alerter(
        AlerterSettings(**common, instance="one"),
        AlertBook(cassandra, force.keyspace, force.force_id),
    )
    stop = threading.Event()
    threads = [
        threading.Thread(target=c.run, args=(stop,), daemon=True) for c in (archiver, alerter)
    ]
    for thread in threads:
        thread.start()
    try:
        # Subscribed to a reports topic that does not exist: nothing may make it.
        time.sleep(5)
        assert force.reports_topic not in topics(auto_creating_kafka)
        # With only the reports topic made, a malformed record and a low score send the
        # archiver to the dead-letter topic and the alerter to the alerts topic: both missing.
        admin = AdminClient(client_config(auto_creating_kafka))
        ensure_topics(admin, force, TopicSettings(partitions=1))
        for topic in (force.alerts_topic, force.dead_letter_topic):
            admin.delete_topics([topic])[topic].result()
        wait_until(
            lambda: not {force.alerts_topic, force.dead_letter_topic} & topics(auto_creating_kafka),
            timeout=30,
            what="the alerts and dead-letter topics to be gone",
        )
        low = make_report(random.Random(2), citizens=0).model_copy(
            update={"citizens": [Citizen(name="Eve Low", score=1.0)]}
        )
        produce(
            auto_creating_kafka,
            force.reports_topic,
            [(b"d", b"{not json"), (b"d", encode_report(low))],
        )
        wait_until(
            lambda: archiver.retries >= 2 and alerter.retries >= 2,
            timeout=60,
            what="both consumers to retry what they cannot deliver",
        )
        made = {force.alerts_topic, force.dead_letter_topic} & topics(auto_creating_kafka)
        assert not made, f"{made} made by a client"
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def test_the_operator_watching_a_force_progress_never_makes_its_topic(
    auto_creating_kafka: KafkaAccess, unmade_force: ForceResources
):
    # The operator asks Kafka about a force's reports topic every few seconds (is its
    # consumer progressing?); with its topics deleted by hand, that question must not make
    # one with the broker's defaults before the next reconcile makes it properly.
    settings = OperatorSettings(
        **kafka_fields(auto_creating_kafka), cassandra_contact_points="127.0.0.1"
    )
    admin = AdminClient(settings.kafka_config())
    for _ in range(3):
        assert group_offsets(admin, unmade_force.force_id, "archiver", timeout=10) == {}
    time.sleep(2)
    assert unmade_force.reports_topic not in topics(auto_creating_kafka)
