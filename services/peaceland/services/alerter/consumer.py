"""The alerter's consumer: reports in, alert events out, in one Kafka transaction per batch.

For each batch: decide every low-score sighting against the book of open alerts (Cassandra),
then produce the alert events and commit the batch's offsets in one transaction. Either both
are visible or neither: a crash before the commit aborts the events and the batch is read
again, and the book's decisions being idempotent, it yields the very same events.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from peaceland.services import metrics
from peaceland.services.alerter.book import AlertBook, ContendedError, Sighting
from peaceland.services.alerter.settings import AlerterSettings
from peaceland.services.alerter.slots import Slot
from peaceland.services.force_settings import SettingsSource
from peaceland.services.kafka import (
    Decoded,
    consumer_config,
    decode_batch,
    received_at,
)
from peaceland.services.stream import Retry, StreamConsumer, next_offsets
from peaceland.tenants.alerts import Alert, encode_alert
from peaceland.tenants.cassandra import is_transient
from peaceland.tenants.forces import ForceSettings, resources_for
from peaceland.tenants.kafka import producer_config
from peaceland.tenants.reports import Citizen, Report

log = logging.getLogger(__name__)


def low_sightings(report: Report, threshold: float) -> list[Citizen]:
    """Citizens of ``report`` scoring below ``threshold``: one sighting per citizen per report
    (its lowest score), so one report never raises a citizen twice."""
    return [c for c in report.sightings() if c.score < threshold]


class Alerter(StreamConsumer):
    """Raises one force's alerts."""

    name = "alerter"

    def __init__(
        self,
        settings: AlerterSettings,
        book: AlertBook,
        force_settings: SettingsSource | None = None,
        slot: Slot | None = None,
    ) -> None:
        """An alerter of one force; it claims its slot and fences the slot's previous
        holder when it starts (``prepare``), before it consumes anything."""
        self.resources = resources_for(settings.force_id)
        session_ms = int(settings.session_timeout * 1000)
        super().__init__(
            settings,
            self.resources.reports_topic,
            {
                **consumer_config(settings.kafka_access(), settings.consumer_group),
                "isolation.level": "read_committed",
                # A replica that dies holds its partitions until its session times out.
                "session.timeout.ms": session_ms,
                "heartbeat.interval.ms": max(100, session_ms // 4),
            },
        )
        self.settings: AlerterSettings = settings
        self.book = book
        self.force_settings = force_settings or SettingsSource(settings.default_settings())
        self.slot = slot or Slot(
            book.session,
            self.resources.keyspace,
            f"{settings.instance}-{uuid.uuid4().hex[:8]}",
            slots=settings.replicas,
            lease_seconds=settings.slot_lease_seconds,
        )
        self.transactional_id: str | None = None
        self._producer: Producer | None = None
        self.raised = 0
        self.updated = 0
        # Offsets of batches that raised nothing, committed with the next transaction.
        self._pending: dict[tuple[str, int], int] = {}
        self._last_transaction = time.monotonic()
        force = settings.force_id
        self._events = {
            kind: metrics.ALERT_EVENTS.labels(force, kind) for kind in ("raised", "updated")
        }
        self._latency = metrics.ALERT_LATENCY.labels(force)

    def process(self, records: list[Message], stop: threading.Event) -> bool:
        settings = self.force_settings.current()
        decoded = decode_batch(self._bounded(records, decode_batch(records), settings))
        # The archiver dead-letters rejects; here they only must not stop the alerts.
        metrics.RECORDS_REJECTED.labels(self.force_id, self.name, "contract").inc(
            len(decoded.rejects)
        )

        def transact() -> None:
            self.slot.check()
            # A rebalance during a pause may have taken partitions away, or taken them and
            # given them back: their records are read again by whoever owns them, and their
            # offsets are no longer this batch's to commit.
            mine = decoded.only(self.steady())
            if not mine.records:
                return
            try:
                self._transact(mine, settings)
            except ContendedError as exc:
                raise Retry(str(exc)) from exc
            except KafkaException as exc:
                if exc.args[0].fatal():
                    raise  # fenced by a newer instance: stop, nothing was committed
                raise Retry(f"Kafka transaction failed: {exc}") from exc
            except Exception as exc:
                if not is_transient(exc):
                    raise
                raise Retry(f"Cassandra failed: {exc}") from exc

        return self.until_done("alerts", transact, stop)

    def _bounded(
        self, records: list[Message], decoded: Decoded, settings: ForceSettings
    ) -> list[Message]:
        """The head of the batch whose sightings make at most ``max_sightings_per_batch``
        decisions (at least one record); the rest is put back (seek) for the next batch.

        A valid report may name a thousand citizens below the threshold: a batch of them
        would hold one transaction open, and the loop away from the group, for as long as
        half a million decisions take.
        """
        threshold = settings.alerting.score_threshold
        reports = {
            (m.topic(), m.partition(), m.offset()): r
            for r, m in zip(decoded.reports, decoded.messages, strict=True)
        }
        total = 0
        for index, message in enumerate(records):
            report = reports.get((message.topic(), message.partition(), message.offset()))
            total += len(low_sightings(report, threshold)) if report else 0
            if total >= self.settings.max_sightings_per_batch and index + 1 < len(records):
                rest = records[index + 1 :]
                first: dict[tuple[str, int], int] = {}
                for m in rest:
                    key = (m.topic() or "", m.partition() or 0)
                    first[key] = min(first.get(key, m.offset() or 0), m.offset() or 0)
                for (topic, partition), offset in first.items():
                    self.consumer.seek(TopicPartition(topic, partition, offset))
                return records[: index + 1]
        return records

    def prepare(self, stop: threading.Event) -> None:
        """Claim a slot (waiting while every slot is held), then fence whatever transaction
        the slot's previous holder left open by starting ours under its id."""
        number = self.slot.claim(stop, waiting=lambda: self.health.tick("waiting for a slot"))
        self.transactional_id = f"{self.settings.consumer_group}.{number}"
        timeout = self.settings.transaction_timeout
        self._producer = Producer(
            {
                **producer_config(self.settings.kafka_access()),
                "transactional.id": self.transactional_id,
                # A transaction left open by a replica that died (and was not replaced: its
                # successor would fence it at once) holds readers this long at most.
                "transaction.timeout.ms": int(timeout * 1000),
                "message.timeout.ms": int(timeout * 1000),
            }
        )
        self._settled("init", lambda: self.producer.init_transactions(timeout))
        log.info("alerter of %s: transactions as %s", self.force_id, self.transactional_id)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("the alerter has not started (prepare)")
        return self._producer

    def commit(self, records: list[Message]) -> None:
        """Nothing to do: offsets go with the transactions (see ``_transact``)."""

    def idle(self, stop: threading.Event) -> None:  # noqa: ARG002 - it never retries
        if not self._pending:
            return
        if time.monotonic() - self._last_transaction < self.settings.commit_interval:
            return
        try:
            self._commit_offsets([], dict(self._pending))
        except KafkaException as exc:
            if exc.args[0].fatal():
                raise
            # Still pending: the next batch's transaction, or the next idle moment, takes them.
            log.warning("alerter of %s: offsets not committed yet: %s", self.force_id, exc)

    def revoked(self, partitions: list[TopicPartition]) -> None:
        # Those offsets are no longer ours to commit; the new owner replays a batch that
        # raised nothing, which raises nothing again.
        for tp in partitions:
            self._pending.pop((tp.topic, tp.partition), None)

    def finish(self) -> None:
        if self._pending:
            self._commit_offsets([], dict(self._pending))

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
        self.slot.release()
        log.info(
            "alerter of %s: %d alerts raised, %d updates", self.force_id, self.raised, self.updated
        )

    def _transact(self, decoded: Decoded, settings: ForceSettings) -> None:
        alerting = settings.alerting
        alerts: list[tuple[Alert, Message]] = []
        # One decision may wait for Cassandra's timeout, twice (a lightweight transaction
        # and a write): the watchdog allows that much per decision.
        allowance = 3 * self.settings.cassandra_request_timeout + 5
        for report, message in zip(decoded.reports, decoded.messages, strict=True):
            for citizen in low_sightings(report, alerting.score_threshold):
                self.health.tick("decide", allowance)
                source = f"{message.partition()}/{message.offset()}"
                sighting = Sighting(report, citizen, source, datetime.now(UTC))
                decision = self.book.decide(
                    sighting, alerting.dedup_window_seconds, settings.kafka_retention_hours
                )
                alerts.append(
                    (
                        Alert(
                            event=decision.event,
                            alert_id=decision.alert_id,
                            force_id=self.force_id,
                            citizen=citizen.name,
                            score=citizen.score,
                            drone_id=report.drone_id,
                            report_id=report.report_id,
                            latitude=report.latitude,
                            longitude=report.longitude,
                            reported_at=sighting.seen_at,
                            opened_at=decision.opened_at,
                            raised_at=sighting.handled_at,
                        ),
                        message,
                    )
                )
        offsets = {
            **self._pending,
            **{(tp.topic, tp.partition): tp.offset for tp in next_offsets(decoded.records)},
        }
        if not alerts and time.monotonic() - self._last_transaction < self.settings.commit_interval:
            self._pending = offsets
            return
        self._commit_offsets(alerts, offsets)
        committed = time.time()
        for alert, message in alerts:
            self._events[alert.event].inc()
            self._latency.observe(max(0.0, committed - received_at(message).timestamp()))
            if alert.event == "raised":
                self.raised += 1
                log.info(
                    "ALERT %s: %s (score %.2f) seen by %s at %.5f,%.5f",
                    alert.alert_id,
                    alert.citizen,
                    alert.score,
                    alert.drone_id,
                    alert.latitude,
                    alert.longitude,
                )
            else:
                self.updated += 1

    def _commit_offsets(
        self, alerts: list[tuple[Alert, Message]], offsets: dict[tuple[str, int], int]
    ) -> None:
        """Produce ``alerts`` and commit ``offsets`` in one transaction.

        Each call to the transaction coordinator follows librdkafka's rules: one that timed
        out (retriable) is still under way and is called again until it settles (calling
        another, abort say, would conflict with it: the silent hang seen after losing the
        coordinator's broker began so); one that failed otherwise aborts the transaction,
        and the batch is tried again; a fatal one (fenced by a newer holder of our slot)
        ends the process.
        """
        timeout = self.settings.transaction_timeout
        try:
            self.producer.begin_transaction()
            for alert, _ in alerts:
                self.producer.produce(
                    self.resources.alerts_topic,
                    key=alert.citizen.encode(),
                    value=encode_alert(alert),
                )
            metadata = self.consumer.consumer_group_metadata()
            positions = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
            self._settled(
                "send offsets",
                lambda: self.producer.send_offsets_to_transaction(positions, metadata, timeout),
            )
            self._settled("commit", lambda: self.producer.commit_transaction(timeout))
        except KafkaException as exc:
            if not exc.args[0].fatal():
                self._abort()
            raise
        self._pending = {}
        self._last_transaction = time.monotonic()
        self.committed()

    def _abort(self) -> None:
        try:
            self._settled(
                "abort", lambda: self.producer.abort_transaction(self.settings.transaction_timeout)
            )
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._STATE:  # no transaction left to abort
                raise

    def _settled(self, what: str, call: Callable[[], None]) -> None:
        """Make ``call`` to the transaction coordinator until it settles: again while it
        times out (a coordinator moving to another broker), so never beside itself; but
        not once the transaction must be aborted (then the caller aborts it)."""
        # librdkafka does not always keep to the timeout it is given: after losing the broker
        # that coordinated both the group and the transactions, send_offsets_to_transaction
        # was seen blocked for good. Past twice the timeout the watchdog ends the process,
        # and the replica that takes its slot fences the transaction.
        allowance = 2 * self.settings.transaction_timeout + 5
        while True:
            self.health.tick(f"transaction {what}", allowance)
            try:
                call()
                return
            except KafkaException as exc:
                error = exc.args[0]
                if error.txn_requires_abort() or not error.retriable():
                    raise
                log.warning(
                    "alerter of %s: transaction %s not settled yet (%s); asking again",
                    self.force_id,
                    what,
                    exc,
                )
