"""The lake consumer's loop: buffer each partition's records, write them as files, commit.

It reads the force's reports, alerts and lifecycle topics as the force's ``lake`` principal.
Each Kafka partition has its own buffer, written to the lake (``LakeWriter.write``) once it
holds ``flush_records`` records or its oldest has waited ``flush_seconds``; only then are
that partition's offsets committed. A record the lake already holds (a replay after a crash
or a rebalance) is skipped by offset; a record that breaks the data contract is skipped
too, and counted (the archiver dead-letters bad reports; alerts and transitions are written
by our own services). A write that fails (the lake's disk or object store away) is retried
with the partitions paused, like every consumer's step; a partition taken away drops its
buffer, which its new owner reads again from the last commit.

Every ``compact_every_seconds``, the consumer that holds the reports stream's partition 0
compacts the force's settled hours and deletes those past its retention
(``peaceland.analytics.compaction``): one consumer per force does it, whatever the replicas,
in a thread of its own, so that the stream is read on meanwhile (an hour of a large force
takes minutes to compact; Kafka would take a poll loop stalled that long for dead). A
compaction that fails is logged and tried again at the next turn; one killed half-way is
finished by the next (its journal says how far it went).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

import duckdb
import pyarrow.fs as pafs
from confluent_kafka import OFFSET_BEGINNING, KafkaException, Message, TopicPartition

from peaceland.analytics.compaction import Compactor
from peaceland.analytics.lake import (
    STREAM_TABLES,
    ArrowStorage,
    LakeFencedError,
    LakeWriter,
    LocalStorage,
    Row,
    Stream,
    Table,
    alert_rows,
    report_rows,
    transition_rows,
)
from peaceland.services import metrics
from peaceland.services.kafka import consumer_config, received_at
from peaceland.services.lake.settings import LakeSettings
from peaceland.services.stream import Retry, StreamConsumer
from peaceland.tenants.alerts import decode_alert
from peaceland.tenants.errors import InvalidRecordError
from peaceland.tenants.forces import resources_for
from peaceland.tenants.lifecycle import decode_transition
from peaceland.tenants.reports import decode_report

log = logging.getLogger(__name__)

Key = tuple[str, int]

#: How long a consumer fenced on a partition leaves it alone (within the same assignment):
#: longer than its group's session timeout (45 s), after which its group has told it the
#: partition is gone, or it is the owner after all (the other writer was the zombie).
FENCE_HOLD_SECONDS: Final = 60.0


@dataclass(slots=True)
class _Buffer:
    """One partition's records not yet in the lake."""

    stream: Stream
    since: float
    last: int = -1
    #: The last offset in the lake when this buffer began: where to read again from.
    written: int = -1
    #: Whether its records follow what the lake holds (after a take-over: once the first
    #: record read is the lake's next, or the first Kafka gave after a seek to it).
    aligned: bool = True
    #: The batch in which its position was sought back to the lake's next record.
    sought: int = -1
    records: int = 0
    #: The records' size as received (their rows take a few times more in memory).
    bytes: int = 0
    rows: dict[Table, list[Row]] = field(default_factory=dict)


@dataclass(slots=True)
class Counters:
    """What the lake consumer has done since it started."""

    written: int = 0
    skipped: int = 0
    replayed: int = 0
    files: int = 0
    compacted: int = 0
    expired: int = 0


