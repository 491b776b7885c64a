"""The consumers' lag over a run: how far each group's commits are behind the reports topic's
end, sampled every few seconds, so that a run shows whether the lag stays bounded or grows."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from peaceland.tenants.forces import ForceResources, consumer_group
from peaceland.tenants.kafka import KafkaAccess, client_config, is_transient
from peaceland.tenants.workloads import CONSUMERS


@dataclass
class LagSampler:
    """Samples, every ``every`` seconds, the reports topic's end offset and each consumer
    group's lag behind it (records not yet committed), from ``start`` to ``stop``. A
    sample's ``seconds`` count from ``origin`` (wall clock, set by ``start``)."""

    kafka: KafkaAccess
    force: ForceResources
    every: float = 1.0
    samples: list[dict[str, Any]] = field(default_factory=list)
    origin: float = 0.0
    #: Why sampling stopped early, if it did.
    error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.origin = time.time()
        self._thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> list[dict[str, Any]]:
        """Stops sampling; the samples taken (a copy: a late sample never changes it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        return list(self.samples)

    def _run(self) -> None:
        admin = AdminClient(client_config(self.kafka))
        consumer = Consumer(client_config(self.kafka) | {"group.id": "bench-lag"})
        try:
            partitions = reports_partitions(consumer, self.force)
            while not self._stop.is_set():
                at = time.time()
                try:
                    figures = lag_of(admin, consumer, self.force, partitions)
                    self.samples.append({"seconds": round(at - self.origin, 1)} | figures)
                except KafkaException as exc:
                    if not is_transient(exc):
                        raise
                self._stop.wait(max(0.0, self.every - (time.time() - at)))
        except Exception as exc:  # the run says sampling failed rather than judging on less
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            consumer.close()


def reports_partitions(consumer: Consumer, force: ForceResources) -> list[TopicPartition]:
    """The partitions of the force's reports topic, as Kafka lists them now."""
    topic = force.reports_topic
    listed = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    return [TopicPartition(topic, p) for p in listed]


def lag_of(
    admin: AdminClient,
    consumer: Consumer,
    force: ForceResources,
    partitions: list[TopicPartition],
) -> dict[str, int]:
    """The reports topic's end offset (summed over ``partitions``) and how many records
    each consumer group has yet to commit, partition by partition.

    The groups' commits are read first and the ends after them: a commit that lands in
    between then adds to the end, never makes a lag below zero."""
    committed: dict[str, dict[int, int]] = {}
    for group in CONSUMERS:
        name = consumer_group(force.force_id, group)
        offsets = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(name, partitions)], request_timeout=10
        )[name].result(timeout=15)
        committed[group] = {tp.partition: max(tp.offset, 0) for tp in offsets.topic_partitions}
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
    figures = {"end_offset": sum(ends.values())}
    for group, offsets in committed.items():
        figures[group] = sum(max(0, end - offsets.get(p, 0)) for p, end in ends.items())
    return figures


def lag_growth(
    samples: list[dict[str, Any]], *, since: float, until: float
) -> dict[str, float | None]:
    """How fast each consumer group's lag grew between ``since`` and ``until`` seconds
    (records a second, the least-squares slope of its samples): about zero when it keeps
    up, the shortfall of its rate when it does not. None with fewer than 5 samples."""
    window = [s for s in samples if since <= s["seconds"] <= until]
    growth: dict[str, float | None] = {}
    for group in CONSUMERS:
        if len(window) < 5:
            growth[group] = None
            continue
        xs = [s["seconds"] for s in window]
        ys = [float(s[group]) for s in window]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        spread = sum((x - mean_x) ** 2 for x in xs)
        growth[group] = (
            round(sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread, 1)
            if spread
            else None
        )
    return growth
