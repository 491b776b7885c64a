"""The poll loop shared by every stream consumer: take a batch, process it, commit it.

A consumer subclasses :class:`StreamConsumer` and writes ``process`` (and ``commit`` when
offsets go through a transaction). The loop never sleeps on the happy path: it blocks only
until the first record arrives, then takes what is already buffered, up to the batch size.
``consume(n, timeout)`` would instead wait for ``n`` records or the timeout, a micro-batch
delay on every alert.

One retry mechanism serves every consumer: a step that fails for a reason that heals raises
:class:`Retry`; :meth:`StreamConsumer.until_done` pauses the partitions (still polling, so
the group keeps the consumer), waits with exponential backoff, and runs the step again,
until it succeeds or the consumer is asked to stop. Meanwhile the batch is not committed,
the health endpoint says the consumer is retrying and why, and the retry metrics count.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from cassandra.cluster import Session
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import Gauge

from peaceland.services import health, metrics
from peaceland.services.settings import ConsumerSettings
from peaceland.tenants.cassandra import connect, shutdown_session
from peaceland.tenants.kafka import Config

log = logging.getLogger(__name__)


class Retry(Exception):  # noqa: N818 - it names what the loop does with it
    """A step could not finish for a reason that heals (a server away, slow or refusing for
    a while): pause and run it again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def take_batch(consumer: Consumer, max_records: int, timeout: float) -> list[Message]:
    """Up to ``max_records`` records: wait up to ``timeout`` for the first, none for the rest.

    Never longer: a rebalance served while waiting for more would mix two assignments of a
    partition in one batch (a linger for fuller batches was measured, gained nothing clear,
    and was taken out for that reason: docs/benchmarks.md)."""
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
    """Records behind the end, summed over partitions, from librdkafka's statistics: from
    what the consumer has taken (``app_offset``) to the last stable offset, not from its
    committed offset, which a consumer whose offsets go through a producer's transactions
    (the alerter) never updates."""
    stats = json.loads(stats_json)
    lags = [
        partition.get("ls_offset", -1) - partition["app_offset"]
        for topic in stats.get("topics", {}).values()
        for pid, partition in topic.get("partitions", {}).items()
        if pid != "-1" and partition.get("app_offset", -1) >= 0
    ]
    known = [lag for lag in lags if lag >= 0]
    return sum(known) if known else None


