"""Provisioning a force's topics on the real Kafka."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource

from peaceland.tenants.errors import ProvisioningError
from peaceland.tenants.forces import resources_for
from peaceland.tenants.provisioning import topics as topics_module
from peaceland.tenants.provisioning.topics import (
    TopicSettings,
    delete_topics,
    ensure_topics,
    grow_partitions,
    partition_count,
)
from tests.kafka_helpers import wait_until


def _force() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def test_topics_are_created_once_with_the_asked_partitions(kafka_admin: AdminClient):
    resources = resources_for(_force())
    try:
        assert sorted(ensure_topics(kafka_admin, resources, TopicSettings(partitions=2))) == sorted(
            resources.topics
        )
        assert ensure_topics(kafka_admin, resources, TopicSettings(partitions=2)) == []
        topics = kafka_admin.list_topics(timeout=10).topics
        for name in resources.topics:
            assert len(topics[name].partitions) == 2
    finally:
        delete_topics(kafka_admin, resources)


def test_partitions_grow_but_never_shrink(kafka_admin: AdminClient):
    resources = resources_for(_force())
    try:
        ensure_topics(kafka_admin, resources, TopicSettings(partitions=2))
        ensure_topics(kafka_admin, resources, TopicSettings(partitions=4))
        # At once again, while metadata may still say 2: must neither fail nor change anything.
        ensure_topics(kafka_admin, resources, TopicSettings(partitions=4))
        ensure_topics(kafka_admin, resources, TopicSettings(partitions=1))
        assert {partition_count(kafka_admin, n) for n in resources.topics} == {4}
    finally:
        delete_topics(kafka_admin, resources)


def test_growth_the_controller_says_is_done_is_done_whatever_this_client_remembers(
    kafka_admin: AdminClient, monkeypatch: pytest.MonkeyPatch
):
    # A long-lived client's metadata can say 2 partitions for seconds after a growth to 4
    # (seen on librdkafka 2.16: a fresh client saw 4 meanwhile); a reconcile then asks again
    # and the controller answers "already has 4". That answer is the truth.
    resources = resources_for(_force())
    try:
        ensure_topics(kafka_admin, resources, TopicSettings(partitions=4))
        monkeypatch.setattr(topics_module, "partition_count", lambda *_args, **_kw: 2)
        grow_partitions(kafka_admin, list(resources.topics), 4, timeout=5)
        grow_partitions(kafka_admin, list(resources.topics), 3, timeout=5)
        with pytest.raises(KafkaException, match="UNKNOWN_TOPIC"):
            grow_partitions(kafka_admin, [f"peaceland.{_force()}.reports"], 4, timeout=5)
        monkeypatch.undo()
        assert {partition_count(kafka_admin, n) for n in resources.topics} == {4}
    finally:
        delete_topics(kafka_admin, resources)


def test_retention_is_set_on_every_topic(kafka_admin: AdminClient):
    resources = resources_for(_force())
    try:
        ensure_topics(kafka_admin, resources, TopicSettings(retention_ms=3_600_000))
        for name in resources.topics:
            future = kafka_admin.describe_configs([ConfigResource("topic", name)])
            config = next(iter(future.values())).result()
            assert config["retention.ms"].value == "3600000"
    finally:
        delete_topics(kafka_admin, resources)


def test_a_changed_retention_is_applied_to_existing_topics(kafka_admin: AdminClient):
    resources = resources_for(_force())
    try:
        ensure_topics(kafka_admin, resources, TopicSettings(retention_ms=3_600_000))
        assert ensure_topics(kafka_admin, resources, TopicSettings(retention_ms=7_200_000)) == []

        def retention(name: str) -> str:
            future = kafka_admin.describe_configs([ConfigResource("topic", name)])
            return str(next(iter(future.values())).result()["retention.ms"].value)

        # The controller acknowledges the change a moment before brokers serve it.
        wait_until(
            lambda: all(retention(n) == "7200000" for n in resources.topics),
            10,
            "the new retention",
        )
    finally:
        delete_topics(kafka_admin, resources)


def test_more_copies_than_brokers_is_refused_before_anything_is_created(
    kafka_admin: AdminClient,
):
    resources = resources_for(_force())
    brokers = len(kafka_admin.list_topics(timeout=10).brokers)
    with pytest.raises(ProvisioningError, match=f"cluster has {brokers} broker") as raised:
        ensure_topics(kafka_admin, resources, TopicSettings(replication_factor=brokers + 1))
    assert raised.value.reason == "NotEnoughBrokers"
    assert not set(resources.topics) & set(kafka_admin.list_topics(timeout=10).topics)


def test_deleting_topics_twice_is_harmless(kafka_admin: AdminClient):
    resources = resources_for(_force())
    ensure_topics(kafka_admin, resources, TopicSettings(partitions=1))
    delete_topics(kafka_admin, resources)
    delete_topics(kafka_admin, resources)
    # Deletion reaches every broker's metadata a moment after it is acknowledged.
    wait_until(
        lambda: not set(resources.topics) & set(kafka_admin.list_topics(timeout=10).topics),
        timeout=30,
        what="the deleted topics to leave the metadata",
    )
