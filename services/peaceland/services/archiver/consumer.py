"""The archiver's poll loop: take a batch, write it, then commit it.

Nothing here sleeps on the happy path: ``consume`` returns as soon as records arrive. While
Cassandra refuses writes, the loop pauses its partitions and retries the same batch with
backoff, so it keeps its place without crashing, and resumes when Cassandra is back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from peaceland.services.archiver.settings import ArchiverSettings
from peaceland.services.archiver.store import ReportStore
from peaceland.services.kafka import DeadLetters, consumer_config, producer_config, received_at
from peaceland.tenants.errors import InvalidRecordError
from peaceland.tenants.forces import resources_for
from peaceland.tenants.reports import Report, decode_report

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Counters:
    """What the archiver has done since it started."""

    stored: int = 0
    rejected: int = 0
    batches: int = 0
    write_retries: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decoded:
    reports: list[Report]
    rejects: list[tuple[Message, str]]


def decode_batch(messages: Sequence[Message]) -> Decoded:
    """Split a batch into valid reports and records to dead-letter, each with its reason."""
    reports: list[Report] = []
    rejects: list[tuple[Message, str]] = []
    for message in messages:
        value = message.value()
        if value is None:
            rejects.append((message, "empty record: a report topic takes no tombstones"))
            continue
        try:
            reports.append(decode_report(value, received_at=received_at(message)))
        except InvalidRecordError as exc:
            rejects.append((message, exc.reason))
    return Decoded(reports, rejects)


def next_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """The offsets to commit once ``messages`` are all handled: one past the last, per partition."""
    highest: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic() or "", m.partition() or 0)
        highest[key] = max(highest.get(key, -1), m.offset() or 0)
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(highest.items())]


class Archiver:
    """Archives one force's reports until ``stop`` is set, then commits and closes."""

    def __init__(
        self,
        settings: ArchiverSettings,
        store: ReportStore,
        consumer_factory: Callable[[dict[str, object]], Consumer] = Consumer,
    ) -> None:
        self.settings = settings
        self.resources = resources_for(settings.force_id)
        self.store = store
        self.counters = Counters()
        self._consumer = consumer_factory(
            consumer_config(settings.kafka_bootstrap_servers, settings.consumer_group)
        )
        self._producer = Producer(producer_config(settings.kafka_bootstrap_servers))
        self._dead_letters = DeadLetters(self._producer, self.resources.dead_letter_topic)

    def run(self, stop: threading.Event) -> None:
        self._consumer.subscribe([self.resources.reports_topic])
        log.info(
            "archiving %s into keyspace %s (group %s)",
            self.resources.reports_topic,
            self.resources.keyspace,
            self.settings.consumer_group,
        )
        try:
            while not stop.is_set():
                messages = self._consumer.consume(
                    num_messages=self.settings.batch_size, timeout=self.settings.poll_timeout
                )
                records = [m for m in messages if not self._is_error(m)]
                if records and self._handle(records, stop):
                    self._commit(records)
        finally:
            # A batch interrupted by stop is not committed: it is replayed on restart.
            self._consumer.close()
            self._producer.flush(10)
            log.info(
                "archiver stopped: %d stored, %d rejected",
                self.counters.stored,
                self.counters.rejected,
            )

    def _handle(self, records: list[Message], stop: threading.Event) -> bool:
        """Store a batch, then dead-letter its rejects; False if stopped before it was done."""
        decoded = decode_batch(records)
        if not self._store(decoded.reports, stop):
            return False
        for message, reason in decoded.rejects:
            self._dead_letters.send(message, reason)
        self._dead_letters.flush()
        self.counters.rejected += len(decoded.rejects)
        return True

    def _store(self, reports: list[Report], stop: threading.Event) -> bool:
        """Write until every report is stored (retrying with backoff) or ``stop`` is set."""
        pending = reports
        backoff = self.settings.retry_backoff
        paused: list[TopicPartition] = []
        try:
            while pending:
                outcome = self.store.write(pending)
                self.counters.stored += outcome.written
                if not outcome.failed:
                    return True
                if stop.is_set():
                    return False
                log.warning(
                    "%d of %d writes failed (%s); retrying in %.1fs",
                    len(outcome.failed),
                    len(pending),
                    outcome.failed[0][1],
                    backoff,
                )
                pending = [report for report, _ in outcome.failed]
                self.counters.write_retries += 1
                paused = self._wait_paused(paused, backoff)
                backoff = min(backoff * 2, self.settings.retry_backoff_max)
            return True
        finally:
            if paused:
                self._consumer.resume(paused)

    def _wait_paused(self, paused: list[TopicPartition], seconds: float) -> list[TopicPartition]:
        """Wait with every partition paused, still polling so the group keeps us as a member.

        A record can still come back from a partition assigned during the wait: it is put
        back (seek) and its partition paused too, so it is processed later, never skipped.
        """
        assignment = self._consumer.assignment()
        new = [
            tp
            for tp in assignment
            if (tp.topic, tp.partition) not in {(p.topic, p.partition) for p in paused}
        ]
        if new:
            self._consumer.pause(new)
            paused = paused + new
        message = self._consumer.poll(seconds)
        if message is not None and message.error() is None:
            where = TopicPartition(
                message.topic() or "", message.partition() or 0, message.offset() or 0
            )
            self._consumer.seek(where)
            self._consumer.pause([where])
            paused = [*paused, where]
        return paused

    def _commit(self, records: list[Message]) -> None:
        try:
            self._consumer.commit(offsets=next_offsets(records), asynchronous=False)
        except KafkaException as exc:
            # Typically a rebalance took the partitions away mid-batch. Nothing is lost: the
            # new owner replays the batch, and the rewrites land on the same rows.
            log.warning("commit failed, the batch will be replayed: %s", exc)
            return
        self.counters.batches += 1

    def _is_error(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return False
        if error.code() == KafkaError._PARTITION_EOF:
            return True
        log.error("consumer error: %s", error)
        return True
