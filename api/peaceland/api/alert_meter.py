"""Alerts raised, counted for the invoice from each force's alerts topic, exactly once.

The alerter emits one ``raised`` event per alert in a Kafka transaction; read committed,
the alerts topic holds each raise once. Every ``interval`` the meter reads each force's
alerts topic from where it stopped, counts the ``raised`` events by the UTC day they were
raised, and adds the counts to the force's days of usage in the same PostgreSQL transaction
that moves its stored positions: a crash before the commit counts nothing (the events are
read again), after it counts them once. Replicas take turns per force (an advisory lock).

Positions are kept with the topic's id: a force deleted and sold again under the same id
with new topics starts from their beginning; with its topics retained (deletion policy
Retain), it goes on from where its predecessor stopped, so nothing is counted twice.
The meter reads as the force's own dashboard principal (``peaceland.api.force_data``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import UTC, date
from typing import Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from peaceland.api.force_data import ForceData
from peaceland.api.forces import forgotten, lock_force
from peaceland.api.kube import Forces
from peaceland.api.metering import count_alerts
from peaceland.api.models import AlertMeterPosition
from peaceland.tenants.alerts import decode_alert
from peaceland.tenants.errors import InvalidRecordError
from peaceland.tenants.kafka import client_config

log = logging.getLogger(__name__)

#: Most events one pass reads of one force (the next pass goes on).
_BATCH: Final = 20_000
#: Longest one pass reads one force, in seconds.
_BUDGET: Final = 5.0


class AlertMeter:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        forces: Forces,
        data: ForceData,
        interval: float,
        timeout: float = 10.0,
    ) -> None:
        self._sessions = sessions
        self._forces = forces
        self._data = data
        self._interval = interval
        self._timeout = timeout
        self._consumers: dict[str, Consumer] = {}
        self._admins: dict[str, AdminClient] = {}
        self._topic_ids: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-meter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers.clear()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.meter_all()
            except Exception:
                log.exception("alerts not metered this time")

    def meter_all(self) -> dict[str, int]:
        """One pass over every provisioned force; returns the alerts counted of each."""
        counted: dict[str, int] = {}
        for resource in self._forces.list():
            if resource.deleting or not resource.status.get("keyspace"):
                continue
            try:
                counted[resource.name] = self.meter(resource.name, resource.uid)
            except Exception as exc:
                log.warning("alerts of %s not metered this time: %s", resource.name, exc)
                self._drop(resource.name)
        return counted

    def _drop(self, force_id: str) -> None:
        """Forget the force's clients (made again next pass: new credentials, say)."""
        self._admins.pop(force_id, None)
        consumer = self._consumers.pop(force_id, None)
        if consumer is not None:
            consumer.close()

    def _consumer(self, force_id: str) -> Consumer:
        consumer = self._consumers.get(force_id)
        if consumer is None:
            config = self._data.consumer_config(force_id) | {
                "group.id": f"peaceland.{force_id}.dashboard.meter",
                "enable.partition.eof": True,
            }
            consumer = Consumer(config)
            self._consumers[force_id] = consumer
        return consumer

    def _topic(self, force_id: str) -> tuple[str, int]:
        """The alerts topic's id and partition count, as the force's principal sees it."""
        topic = self._data.resources(force_id).alerts_topic
        admin = self._admins.get(force_id)
        if admin is None:
            admin = AdminClient(client_config(self._data.kafka_access(force_id)))
            self._admins[force_id] = admin
        described = admin.describe_topics(TopicCollection([topic]), request_timeout=self._timeout)[
            topic
        ].result()
        return str(described.topic_id), len(described.partitions)

    def meter(self, force_id: str, uid: str | None = None) -> int:
        """Read the force's alerts topic on from the stored positions and count what was
        raised; returns how many were counted. ``uid``: the force's resource, counted for
        only if the API has not forgotten it (deleted, its resource still going)."""
        topic = self._data.resources(force_id).alerts_topic
        topic_id, partitions = self._topic(force_id)
        if self._topic_ids.get(force_id, topic_id) != topic_id:
            self._drop(force_id)  # the topic was made anew: a client that knew the old one
        self._topic_ids[force_id] = topic_id
        with self._sessions() as db:
            lock_force(db, force_id, exclusive=False)  # never while it is being forgotten
            if uid is not None and forgotten(db, force_id, uid):
                return 0
            taken = db.scalar(
                select(func.pg_try_advisory_xact_lock(func.hashtext(f"meter/{force_id}")))
            )
            if not taken:
                return 0  # another replica is at it
            stored = {
                p.partition: p.next_offset
                for p in db.scalars(
                    select(AlertMeterPosition).where(AlertMeterPosition.force_id == force_id)
                )
                if p.topic_id == topic_id
            }
            start = [
                TopicPartition(topic, p, stored.get(p, OFFSET_BEGINNING)) for p in range(partitions)
            ]
            raised, positions = self._read(force_id, start)
            for day, count in sorted(raised.items()):
                count_alerts(db, force_id, day, count)
            for partition, offset in sorted(positions.items()):
                statement = insert(AlertMeterPosition).values(
                    force_id=force_id, partition=partition, topic_id=topic_id, next_offset=offset
                )
                db.execute(
                    statement.on_conflict_do_update(
                        index_elements=[AlertMeterPosition.force_id, AlertMeterPosition.partition],
                        set_={"topic_id": topic_id, "next_offset": offset},
                    )
                )
            db.commit()
        return sum(raised.values())

    def _read(
        self, force_id: str, start: list[TopicPartition]
    ) -> tuple[Counter[date], dict[int, int]]:
        consumer = self._consumer(force_id)
        consumer.assign(start)
        waiting = {tp.partition for tp in start}
        raised: Counter[date] = Counter()
        read = 0
        deadline = time.monotonic() + _BUDGET
        while waiting and read < _BATCH and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        waiting.discard(message.partition())
                        continue
                    raise RuntimeError(f"reading {message.topic()}: {error}")
                read += 1
                try:
                    alert = decode_alert(message.value() or b"")
                except InvalidRecordError as exc:
                    log.warning("an alert of %s that breaks the contract is not counted: %s",
                                force_id, exc)  # fmt: skip
                    continue
                if alert.event == "raised":
                    raised[alert.raised_at.astimezone(UTC).date()] += 1
        # Where the next pass starts: past every event read and every transaction marker.
        positions = {
            tp.partition: tp.offset
            for tp in consumer.position([TopicPartition(t.topic, t.partition) for t in start])
            if tp.offset >= 0
        }
        return raised, positions
