"""The lake's writer on a real directory: layout, exactly once across interrupted flushes."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from peaceland.analytics.lake import (
    LakeWriter,
    LocalStorage,
    Row,
    Table,
    open_storage,
    report_rows,
    table_dir,
)
from peaceland.tenants.reports import Report
from tests.factories import make_report

FORCE = "lake-force"


def _rows(reports: list[Report]) -> dict[Table, list[Row]]:
    rows: dict[Table, list[Row]] = {"reports": [], "sightings": []}
    for report in reports:
        for table, table_rows in report_rows(report).items():
            rows[table].extend(table_rows)
    return rows


def _ids(root: Path, table: str = "reports", column: str = "report_id") -> list[str]:
    files = str(root / FORCE / table / "**" / "*.parquet")
    found = duckdb.connect().execute(
        f"SELECT {column} FROM read_parquet('{files}', hive_partitioning=true)"
    )
    return sorted(row[0] for row in found.fetchall())


@dataclass
class CrashingStorage:
    """The real directory, but the process "dies" (raises) after ``puts`` writes."""

    inner: LocalStorage
    puts: int

    def locate(self, path: str) -> str:
        return self.inner.locate(path)

    def put(self, path: str, data: bytes) -> None:
        if self.puts == 0:
            raise SystemExit("killed mid-flush")
        self.puts -= 1
        self.inner.put(path, data)

    def get(self, path: str) -> bytes | None:
        return self.inner.get(path)

    def delete(self, path: str) -> None:
        self.inner.delete(path)


def test_reports_and_their_sightings_land_in_their_hour(tmp_path: Path):
    rng = random.Random(1)
    at = datetime(2026, 11, 30, 13, 30, tzinfo=UTC)
    reports = [make_report(rng, at=at, citizens=2) for _ in range(5)]
    reports += [make_report(rng, at=at + timedelta(hours=2), citizens=1) for _ in range(3)]
    writer = LakeWriter(LocalStorage(tmp_path), FORCE)
    assert writer.resume("reports", 0) == -1
    flushed = writer.write("reports", 0, 7, _rows(reports))
    assert flushed.rows == 8 + 13
    hours = sorted(
        str(p.parent.relative_to(tmp_path / FORCE / "reports"))
        for p in (tmp_path / FORCE / "reports").rglob("*.parquet")
    )
    assert len(hours) == len(set(hours)) == len({r.timestamp.strftime("%d%H") for r in reports})
    assert _ids(tmp_path) == sorted(str(r.report_id) for r in reports)
    assert len(_ids(tmp_path, "sightings")) == sum(len(r.citizens) for r in reports)
    files = str(tmp_path / FORCE / "sightings" / "**" / "*.parquet")
    citizens = (
        duckdb.connect()
        .execute(
            f"SELECT citizen, score, hour FROM read_parquet('{files}', hive_partitioning=true)"
        )
        .fetchall()
    )
    expected = [(c.name, c.score, r.timestamp.hour) for r in reports for c in r.citizens]
    assert sorted(citizens) == sorted(expected)


@pytest.mark.parametrize("survived_puts", range(6))
def test_a_flush_interrupted_anywhere_is_rewritten_never_duplicated(
    tmp_path: Path, survived_puts: int
):
    rng = random.Random(survived_puts)
    at = datetime(2026, 11, 30, 9, tzinfo=UTC)
    first = [make_report(rng, at=at, citizens=1) for _ in range(4)]
    # Two hours, so a flush writes several files after its state: state, two reports files,
    # two sightings files, state.
    second = [make_report(rng, at=at + timedelta(hours=h), citizens=1) for h in (0, 3)]
    writer = LakeWriter(LocalStorage(tmp_path), FORCE)
    writer.resume("reports", 0)
    writer.write("reports", 0, 3, _rows(first))

    dying = LakeWriter(CrashingStorage(LocalStorage(tmp_path), survived_puts), FORCE)
    assert dying.resume("reports", 0) == 3
    with pytest.raises(SystemExit):
        dying.write("reports", 0, 5, _rows(second))

    # The next owner of the partition: replays from what Kafka had committed (offset 0).
    heir = LakeWriter(LocalStorage(tmp_path), FORCE)
    done = heir.resume("reports", 0)
    assert done == 3
    replayed = (first + second)[done + 1 :]
    heir.write("reports", 0, 5, _rows(replayed))
    assert _ids(tmp_path) == sorted(str(r.report_id) for r in first + second)
    assert len(_ids(tmp_path, "sightings")) == 6
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_flush_done_but_not_committed_is_skipped_on_replay(tmp_path: Path):
    rng = random.Random(3)
    reports = [make_report(rng, citizens=0) for _ in range(3)]
    writer = LakeWriter(LocalStorage(tmp_path), FORCE)
    writer.resume("reports", 2)
    writer.write("reports", 2, 2, _rows(reports))
    heir = LakeWriter(LocalStorage(tmp_path), FORCE)
    assert heir.resume("reports", 2) == 2
    with pytest.raises(ValueError, match="already in"):
        heir.write("reports", 2, 2, _rows(reports))
    assert _ids(tmp_path) == sorted(str(r.report_id) for r in reports)


def test_records_with_nothing_to_keep_still_move_the_partition_on(tmp_path: Path):
    writer = LakeWriter(LocalStorage(tmp_path), FORCE)
    writer.resume("alerts", 1)
    flushed = writer.write("alerts", 1, 41, {})
    assert flushed.files == ()
    assert LakeWriter(LocalStorage(tmp_path), FORCE).resume("alerts", 1) == 41


def test_a_stream_writes_only_its_own_tables_and_a_writer_resumes_first(tmp_path: Path):
    writer = LakeWriter(LocalStorage(tmp_path), FORCE)
    with pytest.raises(RuntimeError, match="resume"):
        writer.write("reports", 0, 1, {})
    writer.resume("alerts", 0)
    with pytest.raises(ValueError, match="does not fill the reports table"):
        writer.write("alerts", 0, 1, {"reports": []})


def test_a_force_writes_under_its_own_directory_only(tmp_path: Path):
    storage = open_storage(str(tmp_path))
    assert storage.locate(table_dir("other-force", "reports")) == str(
        tmp_path / "other-force" / "reports"
    )
    with pytest.raises(ValueError, match="invalid police force id"):
        table_dir("../other", "reports")
    with pytest.raises(ValueError, match="invalid police force id"):
        LakeWriter(storage, "Other/Force")
