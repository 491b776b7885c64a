"""Compaction and rollups of a lake on the stack's real S3 server: an hour's files are
copied into a local work folder, rewritten, and the result uploaded whole; readers (through
their snapshots) see every row once at every step, as on a local disk."""

from __future__ import annotations

import errno
import random
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyarrow.fs import PyFileSystem

from peaceland.analytics.compaction import Compactor, journals, live_files
from peaceland.analytics.lake import (
    ArrowStorage,
    encode_parquet,
    hour_of,
    report_rows,
)
from peaceland.analytics.mirror import Mirror
from peaceland.analytics.rollups import COMPACTED
from peaceland.analytics.stats import STATISTICS, Answer, ForceLake, Window
from tests.analytics.test_compaction import FORCE, LINGER, SETTLE, Clock, Crash, _fill, _sightings
from tests.factories import make_report
from tests.lake_storage import FlatStore

pytestmark = pytest.mark.timeout(300)


def _compactor(
    storage: ArrowStorage, work: Path, clock: Clock, fence: Callable[[], None] = lambda: None
) -> Compactor:
    return Compactor(
        storage,
        FORCE,
        fence=fence,
        work_dir=work,
        settle=SETTLE,
        linger=LINGER,
        clock=clock,
        rewrite_seconds=60,
    )


class Reader:
    """A reader of the force's lake on the store, through a fresh snapshot each time."""

    def __init__(self, storage: ArrowStorage, folder: Path) -> None:
        self.mirror = Mirror(storage, folder)

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        with ForceLake(self.mirror.snapshot(FORCE), FORCE) as lake:
            return sorted(lake.connection.execute(sql).fetchall(), key=repr)

    def report_ids(self) -> list[str]:
        return [str(row[0]) for row in self.rows("SELECT report_id FROM reports")]

    def answers(self) -> dict[str, Answer]:
        window = Window(datetime.now(UTC) - timedelta(days=1), datetime.now(UTC))
        with ForceLake(self.mirror.snapshot(FORCE), FORCE) as lake:
            return {name: lake.answer(name, window) for name in STATISTICS}


def _names(storage: ArrowStorage, table: str) -> list[str]:
    return [f.path.rsplit("/", 1)[1] for f in storage.list(f"{FORCE}/{table}")]


