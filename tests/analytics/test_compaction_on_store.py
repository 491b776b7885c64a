"""Compaction and rollups of a lake on the stack's real S3 server: an hour's files are
copied into a local work folder, rewritten, and the result uploaded whole; readers (through
their snapshots) see every row once at every step, as on a local disk."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from peaceland.analytics.compaction import Compactor, journals
from peaceland.analytics.lake import ArrowStorage, open_storage
from peaceland.analytics.mirror import Mirror
from peaceland.analytics.rollups import COMPACTED
from peaceland.analytics.stats import STATISTICS, Answer, ForceLake, Window
from peaceland.stack import Endpoints
from tests.analytics.test_compaction import FORCE, LINGER, SETTLE, Clock, Crash, _fill, _sightings

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def s3_lake(endpoints: Endpoints) -> Iterator[ArrowStorage]:
    access = endpoints.s3
    assert access is not None
    storage = open_storage(
        access.lake_uri(f"compaction-{uuid.uuid4().hex[:8]}"),
        s3_keys=(access.access_key, access.secret_key),
    )
    assert isinstance(storage, ArrowStorage)
    yield storage
    storage.filesystem.delete_dir_contents(storage.root, missing_dir_ok=True)


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
