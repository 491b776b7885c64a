"""A force's Kafka topics: reports, alerts and dead letters."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.admin._resource import ResourceType
from confluent_kafka.cimpl import NewPartitions, NewTopic

from peaceland.tenants.errors import ProvisioningError
from peaceland.tenants.forces import ForceResources
from peaceland.tenants.reports import MAX_REPORT_BYTES

log = logging.getLogger(__name__)

#: The largest record batch a force's topic takes, and the largest request its producers
#: send: the largest valid report with its headers (a dead letter carries it whole, with its
#: reason) and the batch's framing, with room to spare. Kafka's default, 1 MB, refuses the
#: largest valid reports.
MAX_RECORD_BYTES: Final = 2 * 1024 * 1024
assert MAX_REPORT_BYTES + 64 * 1024 < MAX_RECORD_BYTES

#: Kafka deletes whole log segments, once their newest record is past the retention: a
#: record stays readable until its segment rolls (``segment.ms``) plus the retention, plus
#: the broker's retention check interval (five minutes by default). Segments roll at least
#: daily, so that "how long can a record still be read" has a bound close to the retention.
MAX_SEGMENT_MS: Final = 24 * 3_600_000
_RETENTION_CHECK_MS: Final = 5 * 60_000
#: The partition count in the controller's refusal of a growth ("already has 4 partition(s)").
_CONTROLLER_COUNT: Final = re.compile(r"\bhas (\d+) partition\(s\)")


def segment_ms(retention_ms: int) -> int:
    return min(retention_ms, MAX_SEGMENT_MS)


def readable_for(retention_ms: int) -> timedelta:
    """The longest a record stays readable in a topic kept ``retention_ms``: how late a
    consumer that was down can still read it."""
    return timedelta(milliseconds=retention_ms + segment_ms(retention_ms) + _RETENTION_CHECK_MS)


@dataclass(frozen=True, slots=True)
class TopicSettings:
    """How a force's topics are laid out. Partitions may grow, never shrink (Kafka's rule)."""

    partitions: int = 6
    replication_factor: int = 1
    retention_ms: int = 7 * 24 * 3600 * 1000
    min_insync_replicas: int = 1

    def config(self) -> dict[str, str]:
        return {
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(self.min_insync_replicas),
            "max.message.bytes": str(MAX_RECORD_BYTES),
            "segment.ms": str(segment_ms(self.retention_ms)),
        }


def ensure_topics(
    admin: AdminClient, resources: ForceResources, settings: TopicSettings, timeout: float = 30.0
) -> list[str]:
    """Create the force's missing topics and grow partition counts; returns topics created.

    A topic that already exists with fewer partitions than asked is grown; one with more is
    left alone (shrinking is impossible in Kafka). Retention and min.insync.replicas are set
    on existing topics too. Raises ProvisioningError when the cluster has fewer brokers than
    the copies asked for.
    """
    metadata = admin.list_topics(timeout=timeout)
    existing = metadata.topics
    missing = [t for t in resources.topics if t not in existing]
    created: list[str] = []
    if missing and settings.replication_factor > len(metadata.brokers):
        raise ProvisioningError(
            "NotEnoughBrokers",
            f"the topics need {settings.replication_factor} copies of each record but the Kafka "
            f"cluster has {len(metadata.brokers)} broker(s): add brokers or lower "
            "spec.kafka.replicationFactor",
        )
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    t, settings.partitions, settings.replication_factor, config=settings.config()
                )
                for t in missing
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for topic, future in futures.items():
            try:
                future.result()
                created.append(topic)
                log.info("created topic %s", topic)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        _wait_until_usable(admin, missing, timeout)
    grow_partitions(
        admin,
        [
            t
            for t in resources.topics
            if t in existing and len(existing[t].partitions) < settings.partitions
        ],
        settings.partitions,
        timeout,
    )
    _configure(admin, [t for t in resources.topics if t in existing], settings, timeout)
    return created


def grow_partitions(
    admin: AdminClient, topics: list[str], partitions: int, timeout: float = 30.0
) -> None:
    """Grow ``topics`` to ``partitions``, each that has fewer by the controller's count."""
    if not topics:
        return
    to_grow = [NewPartitions(t, partitions) for t in topics]
    for topic, future in admin.create_partitions(to_grow, request_timeout=timeout).items():
        try:
            future.result()
            log.info("grew topic %s to %d partitions", topic, partitions)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.INVALID_PARTITIONS or not _already_has(
                admin, topic, partitions, exc.args[0].str(), timeout
            ):
                raise