class StreamConsumer(ABC):
    """One force's consumer of its topics, until ``stop`` is set; then it commits and closes."""

    #: Names the consumer in logs and metrics: archiver, alerter, …
    name: str

    def __init__(
        self, settings: ConsumerSettings, topics: str | tuple[str, ...], config: Config
    ) -> None:
        self.settings = settings
        self.force_id = settings.force_id
        #: The topics it reads (most consumers read one; the lake reads three).
        self.topics = (topics,) if isinstance(topics, str) else topics
        self.batch_size = settings.batch_size
        self.poll_timeout = settings.poll_timeout
        self.health = health.Health(settings.liveness_timeout, settings.ready_grace)
        #: Attempts retried since the consumer started, every step counted.
        self.retries = 0
        self._owned: frozenset[tuple[str, int]] = frozenset()
        self._reassigned = False
        # Bumped each time a partition is assigned or taken away: a batch's records count as
        # ours only while their partition's epoch is the one it had when they were fetched.
        self._epochs: dict[tuple[str, int], int] = {}
        self._fetched: dict[tuple[str, int], int] = {}
        force = settings.force_id
        lag = metrics.CONSUMER_LAG.labels(force, self.name)
        self.consumer = Consumer(
            {
                **config,
                "statistics.interval.ms": 5_000,
                "stats_cb": lambda stats: _set_lag(lag, stats),
            }
        )
        self._batch_seconds = metrics.BATCH_SECONDS.labels(force, self.name)
        self._consumed = metrics.RECORDS_CONSUMED.labels(force, self.name)
        self._committed_at = metrics.LAST_COMMIT.labels(force, self.name)
        metrics.RETRYING_SECONDS.labels(force, self.name).set_function(self.health.retrying_seconds)

    @abstractmethod
    def process(self, records: list[Message], stop: threading.Event) -> bool:
        """Handle a batch; False when ``stop`` interrupted it (then nothing is committed)."""

    def commit(self, records: list[Message]) -> None:
        """Commit the batch's offsets (after ``process`` made its effects durable), for the
        partitions still ours since the batch was fetched (``steady``)."""
        steady = self.steady()
        self.commit_offsets(
            next_offsets([m for m in records if (m.topic(), m.partition()) in steady])
        )

    def commit_offsets(self, offsets: list[TopicPartition]) -> None:
        """Commit ``offsets`` now; a failure is logged, not raised: typically a rebalance
        took the partitions away mid-batch, and their new owner replays what is not
        committed (replays are idempotent)."""
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
            self.committed()
        except KafkaException as exc:
            log.warning("%s: commit failed, what follows it will be replayed: %s", self.name, exc)

    def committed(self) -> None:
        """Record that offsets were committed (progress, as the metrics and operator see it)."""
        self._committed_at.set_to_current_time()

    def prepare(self, stop: threading.Event) -> None:  # noqa: B027 - a hook
        """Called once before the consumer joins its group (the alerter claims its slot)."""

    def idle(self, stop: threading.Event) -> None:  # noqa: B027 - a hook
        """Called when a poll brought nothing: time for deferred work (``stop``: the loop's,
        for work that retries with ``until_done``)."""

    def revoked(self, partitions: list[TopicPartition]) -> None:  # noqa: B027 - a hook
        """Called when a rebalance takes ``partitions`` away (before another consumer gets them)."""

    def finish(self) -> None:  # noqa: B027 - a hook
        """Called on the way out, while the consumer is still a member of its group."""

    def close(self) -> None:  # noqa: B027 - a hook: most consumers hold nothing more
        """Release what ``process`` holds, after the consumer has left the group."""

    def subscribe(self) -> None:
        self.consumer.subscribe(
            list(self.topics),
            on_assign=lambda _consumer, partitions: self._assigned(partitions),
            on_revoke=lambda _consumer, partitions: self._revoked(partitions),
            on_lost=lambda _consumer, partitions: self._revoked(partitions),
        )

    def _assigned(self, partitions: list[TopicPartition]) -> None:
        # Cooperative rebalancing: each callback adds or takes away only what changed.
        self._bump(partitions)
        self._owned = self._owned | {(tp.topic, tp.partition) for tp in partitions}
        # A partition paused before it was lost, then given back, must not come back paused:
        # nothing outside a retry is ever paused (see _unpause).
        self._reassigned = True

    def _revoked(self, partitions: list[TopicPartition]) -> None:
        self._bump(partitions)
        self._owned = self._owned - {(tp.topic, tp.partition) for tp in partitions}
        self.revoked(partitions)

    def _bump(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._epochs[key] = self._epochs.get(key, 0) + 1

    def epoch(self, key: tuple[str, int]) -> int:
        """How many times ``key`` was assigned or taken away so far: an assignment's id."""
        return self._epochs.get(key, 0)

    def steady(self) -> frozenset[tuple[str, int]]:
        """The partitions of the current batch that have stayed ours since it was fetched.

        A partition lost during a retry and given back since is not steady: its new owner
        (or we, from its committed offset) reads those records again, so this batch must
        neither act on them nor commit them, or they would be acted on twice.
        """
        return frozenset(
            key
            for key, epoch in self._fetched.items()
            if key in self._owned and self._epochs.get(key) == epoch
        )

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, then finish, commit and leave the group.

        An exception ends the loop at once, without the goodbyes: closing a consumer whose
        coordinator is gone can block, and the process is about to end and be restarted.
        A batch not committed is replayed by whoever owns its partition next.
        """
        self.health.tick("prepare")
        self.prepare(stop)
        self.subscribe()
        self.health.started()
        log.info("%s of %s: consuming %s", self.name, self.force_id, ", ".join(self.topics))
        while not stop.is_set():
            self.health.tick("poll")
            if self._reassigned:
                self._unpause()
            batch = take_batch(self.consumer, self.batch_size, self.poll_timeout)
            records = [m for m in batch if not self._is_error(m)]
            self._fetched = {
                key: self._epochs.get(key, 0)
                for key in {(m.topic() or "", m.partition() or 0) for m in records}
            }
            if not records:
                self.health.tick("idle")
                self.idle(stop)
                continue
            began = time.perf_counter()
            self._consumed.inc(len(records))
            self.health.tick("process")
            if self.process(records, stop):
                self.health.tick("commit")
                self.commit(records)
            self._batch_seconds.observe(time.perf_counter() - began)
        self.health.tick("finish")
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

    def until_done(self, step: str, attempt: Callable[[], None], stop: threading.Event) -> bool:
        """Run ``attempt`` until it returns without raising :class:`Retry`; False if ``stop``
        was set first. Between attempts every partition is paused and the consumer polls,
        so it keeps its place in the group and takes no new records; a partition revoked
        meanwhile is no longer ours, which ``attempt`` must check (``owned``)."""
        backoff = self.settings.retry_backoff
        paused: list[TopicPartition] = []
        retries = metrics.RETRIES.labels(self.force_id, self.name, step)
        try:
            while True:
                try:
                    attempt()
                    return True
                except Retry as exc:
                    if stop.is_set():
                        return False
                    self.health.retrying(step, exc.reason)
                    self.retries += 1
                    retries.inc()
                    log.warning(
                        "%s of %s: %s failed (%s); retrying in %.1fs",
                        self.name,
                        self.force_id,
                        step,
                        exc.reason,
                        backoff,
                    )
                    self.health.tick(f"retry {step}")
                    paused = self.pause_while(paused, backoff)
                    backoff = min(backoff * 2, self.settings.retry_backoff_max)
        finally:
            self.health.recovered()
            if paused:
                self._unpause()

    def owned(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs assigned to this consumer now, as its rebalance
        callbacks said. Safe to read from any thread (asking librdkafka for its assignment
        from another thread while the consumer polls can block for good)."""
        return self._owned

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
        error = message.error() if message is not None else None
        if error is not None and error.fatal():
            raise KafkaException(error)
        if message is not None and error is None:
            where = TopicPartition(
                message.topic() or "", message.partition() or 0, message.offset() or 0
            )
            self.consumer.seek(where)
            self.consumer.pause([where])
            paused = [*paused, where]
        return paused

    def _unpause(self) -> None:
        """Resume every partition assigned to us. Partitions are paused only inside a retry
        (``until_done``); one left paused afterwards, because it was lost during the retry
        and given back since, would never be read again: the alerter once stalled so, in
        silence, after the broker coordinating its group went down."""
        self._reassigned = False
        assignment = self.consumer.assignment()
        if assignment:
            self.consumer.resume(assignment)

    def _is_error(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return False
        if error.fatal():
            # The consumer can never work again (fenced, misconfigured): end the process so
            # that it is restarted fresh, rather than poll on in vain.
            raise KafkaException(error)
        if error.code() != KafkaError._PARTITION_EOF:
            log.error("%s of %s: consumer error: %s", self.name, self.force_id, error)
        return True


def _set_lag(gauge: Gauge, stats_json: str) -> None:
    lag = total_lag(stats_json)
    if lag is not None:
        gauge.set(lag)


def main(settings: ConsumerSettings, build: Callable[[Session], StreamConsumer]) -> None:
    """Run a consumer process that writes to Cassandra until SIGTERM: ``build`` makes the
    consumer from a session to the force's keyspace (see ``serve``)."""
    session = connect(
        settings.cassandra_access(),
        timeout=settings.cassandra_request_timeout,
        consistency=settings.cassandra_consistency,
        serial_consistency=settings.cassandra_serial_consistency,
    )
    try:
        serve(settings, lambda: build(session))
    finally:
        shutdown_session(session)


def serve(settings: ConsumerSettings, build: Callable[[], StreamConsumer]) -> None:
    """Run a consumer process until SIGTERM: logs, probes, metrics, the loop.

    SIGTERM (Kubernetes stopping the pod) and Ctrl-C let the current batch finish and
    commit before the process exits. An error the loop cannot handle ends the process with
    status 1, so that Kubernetes restarts it; SIGUSR1 writes every thread's stack to stderr.
    """
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("cassandra").setLevel(logging.WARNING)
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        consumer = build()
        health.serve(settings.metrics_port, consumer.health)
        health.watch(consumer.health, stop)
        consumer.run(stop)
    except Exception:
        log.exception("%s: fatal error, exiting to be restarted", settings.consumer_group)
        sys.stderr.flush()
        # Closing a consumer whose broker is gone can block; a restart needs no goodbye.
        os._exit(1)
