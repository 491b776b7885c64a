"""The archiver's consumer: take a batch of reports, store it, dead-letter the rest, commit.

While Cassandra refuses writes, or Kafka refuses dead letters, it pauses its partitions and
retries with backoff, so it keeps its place without crashing, and resumes when they are back.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from confluent_kafka import KafkaException, Message, Producer, TopicPartition

from peaceland.services import metrics
from peaceland.services.archiver.settings import ArchiverSettings
from peaceland.services.archiver.store import ReportStore
from peaceland.services.kafka import DeadLetters, consumer_config, decode_batch, producer_config
from peaceland.services.stream import StreamConsumer
from peaceland.tenants.forces import resources_for
from peaceland.tenants.reports import Report

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Counters:
    """What the archiver has done since it started."""

    stored: int = 0
    rejected: int = 0
    write_retries: int = 0


class Archiver(StreamConsumer):
    """Stores every report of one force; the only consumer that dead-letters bad records."""

    name = "archiver"

    def __init__(self, settings: ArchiverSettings, store: ReportStore) -> None:
        self.settings = settings
        self.resources = resources_for(settings.force_id)
        super().__init__(
            settings.force_id,
            self.resources.reports_topic,
            consumer_config(settings.kafka_bootstrap_servers, settings.consumer_group),
            batch_size=settings.batch_size,
            poll_timeout=settings.poll_timeout,
        )
        self.store = store
        self.counters = Counters()
        self._producer = Producer(
            producer_config(settings.kafka_bootstrap_servers)
            | {"message.timeout.ms": int(settings.dead_letter_timeout * 1000)}
        )
        self._dead_letters = DeadLetters(self._producer, self.resources.dead_letter_topic)
        self._stored = metrics.REPORTS_STORED.labels(settings.force_id)
        self._rejected = metrics.RECORDS_REJECTED.labels(settings.force_id, self.name)
        self._retries = metrics.WRITE_RETRIES.labels(settings.force_id, self.name)

    def process(self, records: list[Message], stop: threading.Event) -> bool:
        """Store a batch, then dead-letter its rejects; False if stopped before it was done."""
        decoded = decode_batch(records)
        if not self._store(decoded.reports, stop):
            return False
        for message, reason in decoded.rejects:
            self._dead_letters.send(message, reason)
        if not self._dead_letter(stop):
            return False
        self.counters.rejected += len(decoded.rejects)
        self._rejected.inc(len(decoded.rejects))
        return True

    def close(self) -> None:
        self._producer.flush(10)
        log.info(
            "archiver of %s: %d stored, %d rejected",
            self.force_id,
            self.counters.stored,
            self.counters.rejected,
        )

    def _dead_letter(self, stop: threading.Event) -> bool:
        """Flush the batch's dead letters, retrying with backoff while Kafka does not take
        them (the batch is not committed meanwhile); False if stopped first."""
        backoff = self.settings.retry_backoff
        paused: list[TopicPartition] = []
        try:
            while True:
                try:
                    self._dead_letters.flush(self.settings.dead_letter_timeout)
                    return True
                except KafkaException as exc:
                    if stop.is_set():
                        return False
                    log.warning("dead letters not delivered (%s); retrying in %.1fs", exc, backoff)
                    self.counters.write_retries += 1
                    self._retries.inc()
                    paused = self.pause_while(paused, backoff)
                    backoff = min(backoff * 2, self.settings.retry_backoff_max)
        finally:
            if paused:
                self.consumer.resume(paused)

    def _store(self, reports: list[Report], stop: threading.Event) -> bool:
        """Write until every report is stored (retrying with backoff) or ``stop`` is set."""
        pending = reports
        backoff = self.settings.retry_backoff
        paused: list[TopicPartition] = []
        try:
            while pending:
                outcome = self.store.write(pending)
                self.counters.stored += outcome.written
                self._stored.inc(outcome.written)
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
                self._retries.inc()
                paused = self.pause_while(paused, backoff)
                backoff = min(backoff * 2, self.settings.retry_backoff_max)
            return True
        finally:
            if paused:
                self.consumer.resume(paused)