def _already_has(
    admin: AdminClient, topic: str, partitions: int, refusal: str, timeout: float
) -> bool:
    """Whether a growth Kafka refused as INVALID_PARTITIONS is done: the topic has that many.

    A reconcile right after another asks for a count the topic already has when this
    client's metadata still says fewer, which can last seconds on a long-lived client
    (seen in CI, librdkafka 2.16, while a fresh client saw the growth). The controller's
    refusal says its own count ("Topic already has 4 partition(s)." or "The topic t currently
    has 4 partition(s); 3 would not be an increase."): that is the truth. Any other refusal
    waits for this client's metadata instead.
    """
    said = _CONTROLLER_COUNT.search(refusal)
    if said is not None:
        return int(said.group(1)) >= partitions
    return _grown_to(admin, topic, partitions, timeout)


def _configure(
    admin: AdminClient, topics: list[str], settings: TopicSettings, timeout: float
) -> None:
    """Bring existing topics' configuration to ``settings`` (only what differs)."""
    if not topics:
        return
    wanted = settings.config()
    described = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, t) for t in topics], request_timeout=timeout
    )
    changes = []
    for resource, future in described.items():
        current = {name: entry.value for name, entry in future.result().items()}
        entries = [
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
            for name, value in wanted.items()
            if current.get(name) != value
        ]
        if entries:
            changes.append(
                ConfigResource(ResourceType.TOPIC, resource.name, incremental_configs=entries)
            )
    if not changes:
        return
    for resource, future in admin.incremental_alter_configs(
        changes, request_timeout=timeout
    ).items():
        future.result()
        log.info("topic %s: configuration set to %s", resource.name, wanted)


def _wait_until_usable(admin: AdminClient, topics: list[str], timeout: float) -> None:
    """Return once every broker answers for ``topics``: creation is acknowledged by the
    controller a moment before brokers serve the new topic, and callers mean to use it."""
    deadline = time.monotonic() + timeout
    pending = set(topics)
    while pending:
        futures = admin.describe_topics(TopicCollection(sorted(pending)), request_timeout=timeout)
        for topic, future in futures.items():
            try:
                future.result()
                pending.discard(topic)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise
        if pending and time.monotonic() > deadline:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"topics not usable: {pending}"))
        if pending:
            time.sleep(0.05)


def _grown_to(admin: AdminClient, topic: str, partitions: int, timeout: float) -> bool:
    """Whether ``topic`` has ``partitions`` or more, once the brokers' metadata has caught
    up with a growth (a few seconds at most)."""
    deadline = time.monotonic() + min(timeout, 10.0)
    while partition_count(admin, topic, timeout) < partitions:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def partition_count(admin: AdminClient, topic: str, timeout: float = 30.0) -> int:
    """How many partitions ``topic`` has, as a broker's metadata says (it may lag a growth
    by a moment)."""
    description = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)[
        topic
    ].result()
    return len(description.partitions)


def delete_topics(admin: AdminClient, resources: ForceResources, timeout: float = 30.0) -> None:
    """Delete the force's topics (the ``Delete`` deletion policy, and tests)."""
    existing = admin.list_topics(timeout=timeout).topics
    doomed = [t for t in resources.topics if t in existing]
    if not doomed:
        return
    for future in admin.delete_topics(doomed, operation_timeout=timeout).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
