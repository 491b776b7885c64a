"""The archiver's consumer: take a batch of reports, store it, dead-letter the rest, commit.

Three outcomes for a record, none of which stops the consumer:
- stored (then committed);
- set aside with its reason on the dead-letter topic: it breaks the data contract, or its
  report id is already stored with other content, or Cassandra refused it for a reason no
  retry changes (``is_transient``);
- retried: Cassandra away, slow or overloaded, or Kafka not taking the dead letters. The
  partitions pause and the step runs again with backoff (``StreamConsumer.until_done``); the
  batch is committed only once every record is stored or dead-lettered.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from confluent_kafka import KafkaException, Message, Producer

from peaceland.services import metrics
from peaceland.services.archiver.settings import ArchiverSettings
from peaceland.services.archiver.store import ReportStore
from peaceland.services.kafka import DeadLetters, consumer_config, decode_batch
from peaceland.services.stream import Retry, StreamConsumer
from peaceland.tenants.forces import resources_for
from peaceland.tenants.kafka import producer_config

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Counters:
    """What the archiver has done since it started."""

    stored: int = 0
    rejected: int = 0


class Archiver(StreamConsumer):
    """Stores every report of one force; the only consumer that dead-letters bad records."""

    name = "archiver"

    def __init__(self, settings: ArchiverSettings, store: ReportStore) -> None:
        self.resources = resources_for(settings.force_id)
        super().__init__(
            settings,
            self.resources.reports_topic,
            consumer_config(settings.kafka_access(), settings.consumer_group),
        )
        self.dead_letter_timeout = settings.dead_letter_timeout
        self.store = store
        # A chunk of requests takes at most a few waves of Cassandra's request timeout.
        allowance = 4 * settings.cassandra_request_timeout + 10
        store.progress = lambda: self.health.tick("store", allowance)
        self.counters = Counters()
        self._producer = Producer(
            producer_config(settings.kafka_access())
            | {"message.timeout.ms": int(settings.dead_letter_timeout * 1000)}
        )
        self._dead_letters = DeadLetters(self._producer, self.resources.dead_letter_topic)
        self._stored = metrics.REPORTS_STORED.labels(settings.force_id)

    def process(self, records: list[Message], stop: threading.Event) -> bool:
        """Store a batch, then dead-letter what cannot be stored; False if stopped first."""
        decoded = decode_batch(records)
        set_aside = [(message, reason, "contract") for message, reason in decoded.rejects]
        pending = list(range(len(decoded.reports)))

        def store() -> None:
            nonlocal pending
            # Partitions lost during a pause are their new owner's to store.
            steady = self.steady()
            pending = [
                i
                for i in pending
                if (decoded.messages[i].topic(), decoded.messages[i].partition()) in steady
            ]
            outcome = self.store.write([decoded.reports[i] for i in pending])
            self.counters.stored += outcome.written
            self._stored.inc(outcome.written)
            for index, kind, reason in outcome.refused:
                set_aside.append((decoded.messages[pending[index]], reason, kind))
            if outcome.failed:
                first_error = outcome.failed[0][1]
                failed = len(outcome.failed)
                pending = [pending[index] for index, _ in outcome.failed]
                raise Retry(f"{failed} of {len(decoded.reports)} writes failed: {first_error}")
            pending = []

        if not self.until_done("store", store, stop):
            return False
        steady = self.steady()
        set_aside = [item for item in set_aside if (item[0].topic(), item[0].partition()) in steady]
        for message, reason, _ in set_aside:
            self._dead_letters.send(message, reason)
        if not self.until_done("dead letters", self._flush_dead_letters, stop):
            return False
        for _, _, kind in set_aside:
            metrics.RECORDS_REJECTED.labels(self.force_id, self.name, kind).inc()
        self.counters.rejected += len(set_aside)
        return True

    def close(self) -> None:
        self._producer.flush(10)
        log.info(
            "archiver of %s: %d stored, %d rejected",
            self.force_id,
            self.counters.stored,
            self.counters.rejected,
        )

    def _flush_dead_letters(self) -> None:
        try:
            self._dead_letters.flush(self.dead_letter_timeout)
        except KafkaException as exc:
            raise Retry(f"dead letters not delivered: {exc}") from exc
