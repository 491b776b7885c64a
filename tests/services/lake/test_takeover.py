"""Two lake consumers of one force passing a partition between them, driven record by
record (the lake is a real directory; the records come from a stand-in for Kafka that
honours seeks, so that what each consumer reads next is what Kafka would give it)."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, TopicPartition

from peaceland.analytics.lake import LakeWriter, LocalStorage
from peaceland.services.lake.consumer import LakeConsumer
from peaceland.services.lake.settings import LakeSettings
from peaceland.tenants.reports import Report, encode_report
from tests.factories import make_report

FORCE = "takeover-force"


@dataclass
class Record:
    """A record of the reports topic's partition 0, as the consumer reads it."""

    topic_name: str
    at: int
    report: Report

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.at

    def value(self) -> bytes:
        return encode_report(self.report)

    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, int(datetime.now(UTC).timestamp() * 1000)


@dataclass
class Position:
    """Where a consumer reads partition 0 next; ``seek`` as Kafka's consumer does."""

    next: int = 0
    seeks: list[int] = field(default_factory=list)

    def seek(self, where: TopicPartition) -> None:
        self.next = 0 if where.offset == OFFSET_BEGINNING else where.offset
        self.seeks.append(self.next)


class Clock:
    now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _consumer(root: Path, clock: Clock, flush_records: int) -> tuple[LakeConsumer, Position]:
    settings = LakeSettings(
        force_id=FORCE,
        lake_uri=str(root),
        kafka_bootstrap_servers="127.0.0.1:1",  # never reached: records are handed over
        cassandra_contact_points="127.0.0.1",
        flush_records=flush_records,
        flush_seconds=60,
        compact_every_seconds=0,
    )
    consumer = LakeConsumer(settings, LakeWriter(LocalStorage(root), FORCE), clock)
    position = Position()
    consumer.consumer.close()
    consumer.consumer = position  # type: ignore[assignment]
    return consumer, position


def _assign(consumer: LakeConsumer) -> None:
    consumer._assigned([TopicPartition(consumer._reports_topic, 0)])


def _read(consumer: LakeConsumer, position: Position, reports: list[Report], count: int) -> None:
    """The consumer's next batch: ``count`` records from its position."""
    key = (consumer._reports_topic, 0)
    first = position.next
    batch = [
        Record(consumer._reports_topic, at, reports[at])
        for at in range(first, min(first + count, len(reports)))
    ]
    position.next = first + len(batch)
    consumer._fetched = {key: consumer.epoch(key)}
    assert consumer.process(batch, threading.Event())  # type: ignore[arg-type]


@dataclass
class Side:
    """One of the two consumers: itself, its position, its clock."""

    consumer: LakeConsumer
    at: Position
    clock: Clock


def _handed_over(root: Path, reports: list[Report], x_flush: int) -> tuple[Side, Side]:
    """X reads the partition's first 5 records; its group then gives the partition to Y
    (X stalled), which reads the same 5 from the last commit (none) and takes it over."""
    sides = []
    for flush_records in (x_flush, 10):
        clock = Clock()
        consumer, at = _consumer(root, clock, flush_records=flush_records)
        sides.append(Side(consumer, at, clock))
    x, y = sides
    for side in (x, y):
        _assign(side.consumer)
        _read(side.consumer, side.at, reports, 5)
    return x, y


def _offsets_in_lake(root: Path, reports: list[Report]) -> list[int]:
    files = f"{root}/{FORCE}/reports/**/*.parquet"
    found = duckdb.connect().execute(f"SELECT report_id FROM read_parquet('{files}')").fetchall()
    ids = [str(row[0]) for row in found]
    return sorted(at for at, r in enumerate(reports) for i in ids if i == str(r.report_id))