def test_an_hour_on_the_store_becomes_one_file_and_answers_as_before(
    s3_lake: ArrowStorage, tmp_path: Path
):
    reports = _fill(s3_lake, random.Random(1))
    reader = Reader(s3_lake, tmp_path / "mirror")
    before = reader.answers()
    assert len(reader.report_ids()) == len(reports) + 1  # the resend, as written
    clock = Clock()
    done = _compactor(s3_lake, tmp_path / "work", clock).run()
    assert {(c.table, c.sources > 1) for c in done.compacted} >= {
        ("reports", True),
        ("sightings", True),
    }
    assert all(c.bytes > 0 and c.bytes_before > 0 for c in done.compacted)
    assert reader.report_ids() == sorted(str(r.report_id) for r in reports)
    sightings = reader.rows("SELECT CAST(report_id AS TEXT), citizen, score FROM sightings")
    assert sightings == _sightings(reports)
    assert reader.answers() == before
    assert done.rolled_up  # the hours of reports, rolled up on the store too
    assert s3_lake.list(f"{FORCE}/_rollups")

    # The replaced files linger for the queries under way, then go, and their journals.
    clock.ahead += LINGER.total_seconds()
    assert _compactor(s3_lake, tmp_path / "work", clock).run().released > 0
    clock.ahead += LINGER.total_seconds()
    _compactor(s3_lake, tmp_path / "work", clock).run()
    assert all(name.startswith(COMPACTED) for name in _names(s3_lake, "reports"))
    assert len(_names(s3_lake, "reports")) == 2  # one an hour
    assert journals(s3_lake, FORCE) == {}
    assert reader.answers() == before
    # Nothing copied is left on this machine once the hours are done.
    assert [p for p in (tmp_path / "work").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("survived_steps", range(5))
def test_a_compaction_on_the_store_interrupted_anywhere_loses_and_doubles_nothing(
    s3_lake: ArrowStorage, tmp_path: Path, survived_steps: int
):
    reports = _fill(s3_lake, random.Random(6), resend=False)
    expected = sorted(str(r.report_id) for r in reports)
    reader = Reader(s3_lake, tmp_path / "mirror")
    steps = iter(range(survived_steps + 1))

    def fence() -> None:  # called before each step that writes: dies at the chosen one
        if next(steps) == survived_steps:
            raise Crash

    clock = Clock()
    with pytest.raises(Crash):
        _compactor(s3_lake, tmp_path / "work", clock, fence).run()
    assert reader.report_ids() == expected
    for _ in range(3):
        clock.ahead += LINGER.total_seconds()
        _compactor(s3_lake, tmp_path / "work", clock).run()
        assert reader.report_ids() == expected
    assert len(_names(s3_lake, "reports")) == 2
    assert len(_names(s3_lake, "sightings")) == 2
    assert journals(s3_lake, FORCE) == {}


def test_a_lake_on_a_store_is_compacted_in_a_work_folder_or_not_at_all(s3_lake: ArrowStorage):
    with pytest.raises(ValueError, match="work_dir"):
        Compactor(s3_lake, FORCE, fence=lambda: None)


def _targets(storage: ArrowStorage) -> dict[str, int]:
    return {
        f.path: f.size
        for f in storage.list(FORCE)
        if f.path.rsplit("/", 1)[-1].startswith(COMPACTED)
    }


def test_a_second_compactor_starting_beside_a_running_one_never_empties_its_work(
    s3_lake: ArrowStorage, tmp_path: Path
):
    """A compactor taken for dead that still runs shares the work folder: the other's run
    starts (and clears what killed runs left) while ours is between its last fence and its
    upload. Ours keeps its copies; nothing empty or cut is published."""
    reports = _fill(s3_lake, random.Random(6), resend=False)
    expected = sorted(str(r.report_id) for r in reports)
    reader = Reader(s3_lake, tmp_path / "mirror")
    work = tmp_path / "work"
    clock = Clock()
    other = _compactor(s3_lake, work, clock)
    calls = iter(range(1_000))

    def fence() -> None:
        if next(calls) == 1:  # the fence before the first hour's check and upload
            other.workspace.begin()

    done = _compactor(s3_lake, work, clock, fence).run()
    other.workspace.finish()
    assert done.compacted
    assert all(size > 0 for size in _targets(s3_lake).values()), _targets(s3_lake)
    assert reader.report_ids() == expected


def test_an_upload_cut_short_publishes_nothing(
    s3_lake: ArrowStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A local read failing half-way through the upload: pyarrow completes the upload with
    what it got when its stream closes; the cut file is removed, the hour fails alone."""
    reports = _fill(s3_lake, random.Random(6), resend=False)
    expected = sorted(str(r.report_id) for r in reports)
    reader = Reader(s3_lake, tmp_path / "mirror")
    real = shutil.copyfileobj

    def flaky(source: Any, out: Any, length: int = 0) -> None:
        if isinstance(out, pa.NativeFile):  # the upload, not a download
            out.write(source.read(64))
            raise OSError(errno.EIO, "Input/output error")
        real(source, out, length)

    monkeypatch.setattr(shutil, "copyfileobj", flaky)
    clock = Clock()
    done = _compactor(s3_lake, tmp_path / "work", clock).run()
    assert done.failed
    assert done.compacted == ()
    assert _targets(s3_lake) == {}
    monkeypatch.setattr(shutil, "copyfileobj", real)
    for _ in range(3):
        clock.ahead += LINGER.total_seconds() * 8  # past the failed hours' backoff
        _compactor(s3_lake, tmp_path / "work", clock).run()
    assert reader.report_ids() == expected
    assert all(size > 0 for size in _targets(s3_lake).values())


def test_a_copy_that_fails_is_one_hours_failure_not_the_whole_runs(
    s3_lake: ArrowStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The work folder full (ENOSPC) while the oldest hour's files are copied: that hour
    fails alone (and is tried again later), the others are compacted."""
    _fill(s3_lake, random.Random(6), resend=False)
    real = ArrowStorage.download
    oldest_hour = min(f.path for f in s3_lake.list(f"{FORCE}/reports")).rsplit("/", 1)[0]

    def full(self: ArrowStorage, path: str, to: Path) -> None:
        if path.startswith(oldest_hour):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, path, to)

    monkeypatch.setattr(ArrowStorage, "download", full)
    done = _compactor(s3_lake, tmp_path / "work", Clock()).run()
    assert done.failed
    assert done.compacted


def test_a_key_aliasing_another_once_resolved_never_replaces_its_rows(tmp_path: Path):
    """A store key under the force's folder that names another file once resolved
    (``…/zz/../p0-….parquet``: the force's own key may write it) is not a lake file: the
    compactor leaves it, and the file it aliases keeps its rows."""
    held = FlatStore()
    store = ArrowStorage(PyFileSystem(held), "bucket/lake", "s3://bucket/lake")
    reports = _fill(store, random.Random(6), resend=False)
    real = min(f.path for f in store.list(f"{FORCE}/reports"))
    folder, name = real.rsplit("/", 1)
    hour = hour_of(real)
    assert hour is not None
    fake = make_report(random.Random(99), at=(hour + timedelta(minutes=1)).replace(tzinfo=UTC))
    planted = encode_parquet("reports", report_rows(fake)["reports"])
    held.objects[f"bucket/lake/{folder}/zz/../{name}"] = planted
    held.objects[f"bucket/lake/{folder}/zz/a.parquet"] = planted
    clock = Clock()
    for _ in range(3):
        Compactor(store, FORCE, fence=lambda: None, work_dir=tmp_path / "w", clock=clock).run()
        clock.ahead += LINGER.total_seconds()
    ids = Reader(store, tmp_path / "mirror").report_ids()  # as every reader reads it
    assert sorted(ids) == sorted(str(r.report_id) for r in reports)
    assert str(fake.report_id) not in ids
    # The compacted hour holds the real rows (the alias was never copied over them).
    compacted = [p for p in live_files(store, FORCE, "reports") if COMPACTED in p]
    assert compacted


def test_the_retention_is_kept_whatever_becomes_of_the_work_folder(tmp_path: Path):
    """A work folder that cannot be used (here a file where it should be; a link, a full
    or read-only disk alike) stops compaction, never the force's retention."""
    held = FlatStore()
    store = ArrowStorage(PyFileSystem(held), "bucket/lake", "s3://bucket/lake")
    _fill(store, random.Random(6), resend=False)  # hours 3 and 5 ago
    work = tmp_path / "w"
    work.mkdir()
    (work / FORCE).write_text("")
    compactor = Compactor(
        store, FORCE, fence=lambda: None, work_dir=work, retention=timedelta(hours=1), clock=Clock()
    )
    done = compactor.run()
    assert done.expired > 0
    assert done.compacted == ()
    assert store.list(f"{FORCE}/reports") == []


def test_a_work_folder_someone_could_swap_is_refused(s3_lake: ArrowStorage, tmp_path: Path):
    """The copies are the force's sightings: a work folder that is a link is not used."""
    _fill(s3_lake, random.Random(6), resend=False)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "work").symlink_to(tmp_path / "elsewhere")
    done = _compactor(s3_lake, tmp_path / "work", Clock()).run()
    assert done.compacted == ()
    assert list((tmp_path / "elsewhere").iterdir()) == []
