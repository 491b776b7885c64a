"""A force's identities on the real Kafka and Cassandra: each server refuses, by itself, what
one force's principals ask of another force's data.

Two forces, each with its topics, keyspace and identities; every probe signs in as force A
and asks for force B's data, and asserts the server's own refusal (an authorization error
code from Kafka, ``Unauthorized`` from Cassandra). Each has a control asking the same of
A's own data, so a probe cannot pass because the request was broken in another way.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cassandra import AuthenticationFailed, Unauthorized
from cassandra.cluster import NoHostAvailable, Session
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from peaceland.stack import Endpoints
from peaceland.tenants.cassandra import CassandraAccess, connect, shutdown_session
from peaceland.tenants.forces import ForceResources, consumer_group, resources_for
from peaceland.tenants.kafka import KafkaAccess, client_config, producer_config
from peaceland.tenants.provisioning.identities import (
    ForceCredentials,
    Identity,
    ensure_identities,
    kafka_generations,
    retire_generations,
    transactional_id_prefix,
)
from peaceland.tenants.provisioning.keyspace import Replication, drop_keyspace, ensure_keyspace
from peaceland.tenants.provisioning.quotas import quota_admin, quotas_of, set_produce_quota
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics
from tests.kafka_helpers import produce, wait_until


@dataclass(frozen=True)
class Tenant:
    resources: ForceResources
    credentials: ForceCredentials


def _tenant(kafka_admin: AdminClient, cassandra: Session) -> Tenant:
    resources = resources_for(f"t-{uuid.uuid4().hex[:12]}")
    ensure_topics(kafka_admin, resources, TopicSettings(partitions=1))
    ensure_keyspace(cassandra, resources.keyspace, Replication())
    credentials = ForceCredentials.generate(resources.force_id, 1)
    ensure_identities(kafka_admin, cassandra, credentials)
    return Tenant(resources, credentials)


@pytest.fixture(scope="module")
def tenants(kafka_admin: AdminClient, cassandra: Session) -> Iterator[tuple[Tenant, Tenant]]:
    a, b = _tenant(kafka_admin, cassandra), _tenant(kafka_admin, cassandra)
    yield a, b
    for tenant in (a, b):
        retire_generations(kafka_admin, cassandra, tenant.resources.force_id, keep=None)
        delete_topics(kafka_admin, tenant.resources)
        drop_keyspace(cassandra, tenant.resources.keyspace)


def _as(endpoints: Endpoints, identity: Identity) -> KafkaAccess:
    return endpoints.kafka.as_user(identity.username, identity.password)


def _produce_error(
    access: KafkaAccess, topic: str, *, idempotent: bool = True
) -> KafkaError | None:
    """The delivery error of one record sent to ``topic`` as ``access``, or None."""
    producer = Producer(
        producer_config(access) | {"message.timeout.ms": 10_000, "enable.idempotence": idempotent}
    )
    errors: list[KafkaError | None] = []
    producer.produce(topic, b"probe", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(15)
    return errors[0] if errors else KafkaError(KafkaError._TIMED_OUT)


def _read_error(access: KafkaAccess, topic: str, group: str) -> KafkaError | None:
    """The first error of a consumer of ``group`` reading ``topic``, or None once a record
    arrives."""
    consumer = Consumer(
        client_config(access)
        | {"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    try:
        consumer.subscribe([topic])
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is None:
                continue
            return message.error()
        return KafkaError(KafkaError._TIMED_OUT)
    finally:
        consumer.close()


def test_a_force_writes_its_own_reports_topic_and_never_another_forces(tenants, endpoints):
    a, b = tenants
    gateway = _as(endpoints, a.credentials.kafka["gateway"])
    assert _produce_error(gateway, a.resources.reports_topic) is None
    refused = _produce_error(gateway, b.resources.reports_topic)
    assert refused is not None
    assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    # Nor its own alerts: the gateway writes reports only.
    refused = _produce_error(gateway, a.resources.alerts_topic)
    assert refused is not None
    assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused


def test_a_force_reads_its_own_reports_and_never_another_forces(tenants, endpoints):
    a, b = tenants
    for tenant in tenants:
        produce(endpoints.kafka, tenant.resources.reports_topic, [(b"k", b"v")])
    archiver = _as(endpoints, a.credentials.kafka["archiver"])
    own_group = consumer_group(a.resources.force_id, "archiver")
    assert _read_error(archiver, a.resources.reports_topic, own_group) is None
    # B's topic in A's group: the topic is refused.
    refused = _read_error(archiver, b.resources.reports_topic, own_group)
    assert refused is not None
    assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    # A's topic in B's group: joining B's group is refused.
    their_group = consumer_group(b.resources.force_id, "archiver")
    refused = _read_error(archiver, a.resources.reports_topic, their_group)
    assert refused is not None
    assert refused.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, refused


def test_the_dashboard_reads_its_forces_topics_writes_its_lifecycle_and_nothing_else(
    tenants, endpoints
):
    a, b = tenants
    for tenant in tenants:
        for topic in (tenant.resources.alerts_topic, tenant.resources.reports_topic):
            produce(endpoints.kafka, topic, [(b"k", b"v")])
    dashboard = _as(endpoints, a.credentials.kafka["dashboard"])
    feed = consumer_group(a.resources.force_id, "dashboard") + ".feed"
    assert _produce_error(dashboard, a.resources.lifecycle_topic) is None
    assert _read_error(dashboard, a.resources.lifecycle_topic, feed) is None
    assert _read_error(dashboard, a.resources.alerts_topic, feed) is None
    assert _read_error(dashboard, a.resources.reports_topic, feed) is None
    # It never writes alerts or reports, nor touches B's topics or groups.
    for topic in (a.resources.alerts_topic, a.resources.reports_topic, b.resources.lifecycle_topic):
        refused = _produce_error(dashboard, topic)
        assert refused is not None
        assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (topic, refused)
    refused = _read_error(dashboard, b.resources.alerts_topic, feed)
    assert refused is not None
    assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    their_feed = consumer_group(b.resources.force_id, "dashboard") + ".feed"
    refused = _read_error(dashboard, a.resources.alerts_topic, their_feed)
    assert refused is not None
    assert refused.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, refused


def test_the_lake_reads_its_forces_three_streams_and_writes_nothing(tenants, endpoints):
    a, b = tenants
    for tenant in tenants:
        for topic in (tenant.resources.alerts_topic, tenant.resources.reports_topic):
            produce(endpoints.kafka, topic, [(b"k", b"v")])
    lake = _as(endpoints, a.credentials.kafka["lake"])
    group = consumer_group(a.resources.force_id, "lake")
    for topic in (a.resources.reports_topic, a.resources.alerts_topic):
        assert _read_error(lake, topic, group) is None
    # It may write nowhere (a plain producer: an idempotent one is not even given an id).
    for topic in (*a.resources.topics, *b.resources.topics):
        refused = _produce_error(lake, topic, idempotent=False)
        assert refused is not None
        assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (topic, refused)
    refused = _read_error(lake, b.resources.reports_topic, group)
    assert refused is not None
    assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    # Nor the force's own dead letters (bad reports are the archiver's to keep), nor
    # another consumer's group.
    refused = _read_error(lake, a.resources.dead_letter_topic, group)
    assert refused is not None
    assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    refused = _read_error(
        lake, a.resources.reports_topic, consumer_group(a.resources.force_id, "archiver")
    )
    assert refused is not None
    assert refused.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, refused


def test_a_force_cannot_even_describe_another_forces_topics(tenants, endpoints):
    a, b = tenants
    admin = AdminClient(client_config(_as(endpoints, a.credentials.kafka["alerter"])))
    topics = admin.list_topics(timeout=10).topics
    assert a.resources.reports_topic in topics
    assert not set(b.resources.topics) & set(topics), "B's topics are listed to A"
    metadata = admin.list_topics(b.resources.reports_topic, timeout=10)
    error = metadata.topics[b.resources.reports_topic].error
    assert error is not None
    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error


def test_a_force_uses_its_own_transactional_ids_and_never_another_forces(tenants, endpoints):
    a, b = tenants
    alerter = _as(endpoints, a.credentials.kafka["alerter"])

    def init(transactional_id: str) -> KafkaError | None:
        producer = Producer(producer_config(alerter) | {"transactional.id": transactional_id})
        try:
            producer.init_transactions(15)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            return error
        return None

    assert init(transactional_id_prefix(a.resources.force_id) + "0") is None
    refused = init(transactional_id_prefix(b.resources.force_id) + "0")
    assert refused is not None
    assert refused.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, refused


def test_a_force_reads_and_writes_its_own_keyspace_and_never_another_forces(tenants, endpoints):
    a, b = tenants
    role = a.credentials.cassandra
    session = connect(endpoints.cassandra.as_role(role.username, role.password))
    try:
        own, theirs = a.resources.keyspace, b.resources.keyspace
        session.execute(f"SELECT * FROM {own}.reports_by_drone_day LIMIT 1")
        with pytest.raises(Unauthorized):
            session.execute(f"SELECT * FROM {theirs}.reports_by_drone_day LIMIT 1")
        with pytest.raises(Unauthorized):
            session.execute(f"TRUNCATE {theirs}.reports_by_drone_day")
        with pytest.raises(Unauthorized):
            session.execute(f"DROP TABLE {own}.reports_by_drone_day")  # no schema change
        with pytest.raises(Unauthorized):
            session.execute("SELECT * FROM system_auth.roles")
    finally:
        shutdown_session(session)


def test_nobody_is_let_in_without_credentials(endpoints):
    anonymous = KafkaAccess(endpoints.kafka_bootstrap_servers, "nobody", "wrong-password")
    admin = AdminClient(client_config(anonymous) | {"log_level": 0})
    with pytest.raises(KafkaException) as refused:
        admin.list_topics(timeout=10)
    assert refused.value.args[0].code() in (
        KafkaError._AUTHENTICATION,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
    )
    with pytest.raises(NoHostAvailable) as cassandra_refused:
        connect(CassandraAccess(endpoints.cassandra_contact_points), timeout=5)
    assert (
        "Authentication" in str(cassandra_refused.value)
        or "auth" in str(cassandra_refused.value).lower()
    )


def test_a_retired_generation_is_refused_by_both_servers(kafka_admin, cassandra, endpoints):
    tenant = _tenant(kafka_admin, cassandra)
    force_id = tenant.resources.force_id
    old = tenant.credentials
    new = ForceCredentials.generate(force_id, 2)
    try:
        ensure_identities(kafka_admin, cassandra, new)
        assert kafka_generations(kafka_admin, force_id) == {1, 2}
        old_gateway = _as(endpoints, old.kafka["gateway"])
        assert _produce_error(old_gateway, tenant.resources.reports_topic) is None  # both valid
        assert retire_generations(kafka_admin, cassandra, force_id, keep=2) == [1]
        assert kafka_generations(kafka_admin, force_id) == {2}
        refused = _produce_error(old_gateway, tenant.resources.reports_topic)
        assert refused is not None
        assert (
            _produce_error(_as(endpoints, new.kafka["gateway"]), tenant.resources.reports_topic)
            is None
        )
        with pytest.raises(NoHostAvailable) as cassandra_refused:
            connect(endpoints.cassandra.as_role(old.cassandra.username, old.cassandra.password))
        assert any(
            isinstance(e, AuthenticationFailed) for e in cassandra_refused.value.errors.values()
        ), cassandra_refused.value
    finally:
        retire_generations(kafka_admin, cassandra, force_id, keep=None)
        delete_topics(kafka_admin, tenant.resources)
        drop_keyspace(cassandra, tenant.resources.keyspace)


def test_credentials_made_again_for_a_generation_replace_the_old_passwords(
    kafka_admin, cassandra, endpoints
):
    # The operator makes new passwords for a generation the servers know when the Secret
    # that held them is gone: the servers must take the new ones (and refuse the old),
    # or every new pod would be refused.
    tenant = _tenant(kafka_admin, cassandra)
    force_id = tenant.resources.force_id
    old, new = tenant.credentials, ForceCredentials.generate(force_id, 1)
    try:
        deadline = time.monotonic() + 30
        while True:  # Cassandra takes one password change per role every 5 s
            try:
                ensure_identities(kafka_admin, cassandra, new)
                break
            except NoHostAvailable as exc:
                if "can only be changed" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(1)
        topic = tenant.resources.reports_topic
        assert _produce_error(_as(endpoints, new.kafka["gateway"]), topic) is None
        assert _produce_error(_as(endpoints, old.kafka["gateway"]), topic) is not None
        role = new.cassandra
        shutdown_session(connect(endpoints.cassandra.as_role(role.username, role.password)))
        with pytest.raises(NoHostAvailable):
            connect(endpoints.cassandra.as_role(old.cassandra.username, old.cassandra.password))
    finally:
        retire_generations(kafka_admin, cassandra, force_id, keep=None)
        delete_topics(kafka_admin, tenant.resources)
        drop_keyspace(cassandra, tenant.resources.keyspace)


QUOTA = 96 * 1024


def test_a_producer_above_its_quota_is_throttled_by_the_broker_not_failed(
    kafka_admin, cassandra, endpoints
):
    tenant = _tenant(kafka_admin, cassandra)
    gateway = tenant.credentials.kafka["gateway"]
    quotas = quota_admin(endpoints.kafka)
    try:
        set_produce_quota(quotas, gateway.username, QUOTA)
        wait_until(  # the controller takes it; each broker learns it a moment later
            lambda: quotas_of(quotas, gateway.username) == {"producer_byte_rate": QUOTA},
            30,
            "the quota to be set",
        )
        throttled: list[float] = []
        producer = Producer(
            producer_config(_as(endpoints, gateway))
            | {"throttle_cb": lambda event: throttled.append(event.throttle_time)}
        )
        errors: list[KafkaError] = []
        # Kafka measures a rate over its last 10 to 11 one-second windows: 1.5 MiB at once
        # is 150 KiB/s to it, above the quota. Random bytes: lz4 cannot shrink them.
        values = random.Random(7)
        for _ in range(384):
            producer.produce(
                tenant.resources.reports_topic,
                values.randbytes(4096),
                on_delivery=lambda err, _msg: errors.append(err) if err else None,
            )
            producer.poll(0)
        assert producer.flush(120) == 0
        producer.poll(1)
        assert errors == []  # every record delivered: slowed, never refused
        assert throttled, "the broker never said it throttled the producer"
        assert max(throttled) > 0
        set_produce_quota(quotas, gateway.username, None)
        wait_until(lambda: quotas_of(quotas, gateway.username) == {}, 30, "the quota removed")
    finally:
        quotas.close()
        retire_generations(kafka_admin, cassandra, tenant.resources.force_id, keep=None)
        delete_topics(kafka_admin, tenant.resources)
        drop_keyspace(cassandra, tenant.resources.keyspace)