def test_a_consumer_fenced_on_a_partition_reads_it_again_from_what_the_lake_holds(
    tmp_path: Path,
):
    rng = random.Random(6)
    reports = [make_report(rng, drone=1) for _ in range(30)]
    sx, sy = _handed_over(tmp_path, reports, x_flush=1_000)  # X's 0..4 are not due yet
    x, x_at, x_clock, y, y_at = sx.consumer, sx.at, sx.clock, sy.consumer, sy.at
    # X wakes: its buffer is due, its flush is fenced: it reads again from where it began.
    x_clock.now += 400
    _read(x, x_at, reports, 3)
    assert x_at.seeks == [0]
    assert not x.writer.holds("reports", 0)
    # Before its group tells it the partition is gone, X reads it again: it leaves it.
    _read(x, x_at, reports, 8)
    assert not x.writer.holds("reports", 0)
    _read(y, y_at, reports, 5)  # so Y's flush (10 buffered) goes through
    assert y_at.seeks == []
    x._revoked([TopicPartition(x._reports_topic, 0)])  # the group's word reaches X at last
    _read(y, y_at, reports, 20)
    assert _offsets_in_lake(tmp_path, reports) == list(range(30))
    assert y._uncommitted[(y._reports_topic, 0)] == 29


def test_a_fenced_consumer_leaves_the_partition_alone_until_its_group_has_spoken(
    tmp_path: Path,
):
    # A zombie and the owner would otherwise take the partition from each other after
    # every fenced flush, and neither would ever write.
    rng = random.Random(7)
    reports = [make_report(rng, drone=1) for _ in range(40)]
    sx, sy = _handed_over(tmp_path, reports, x_flush=10)
    x, x_at, y, y_at = sx.consumer, sx.at, sy.consumer, sy.at
    _read(x, x_at, reports, 5)  # X's flush (10) is fenced: Y took the partition over
    assert not x.writer.holds("reports", 0)
    for _ in range(3):  # X still reads it, in the same assignment: it takes nothing back
        _read(x, x_at, reports, 5)
        assert not x.writer.holds("reports", 0)
    _read(y, y_at, reports, 25)  # Y writes on, undisturbed
    assert _offsets_in_lake(tmp_path, reports) == list(range(30))


def test_a_take_over_reads_on_from_what_the_lake_holds_whatever_the_position(tmp_path: Path):
    rng = random.Random(8)
    reports = [make_report(rng, drone=1) for _ in range(30)]
    clock = Clock()
    x, x_at = _consumer(tmp_path, clock, flush_records=10)
    _assign(x)
    _read(x, x_at, reports, 10)  # 0..9 in the lake
    x._revoked([TopicPartition(x._reports_topic, 0)])
    # Given back, its position is past what the lake holds (say a seek back that failed,
    # or an offset committed beyond it): it goes back to the lake's next record first.
    _assign(x)
    x_at.next = 15
    _read(x, x_at, reports, 5)
    assert x_at.seeks == [10]
    _read(x, x_at, reports, 20)
    assert _offsets_in_lake(tmp_path, reports) == list(range(30))


def test_a_partition_taken_back_after_the_hold_loses_and_doubles_nothing(tmp_path: Path):
    rng = random.Random(9)
    reports = [make_report(rng, drone=1) for _ in range(60)]
    sx, sy = _handed_over(tmp_path, reports, x_flush=10)
    x, x_at, x_clock, y, y_at = sx.consumer, sx.at, sx.clock, sy.consumer, sy.at
    _read(x, x_at, reports, 5)  # X fenced, its position back to 0
    _read(x, x_at, reports, 16)  # held off: dropped, its position now 16
    _read(y, y_at, reports, 5)  # Y writes 0..9
    # The group never told X (or Y was the zombie): past the hold, X takes it back, and
    # reads from the lake's next record, not from its position.
    x_clock.now += 61
    _read(x, x_at, reports, 4)
    assert x_at.seeks == [0, 10]
    _read(x, x_at, reports, 10)  # 10..19
    _read(y, y_at, reports, 10)  # Y fenced: back to 10, holds off
    y._revoked([TopicPartition(y._reports_topic, 0)])
    _read(x, x_at, reports, 40)
    assert _offsets_in_lake(tmp_path, reports) == list(range(60))