class LakeConsumer(StreamConsumer):
    """Writes every record of one force's reports, alerts and lifecycle topics to the lake."""

    name = "lake"

    def __init__(
        self,
        settings: LakeSettings,
        writer: LakeWriter,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        resources = resources_for(settings.force_id)
        self._reports_topic = resources.reports_topic
        self.streams: dict[str, Stream] = {
            resources.reports_topic: "reports",
            resources.alerts_topic: "alerts",
            resources.lifecycle_topic: "lifecycle",
        }
        super().__init__(
            settings,
            tuple(self.streams),
            consumer_config(settings.kafka_access(), settings.consumer_group),
        )
        self.writer = writer
        self.flush_records = settings.flush_records
        self.flush_seconds = settings.flush_seconds
        self.counters = Counters()
        self._clock = clock
        self._buffers: dict[Key, _Buffer] = {}
        self._buffered_bytes = 0
        self.flush_bytes = settings.flush_bytes
        #: Offsets written to the lake and not yet committed to Kafka.
        self._uncommitted: dict[Key, int] = {}
        force = settings.force_id
        self._written = {s: metrics.LAKE_RECORDS.labels(force, s) for s in STREAM_TABLES}
        self._bytes = metrics.LAKE_BYTES.labels(force)
        self._rejected = metrics.RECORDS_REJECTED.labels(force, self.name, "contract")
        self.compactor = self._compactor(settings)
        self._maintenance_counts = {
            (step, outcome): metrics.LAKE_MAINTENANCE.labels(force, step, outcome)
            for step, outcome in (
                ("compaction", "done"),
                ("compaction", "failed"),
                ("rollups", "done"),
                ("rollups", "failed"),
                ("retention", "expired"),
                ("run", "failed"),
            )
        }
        self.compact_every = settings.compact_every_seconds
        self._next_maintenance = self._clock()
        self._maintenance: threading.Thread | None = None
        #: Partitions another writer took over in the lake: the assignment, and when.
        self._fenced: dict[Key, tuple[int, float]] = {}
        self._batches = 0

    def _compactor(self, settings: LakeSettings) -> Compactor | None:
        if not settings.compact_every_seconds:
            return None
        storage = self.writer.storage
        if not isinstance(storage, LocalStorage) and not (
            isinstance(storage, ArrowStorage) and isinstance(storage.filesystem, pafs.S3FileSystem)
        ):
            log.warning(
                "lake of %s: the lake at %s is neither on a disk nor on S3: its hours are "
                "not compacted, nothing is deleted past the retention",
                self.force_id,
                storage.locate(""),
            )
            return None
        retention = settings.retention_days
        return Compactor(
            storage,
            self.force_id,
            fence=lambda: self.writer.fence("reports", 0),
            # On an object store, an hour's files are copied here to be rewritten.
            work_dir=settings.compact_work_dir,
            settle=timedelta(seconds=settings.compact_settle_seconds),
            linger=timedelta(seconds=settings.compact_linger_seconds),
            retention=timedelta(days=retention) if retention else None,
            memory_mb=settings.compact_memory_mb,
            # An hour too large for its budget fails alone, never takes the consumer down.
            isolated=True,
        )

    def process(self, records: list[Message], stop: threading.Event) -> bool:
        """Buffer a batch, then write every buffer that is due; False if stopped first."""
        self._batches += 1
        keys = {(m.topic() or "", m.partition() or 0) for m in records}
        if not self.until_done("take partitions over", lambda: self._take_over(keys), stop):
            return False
        steady = self.steady()
        for message in records:
            key = (message.topic() or "", message.partition() or 0)
            if key in steady and key in self._buffers:
                self._buffer(key, message)
        if not self._flush_due(stop, everything=False):
            return False
        self.maintain()
        return True

    def idle(self, stop: threading.Event) -> None:
        """Nothing came: write what has waited long enough, and commit it."""
        if self._flush_due(stop, everything=False):
            self.commit([])
            self.maintain()

    def maintain(self) -> None:
        """Start compacting and expiring the force's lake, when it is time and ours to."""
        now = self._clock()
        if self.compactor is None or now < self._next_maintenance:
            return
        if self._maintenance is not None and self._maintenance.is_alive():
            return
        self._next_maintenance = now + self.compact_every
        # Partition 0 of the reports is ours from its assignment on, records or not (a
        # force whose few drones all hash elsewhere still has its lake compacted and
        # expired): take it over in the lake now if no record did.
        key = (self._reports_topic, 0)
        if key in self.owned() and key not in self._buffers and not self._holding_off(key):
            try:
                self._take_over({key})
            except Retry as exc:
                log.warning("lake of %s: not compacting: %s", self.force_id, exc)
                return
        if not self.writer.holds("reports", 0):
            return
        # Bound to our hold as it is now: should the partition go and come back while the
        # thread works, it stops rather than go on from what it saw under the first hold.
        fence = self.writer.fencer("reports", 0)
        self._maintenance = threading.Thread(
            target=self._maintain,
            args=(self.compactor, fence),
            name=f"lake-compaction-{self.force_id}",
            daemon=True,  # killed with the process: the next holder finishes its work
        )
        self._maintenance.start()

    def _maintain(self, compactor: Compactor, fence: Callable[[], None]) -> None:
        try:
            done = compactor.run(fence)
        except LakeFencedError as exc:
            log.info("lake of %s: not compacting: %s", self.force_id, exc)
            return
        except (OSError, ValueError, duckdb.Error) as exc:
            self._maintenance_counts[("run", "failed")].inc()
            log.warning(
                "lake of %s: compaction failed, tried again in %.0f s: %s",
                self.force_id,
                self.compact_every,
                exc,
            )
            return
        except Exception:  # a thread's failure would otherwise go unseen
            self._maintenance_counts[("run", "failed")].inc()
            log.exception("lake of %s: compaction failed unexpectedly", self.force_id)
            return
        self.counters.compacted += len(done.compacted)
        self.counters.expired += done.expired
        for key, count in (
            (("compaction", "done"), len(done.compacted)),
            (("compaction", "failed"), len(done.failed)),
            (("rollups", "done"), len(done.rolled_up)),
            (("rollups", "failed"), len(done.rollups_failed)),
            (("retention", "expired"), done.expired),
        ):
            self._maintenance_counts[key].inc(count)

    def finish(self) -> None:
        """On the way out (SIGTERM): write every buffer and commit, so nothing is read again."""
        if self._flush_due(threading.Event(), everything=True, attempts=3):
            self.commit([])

    def commit(self, records: list[Message]) -> None:  # noqa: ARG002 - offsets are the lake's
        """Commit what the lake holds (never what is only buffered), for partitions still ours."""
        owned = self.owned()
        offsets = [
            TopicPartition(topic, partition, last + 1)
            for (topic, partition), last in sorted(self._uncommitted.items())
            if (topic, partition) in owned
        ]
        self._uncommitted.clear()
        self.commit_offsets(offsets)

    def revoked(self, partitions: list[TopicPartition]) -> None:
        """Partitions taken away: their buffers go (the new owner reads them again)."""
        for tp in partitions:
            self._drop((tp.topic, tp.partition))

    def _drop(self, key: Key) -> None:
        """Forget a partition: its buffer, its uncommitted offsets, our hold in the lake."""
        buffer = self._buffers.pop(key, None)
        if buffer is not None:
            self._buffered_bytes -= buffer.bytes
        self._uncommitted.pop(key, None)
        self.writer.forget(self.streams[key[0]], key[1])

    def close(self) -> None:
        c = self.counters
        log.info(
            "lake of %s: %d records written (%d files), %d skipped as broken, %d already in",
            self.force_id,
            c.written,
            c.files,
            c.skipped,
            c.replayed,
        )

    def _holding_off(self, key: Key) -> bool:
        """Whether another writer fenced us on ``key`` in this assignment, lately."""
        fenced = self._fenced.get(key)
        return (
            fenced is not None
            and fenced[0] == self.epoch(key)
            and self._clock() - fenced[1] < FENCE_HOLD_SECONDS
        )

    def _read_again(self, key: Key, offset: int) -> bool:
        """Move our position on partition ``key`` back to ``offset``; False if it could
        not be (not fetching it: not ours any more, or not yet)."""
        where = TopicPartition(key[0], key[1], offset if offset > 0 else OFFSET_BEGINNING)
        try:
            self.consumer.seek(where)
        except KafkaException as exc:
            log.warning(
                "lake of %s: %s partition %d not moved back to %d: %s",
                self.force_id,
                key[0],
                key[1],
                offset,
                exc,
            )
            return False
        return True

    def _take_over(self, keys: set[Key]) -> None:
        """Resume in the lake each partition of ``keys`` new to us: whoever had it before
        may have written past what it committed, or left a flush unfinished."""
        for key in sorted(keys - set(self._buffers)):
            if key not in self.owned() or self._holding_off(key):
                continue
            topic, partition = key
            stream = self.streams[topic]
            try:
                done = self.writer.resume(stream, partition)
            except OSError as exc:
                raise Retry(f"the lake could not be read: {exc}") from exc
            self._buffers[key] = _Buffer(
                stream, self._clock(), last=done, written=done, aligned=False
            )

    def _buffer(self, key: Key, message: Message) -> None:
        buffer = self._buffers[key]
        stream = buffer.stream
        offset = message.offset() or 0
        if offset <= buffer.last:
            self.counters.replayed += 1
            return
        if not buffer.aligned:
            if offset == buffer.last + 1 or 0 <= buffer.sought < self._batches:
                # The lake's next record, or the first Kafka has from it on (an offset may
                # hold a transaction's marker, not a record).
                buffer.aligned = True
            else:
                # Our position is past what the lake holds (records dropped when another
                # writer fenced us, an offset committed beyond the lake): read from the
                # lake's next record; this batch's records of the partition come again.
                if buffer.sought != self._batches and self._read_again(key, buffer.last + 1):
                    buffer.sought = self._batches
                return
        if not buffer.records:
            buffer.since = self._clock()
        buffer.last = offset
        buffer.records += 1
        size = len(message.value() or b"")
        buffer.bytes += size
        self._buffered_bytes += size
        for table, rows in self._rows(stream, message).items():
            buffer.rows.setdefault(table, []).extend(rows)

    def _rows(self, stream: Stream, message: Message) -> dict[Table, list[Row]]:
        value = message.value()
        if value is None:
            self._skip(stream, message, "an empty record")
            return {}
        try:
            if stream == "reports":
                return report_rows(decode_report(value, received_at=received_at(message)))
            if stream == "alerts":
                return alert_rows(decode_alert(value))
            return transition_rows(decode_transition(value))
        except InvalidRecordError as exc:
            self._skip(stream, message, exc.reason)
            return {}
        except ValueError as exc:  # valid, but beyond what the lake's columns hold
            self._skip(stream, message, str(exc))
            return {}

    def _skip(self, stream: Stream, message: Message, reason: str) -> None:
        self.counters.skipped += 1
        self._rejected.inc()
        log.warning(
            "lake of %s: %s record at partition %s offset %s skipped: %s",
            self.force_id,
            stream,
            message.partition(),
            message.offset(),
            reason,
        )

    def _flush_due(self, stop: threading.Event, *, everything: bool, attempts: int = 0) -> bool:
        """Write the buffers that are due (all of them: ``everything``), retrying until done;
        False if ``stop`` came first (or after ``attempts`` failures, when given)."""
        now = self._clock()
        # Past the memory budget, every buffer is written (the whole lot is then small).
        everything = everything or self._buffered_bytes >= self.flush_bytes
        due = [
            key
            for key, buffer in self._buffers.items()
            if buffer.records
            and (
                everything
                or buffer.records >= self.flush_records
                or now - buffer.since >= self.flush_seconds
            )
        ]
        failures = 0

        def flush() -> None:
            nonlocal failures
            while due:
                key = due[0]
                buffer = self._buffers.get(key)
                if buffer is None:  # taken away during a retry
                    due.pop(0)
                    continue
                try:
                    flushed = self.writer.write(buffer.stream, key[1], buffer.last, buffer.rows)
                except LakeFencedError as exc:
                    # Our group gave the partition to another consumer: its to write. Our
                    # position goes back to where our buffer began: should we take the
                    # partition over again before the group tells us it is gone, what we
                    # dropped is read again, never skipped.
                    log.warning("lake of %s: %s", self.force_id, exc)
                    due.pop(0)
                    self._fenced[key] = (self.epoch(key), self._clock())
                    self._read_again(key, buffer.written + 1)
                    self._drop(key)
                    continue
                except OSError as exc:
                    failures += 1
                    if attempts and failures >= attempts:
                        stop.set()
                    raise Retry(f"the lake refused a write: {exc}") from exc
                due.pop(0)
                self._buffered_bytes -= buffer.bytes
                self._buffers[key] = _Buffer(
                    buffer.stream, self._clock(), last=buffer.last, written=buffer.last
                )
                self._uncommitted[key] = buffer.last
                self.counters.written += buffer.records
                self.counters.files += len(flushed.files)
                self._written[buffer.stream].inc(buffer.records)
                self._bytes.inc(flushed.bytes)

        return self.until_done("write to the lake", flush, stop)
