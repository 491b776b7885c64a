"""The lake on the stack's real S3 server (SeaweedFS): written exactly once, read back
through a snapshot, the same answers as on a local disk."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.fs as pafs
import pytest

from peaceland.analytics.lake import (
    ArrowStorage,
    LakeWriter,
    LocalStorage,
    delete_force_lake,
    rows_of_reports,
)
from peaceland.analytics.mirror import Mirror, Snapshot
from peaceland.analytics.sql import QueryLimits, ask
from peaceland.analytics.stats import STATISTICS, ForceLake
from tests.analytics.test_lake import CrashingStorage
from tests.analytics.test_stats import FORCE, WINDOW, write_history
from tests.factories import make_report


def _report_ids(storage: ArrowStorage, folder: Path, table: str = "reports") -> list[str]:
    snapshot = Mirror(storage, folder).snapshot(FORCE)
    files = [snapshot.locate(f.path) for f in snapshot.list(f"{FORCE}/{table}")]
    if not files:
        return []
    rows = duckdb.connect().execute("SELECT report_id FROM read_parquet(?)", [files]).fetchall()
    return sorted(row[0] for row in rows)


@pytest.mark.parametrize("survived_puts", [0, 1, 2, 3])
def test_a_flush_interrupted_on_the_object_store_is_rewritten_never_duplicated(
    s3_lake: ArrowStorage, tmp_path: Path, survived_puts: int
):
    rng = random.Random(survived_puts)
    at = datetime(2026, 11, 30, 9, tzinfo=UTC)
    first = [make_report(rng, at=at, citizens=1) for _ in range(4)]
    second = [make_report(rng, at=at + timedelta(hours=h), citizens=1) for h in (0, 3)]
    writer = LakeWriter(s3_lake, FORCE)
    writer.resume("reports", 0)
    writer.write("reports", 0, 3, rows_of_reports(first))

    crashing = CrashingStorage(s3_lake, puts=1)
    dying = LakeWriter(crashing, FORCE)
    assert dying.resume("reports", 0) == 3
    crashing.puts = survived_puts
    with pytest.raises(SystemExit):
        dying.write("reports", 0, 5, rows_of_reports(second))

    heir = LakeWriter(s3_lake, FORCE)
    done = heir.resume("reports", 0)
    assert done == 3
    heir.write("reports", 0, 5, rows_of_reports((first + second)[done + 1 :]))
    assert _report_ids(s3_lake, tmp_path) == sorted(str(r.report_id) for r in first + second)
    assert len(_report_ids(s3_lake, tmp_path, "sightings")) == 6


def test_the_object_store_answers_as_a_local_disk_does(s3_lake: ArrowStorage, tmp_path: Path):
    write_history(s3_lake)
    write_history(tmp_path / "local")
    snapshot = Mirror(s3_lake, tmp_path / "mirror").snapshot(FORCE)
    assert isinstance(snapshot, Snapshot)
    with (
        ForceLake(snapshot, FORCE) as remote,
        ForceLake(LocalStorage(tmp_path / "local"), FORCE) as local,
    ):
        for name in STATISTICS:
            expected = local.answer(name, WINDOW).rows
            assert remote.answer(name, WINDOW).rows == expected, name
    # An analyst's SQL, in its sandboxed child, over the snapshot.
    query = "SELECT count(*) AS n, count(DISTINCT drone_id) AS drones FROM reports"
    limits = QueryLimits(seconds=30, rows=10)
    over_s3 = ask(snapshot, FORCE, query, limits, memory_bytes=512 * 1024 * 1024)
    over_disk = ask(LocalStorage(tmp_path / "local"), FORCE, query, limits,
                    memory_bytes=512 * 1024 * 1024)  # fmt: skip
    assert over_s3.rows == over_disk.rows
    assert over_s3.rows[0][0] > 0


def test_a_deleted_forces_lake_goes_whole_from_the_store_and_no_other(s3_lake: ArrowStorage):
    write_history(s3_lake)
    write_history(s3_lake, "neighbour")
    s3_lake.filesystem.create_dir(f"{s3_lake.root}/{FORCE}/reports/empty")  # a folder marker
    listed = len(s3_lake.list(FORCE))
    assert delete_force_lake(s3_lake, FORCE) == listed > 0
    assert s3_lake.list(FORCE) == []
    # Nor a folder marker (SeaweedFS still answers a HEAD of the force's folder, an empty
    # directory of its filer: no object is in it).
    left = pafs.FileSelector(f"{s3_lake.root}/{FORCE}", recursive=True, allow_not_found=True)
    assert s3_lake.filesystem.get_file_info(left) == []
    assert s3_lake.list("neighbour")
    assert delete_force_lake(s3_lake, FORCE) == 0  # again: nothing left, nothing failed
