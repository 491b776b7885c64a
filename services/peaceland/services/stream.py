"""The poll loop shared by every stream consumer: take a batch, process it, commit it.

A consumer subclasses :class:`StreamConsumer` and writes ``process`` (and ``commit`` when
offsets go through a transaction). The loop never sleeps on the happy path: it blocks only
until the first record arrives, then takes what is already buffered, up to the batch size.
``consume(n, timeout)`` would instead wait for ``n`` records or the timeout, a micro-batch
delay on every alert.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from cassandra.cluster import Session
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import Gauge

from peaceland.services import metrics
from peaceland.services.settings import ConsumerSettings
from peaceland.tenants.cassandra import connect, shutdown_session

log = logging.getLogger(__name__)


def take_batch(consumer: Consumer, max_records: int, timeout: float) -> list[Message]:
    """Up to ``max_records`` records: wait up to ``timeout`` for the first, none for the rest."""
    first = consumer.poll(timeout)
    if first is None:
        return []
    batch = [first]
    if max_records > 1:
        batch.extend(consumer.consume(num_messages=max_records - 1, timeout=0))
    return batch


def next_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """The offsets to commit once ``messages`` are handled: one past the last, per partition."""
    highest: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic() or "", m.partition() or 0)
        highest[key] = max(highest.get(key, -1), m.offset() or 0)
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(highest.items())]


def total_lag(stats_json: str) -> int | None:
    """Records behind the end, summed over partitions, from librdkafka's statistics."""
    stats = json.loads(stats_json)
    lags = [
        partition.get("consumer_lag", -1)
        for topic in stats.get("topics", {}).values()
        for pid, partition in topic.get("partitions", {}).items()
        if pid != "-1"
    ]
    known = [lag for lag in lags if lag >= 0]
    return sum(known) if known else None


class StreamConsumer(ABC):
    """One force's consumer of one topic, until ``stop`` is set; then it commits and closes."""

    #: Names the consumer in logs and metrics: archiver, alerter, …
    name: str

    def __init__(
        self,
        force_id: str,
        topic: str,
        config: dict[str, object],
        *,
        batch_size: int,
        poll_timeout: float,
    ) -> None:
        self.force_id = force_id
        self.topic = topic
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        lag = metrics.CONSUMER_LAG.labels(force_id, self.name)
        self.consumer = Consumer(
            {
                **config,
                "statistics.interval.ms": 5_000,
                "stats_cb": lambda stats: _set_lag(lag, stats),
            }
        )
        self._batch_seconds = metrics.BATCH_SECONDS.labels(force_id, self.name)
        self._consumed = metrics.RECORDS_CONSUMED.labels(force_id, self.name)

    @abstractmethod
    def process(self, records: list[Message], stop: threading.Event) -> bool:
        """Handle a batch; False when ``stop`` interrupted it (then nothing is committed)."""

    def commit(self, records: list[Message]) -> None:
        """Commit the batch's offsets (after ``process`` made its effects durable)."""
        try:
            self.consumer.commit(offsets=next_offsets(records), asynchronous=False)
        except KafkaException as exc:
            # Typically a rebalance took the partitions away mid-batch. Nothing is lost: the
            # new owner replays the batch, and replays are idempotent.
            log.warning("%s: commit failed, the batch will be replayed: %s", self.name, exc)

    def idle(self) -> None:  # noqa: B027 - a hook
        """Called when a poll brought nothing: time for deferred work."""

    def revoked(self, partitions: list[TopicPartition]) -> None:  # noqa: B027 - a hook
        """Called when a rebalance takes ``partitions`` away (before another consumer gets them)."""

    def finish(self) -> None:  # noqa: B027 - a hook
        """Called on the way out, while the consumer is still a member of its group."""

    def close(self) -> None:  # noqa: B027 - a hook: most consumers hold nothing more
        """Release what ``process`` holds, after the consumer has left the group."""

    def run(self, stop: threading.Event) -> None:
        self.consumer.subscribe(
            [self.topic],
            on_revoke=lambda _consumer, partitions: self.revoked(partitions),
            on_lost=lambda _consumer, partitions: self.revoked(partitions),
        )
        log.info("%s of %s: consuming %s", self.name, self.force_id, self.topic)
        try:
            while not stop.is_set():
                batch = take_batch(self.consumer, self.batch_size, self.poll_timeout)
                records = [m for m in batch if not _is_error(m)]
                if not records:
                    self.idle()
                    continue
                began = time.perf_counter()
                self._consumed.inc(len(records))
                if self.process(records, stop):
                    self.commit(records)
                self._batch_seconds.observe(time.perf_counter() - began)
        finally:
            # A batch interrupted by stop is not committed: it is replayed on restart.
            try:
                self.finish()
            except KafkaException as exc:
                log.warning(
                    "%s of %s: could not finish (%s); the rest is replayed on restart",
                    self.name,
                    self.force_id,
                    exc,
                )
            self.consumer.close()
            self.close()
            log.info("%s of %s stopped", self.name, self.force_id)

    def pause_while(self, paused: list[TopicPartition], seconds: float) -> list[TopicPartition]:
        """Wait with every partition paused, still polling so the group keeps us as a member.

        A record can still come back from a partition assigned during the wait: it is put
        back (seek) and its partition paused too, so it is processed later, never skipped.
        Returns the partitions now paused; resume them when done.
        """
        known = {(p.topic, p.partition) for p in paused}
        new = [tp for tp in self.consumer.assignment() if (tp.topic, tp.partition) not in known]
        if new:
            self.consumer.pause(new)
            paused = paused + new
        message = self.consumer.poll(seconds)
        if message is not None and message.error() is None:
            where = TopicPartition(
                message.topic() or "", message.partition() or 0, message.offset() or 0
            )
            self.consumer.seek(where)
            self.consumer.pause([where])
            paused = [*paused, where]
        return paused


def _set_lag(gauge: Gauge, stats_json: str) -> None:
    lag = total_lag(stats_json)
    if lag is not None:
        gauge.set(lag)


def _is_error(message: Message) -> bool:
    error = message.error()
    if error is None:
        return False
    if error.code() != KafkaError._PARTITION_EOF:
        log.error("consumer error: %s", error)
    return True


def main(settings: ConsumerSettings, build: Callable[[Session], StreamConsumer]) -> None:
    """Run a consumer process until SIGTERM: logs, metrics, a Cassandra session, the loop.

    ``build`` makes the consumer from the session. SIGTERM (Kubernetes stopping the pod) and
    Ctrl-C let the current batch finish and commit before the process exits.
    """
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("cassandra").setLevel(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    metrics.serve(settings.metrics_port)
    session = connect(settings.cassandra_contact_points)
    try:
        build(session).run(stop)
    finally:
        shutdown_session(session)
