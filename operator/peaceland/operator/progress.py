"""Whether a force's consumers make progress, judged from Kafka alone.

A consumer can be running, its pod ready, and still store nothing: retrying a write that
Cassandra refuses, stuck, or never started. Kafka knows: the consumer group's committed
offsets stand still while reports wait behind them (lag). The operator reads both for each
consumer group of the force, remembers when each last moved, and calls a group stalled once
it has had reports waiting and committed nothing for ``stall_after`` seconds. No cooperation
of the consumer is needed, so a hang, a crash loop and a retry loop all show the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from peaceland.tenants.forces import consumer_group, resources_for
from peaceland.tenants.workloads import CONSUMERS

#: librdkafka's "no committed offset" (OFFSET_INVALID).
_NO_OFFSET: Final = -1001


@dataclass(frozen=True, slots=True)
class Offsets:
    """A consumer group on one partition of the force's reports topic."""

    committed: int
    lag: int


@dataclass(frozen=True, slots=True)
class Seen:
    """What the operator remembers of a group on one partition: its committed offset, and
    since when it has had reports waiting without committing (None while it keeps up)."""

    committed: int
    still_since: float | None


@dataclass(frozen=True, slots=True)
class Verdict:
    consumer: str
    lag: int
    #: The longest any of the group's partitions has had reports waiting with no commit.
    still_for: float
    stalled: bool

    def __str__(self) -> str:
        if self.stalled:
            return (
                f"the {self.consumer} has committed nothing for {self.still_for:.0f}s on a "
                f"partition where reports wait ({self.lag} waiting in all)"
            )
        return f"{self.consumer}: {self.lag} waiting"


def judge(seen: Seen | None, now: Offsets, at: float) -> Seen:
    """What to remember of one partition after observing ``now`` at monotonic time ``at``:
    still since the last time its commit moved (or it was first seen behind)."""
    if now.lag == 0:
        return Seen(now.committed, None)
    if seen is None or now.committed != seen.committed or seen.still_since is None:
        return Seen(now.committed, at)
    return seen


@dataclass
class Progress:
    """The consumers of one force, watched across checks (kept in the operator's memory).

    Judged partition by partition: with several replicas, one stuck replica's partitions
    stall while the others commit, and a sum over partitions would hide it.
    """

    stall_after: float
    seen: dict[tuple[str, int], Seen] = field(default_factory=dict)

    def check(self, admin: AdminClient, force_id: str, timeout: float) -> list[Verdict]:
        """Read each consumer group's offsets and say which ones have stalled."""
        at = time.monotonic()
        verdicts = []
        for consumer in CONSUMERS:
            offsets = group_offsets(admin, force_id, consumer, timeout)
            still_for = 0.0
            for partition, now in offsets.items():
                seen = judge(self.seen.get((consumer, partition)), now, at)
                self.seen[(consumer, partition)] = seen
                if seen.still_since is not None:
                    still_for = max(still_for, at - seen.still_since)
            lag = sum(o.lag for o in offsets.values())
            verdicts.append(Verdict(consumer, lag, still_for, still_for >= self.stall_after))
        return verdicts


def group_offsets(
    admin: AdminClient, force_id: str, consumer: str, timeout: float
) -> dict[int, Offsets]:
    """The group's committed offset on each partition of the reports topic, and how far
    behind its end it is (the end as a read_committed reader sees it; a partition never
    committed counts from its first record)."""
    topic = resources_for(force_id).reports_topic
    metadata = admin.list_topics(topic, timeout=timeout).topics[topic]
    partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
    if not partitions:
        return {}
    group = consumer_group(force_id, consumer)
    listed = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, partitions)], request_timeout=timeout
    )[group].result()
    committed = {tp.partition: tp.offset for tp in listed.topic_partitions}
    ends = _offsets(admin, partitions, OffsetSpec.latest(), timeout)  # type: ignore[no-untyped-call]
    starts = _offsets(admin, partitions, OffsetSpec.earliest(), timeout)  # type: ignore[no-untyped-call]
    out = {}
    for tp in partitions:
        position = committed.get(tp.partition, _NO_OFFSET)
        if position == _NO_OFFSET:
            position = starts[tp.partition]
        out[tp.partition] = Offsets(position, max(0, ends[tp.partition] - position))
    return out


def _offsets(
    admin: AdminClient, partitions: list[TopicPartition], spec: OffsetSpec, timeout: float
) -> dict[int, int]:
    futures = admin.list_offsets(
        {tp: spec for tp in partitions},
        isolation_level=IsolationLevel.READ_COMMITTED,
        request_timeout=timeout,
    )
    return {tp.partition: future.result().offset for tp, future in futures.items()}
