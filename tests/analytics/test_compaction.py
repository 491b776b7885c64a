"""Compaction and retention of a force's lake, on a real directory with the real engine:
what readers see at every step, and across interrupted compactions."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from peaceland.analytics import compaction
from peaceland.analytics.compaction import (
    Compactor,
    Journal,
    journals,
    live_files,
)
from peaceland.analytics.lake import (
    LakeFencedError,
    LakeWriter,
    Listed,
    LocalStorage,
    Storage,
    alert_rows,
    hour_of,
    rows_of_reports,
    transition_rows,
)
from peaceland.analytics.rollups import COMPACTED
from peaceland.analytics.stats import STATISTICS, Answer, ForceLake, Window
from peaceland.tenants.lifecycle import Transition
from peaceland.tenants.reports import Report
from tests.factories import make_alert, make_report

FORCE = "compacted-force"
SETTLE = timedelta(minutes=15)
LINGER = timedelta(minutes=10)


@dataclass
class Clock:
    """Now, moved on by hand (file times are real: this clock only ever runs ahead); by
    default far enough for the files just written to have settled."""

    ahead: float = SETTLE.total_seconds()

    def __call__(self) -> float:
        return time.time() + self.ahead


def _hours_ago(hours: int, minutes: int = 30) -> datetime:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=hours) + timedelta(minutes=minutes)


def _transition(alert_id: uuid.UUID, seq: int, at: datetime) -> Transition:
    return Transition.model_validate(
        {
            "force_id": FORCE,
            "alert_id": str(alert_id),
            "seq": seq,
            "action": "acknowledge",
            "state": "acknowledged",
            "actor": "officer@example.org",
            "at": at.isoformat(),
            "raised_at": at.isoformat(),
        },
        strict=False,
    )


def _flush(writer: LakeWriter, partition: int, reports: list[Report]) -> None:
    done = writer.done("reports", partition)
    writer.write("reports", partition, done + len(reports), rows_of_reports(reports))


def _fill(root: Path | Storage, rng: random.Random, *, resend: bool = True) -> list[Report]:
    """Many small flushes of two partitions over two past hours (a resent report among
    them, when ``resend``), and alert events and transitions (each written twice), into a
    local lake at ``root`` or any storage."""
    writer = LakeWriter(LocalStorage(root) if isinstance(root, Path) else root, FORCE)
    for partition in (0, 1):
        writer.resume("reports", partition)
    reports = [
        make_report(rng, at=_hours_ago(hours), drone=rng.randint(0, 3))
        for hours in (3, 5)
        for _ in range(40)
    ]
    for index in range(0, len(reports), 8):  # ten flushes of eight
        _flush(writer, index // 8 % 2, reports[index : index + 8])
    if resend:  # a drone's resend, read again in a later flush of the other partition
        _flush(writer, 1, [reports[3]])
    alert = make_alert(FORCE, "Alice Martin", _hours_ago(3), report_id=reports[0].report_id)
    transition = _transition(alert.alert_id, 1, _hours_ago(3, 40))
    for stream, rows in (("alerts", alert_rows(alert)), ("lifecycle", transition_rows(transition))):
        writer.resume(stream, 0)  # type: ignore[arg-type]
        for last in (0, 1):  # the same event, read twice (a producer's retry)
            writer.write(stream, 0, last, rows)  # type: ignore[arg-type]
    return reports


def _seen(root: Path, sql: str) -> list[tuple[object, ...]]:
    """What a reader of the force's lake gets (the engine's own views)."""
    with ForceLake(LocalStorage(root), FORCE) as lake:
        return sorted(lake.connection.execute(sql).fetchall(), key=repr)


def _report_ids(root: Path) -> list[str]:
    return [str(row[0]) for row in _seen(root, "SELECT report_id FROM reports")]


def _sightings(reports: list[Report]) -> list[tuple[object, ...]]:
    return sorted(
        ((str(r.report_id), c.name, c.score) for r in reports for c in r.citizens), key=repr
    )


def _compactor(
    root: Path, clock: Clock, fence: Callable[[], None] = lambda: None, **options: object
) -> Compactor:
    # A rewrite here takes well under a minute: an interrupted one is dropped a linger on.
    options.setdefault("rewrite_seconds", 60)
    return Compactor(
        LocalStorage(root),
        FORCE,
        fence=fence,
        settle=SETTLE,
        linger=LINGER,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


def _leftovers(root: Path) -> list[Path]:
    """What an interrupted write or rewrite left: hidden files (temporaries, spill), but
    the writers' state locks, which stay."""
    return [p for p in root.rglob("*") if p.name.startswith(".") and p.suffix != ".lock"]


def _files(root: Path, table: str) -> list[Path]:
    return sorted((root / FORCE / table).rglob("*.parquet"))


def test_an_hours_files_become_one_with_every_row_once(tmp_path: Path):
    reports = _fill(tmp_path, random.Random(1))
    before = _report_ids(tmp_path)
    assert len(before) == len(reports) + 1  # the resend, as written
    clock = Clock()
    done = _compactor(tmp_path, clock).run()

    assert sorted((c.table, c.hour.hour) for c in done.compacted) == sorted(
        [(table, _hours_ago(hours).hour) for table in ("reports", "sightings") for hours in (3, 5)]
        + [("alerts", _hours_ago(3).hour), ("lifecycle", _hours_ago(3).hour)]
    )
    for table in ("reports", "sightings", "alerts", "lifecycle"):
        live = live_files(LocalStorage(tmp_path), FORCE, table)
        assert all(path.rsplit("/", 1)[1].startswith(COMPACTED) for path in live), live
        assert len(live) == len({path.rsplit("/", 1)[0] for path in live})  # one per hour
    assert _report_ids(tmp_path) == sorted(str(r.report_id) for r in reports)
    sightings = _seen(tmp_path, "SELECT CAST(report_id AS TEXT), citizen, score FROM sightings")
    assert sightings == _sightings(reports)
    assert len(_seen(tmp_path, "SELECT * FROM alerts")) == 1
    assert len(_seen(tmp_path, "SELECT * FROM lifecycle")) == 1
    # Rows sorted by drone and time within the file, the hour partitions as they were.
    hours = _seen(tmp_path, "SELECT DISTINCT date, hour FROM reports")
    # (Compared as sets of hours: between 03:00 and 05:00 UTC the two lie on two dates.)
    assert len(hours) == 2
    assert {h for _, h in hours} == {_hours_ago(n).hour for n in (3, 5)}

    # The replaced files linger for the queries under way, then go; their journals linger
    # as long again (for a reader that listed those files just before they went).
    assert len(_files(tmp_path, "reports")) > 2
    assert _compactor(tmp_path, clock).run().released == 0
    clock.ahead += LINGER.total_seconds()
    again = _compactor(tmp_path, clock).run()
    assert again.compacted == ()
    assert again.released == sum(c.sources for c in done.compacted)
    assert len(_files(tmp_path, "reports")) == 2
    assert len(journals(LocalStorage(tmp_path), FORCE)) == len(done.compacted)
    clock.ahead += LINGER.total_seconds()
    _compactor(tmp_path, clock).run()
    assert journals(LocalStorage(tmp_path), FORCE) == {}
    assert _report_ids(tmp_path) == sorted(str(r.report_id) for r in reports)
    assert _leftovers(tmp_path) == []


def test_the_compacted_lake_answers_every_statistic_as_before(tmp_path: Path):
    reports = _fill(tmp_path, random.Random(2))  # a resend among them
    window = Window(datetime.now(UTC) - timedelta(days=1), datetime.now(UTC))

    def answers() -> dict[str, Answer]:
        with ForceLake(LocalStorage(tmp_path), FORCE) as lake:
            return {name: lake.answer(name, window) for name in STATISTICS}

    before = answers()
    assert sum(row[2] for row in before["coverage"].rows) == len(reports)  # the resend once
    _compactor(tmp_path, Clock()).run()
    assert answers() == before
    # The same report sent once more, after its hour was compacted: still counted once.
    writer = LakeWriter(LocalStorage(tmp_path), FORCE)
    writer.resume("reports", 0)
    _flush(writer, 0, [reports[5]])
    assert answers() == before


def test_a_late_report_is_merged_into_its_compacted_hour_later(tmp_path: Path):
    rng = random.Random(3)
    reports = _fill(tmp_path, rng, resend=False)
    clock = Clock()
    _compactor(tmp_path, clock).run()
    writer = LakeWriter(LocalStorage(tmp_path), FORCE)
    writer.resume("reports", 0)
    late = make_report(rng, at=_hours_ago(3))
    _flush(writer, 0, [late])
    # Its hour waits until the first compaction's journal is gone.
    assert not [c for c in _compactor(tmp_path, clock).run().compacted if c.table == "reports"]
    clock.ahead += LINGER.total_seconds()
    assert not [c for c in _compactor(tmp_path, clock).run().compacted if c.table == "reports"]
    clock.ahead += LINGER.total_seconds()
    merged = _compactor(tmp_path, clock).run().compacted
    assert [(c.table, c.sources) for c in merged if c.table == "reports"] == [("reports", 2)]
    assert _report_ids(tmp_path) == sorted(str(r.report_id) for r in [*reports, late])


def test_an_hour_still_open_or_just_written_is_left_alone(tmp_path: Path):
    rng = random.Random(4)
    writer = LakeWriter(LocalStorage(tmp_path), FORCE)
    writer.resume("reports", 0)
    now = datetime.now(UTC)
    current = [make_report(rng, at=now) for _ in range(4)]
    current = [r.model_copy(update={"timestamp": now}) for r in current]
    for report in current:
        _flush(writer, 0, [report])
    assert _compactor(tmp_path, Clock(0)).run().compacted == ()
    # An hour past, but its files written a moment ago: a flush could still be adding one.
    past = [make_report(rng, at=_hours_ago(2)) for _ in range(2)]
    for report in past:
        _flush(writer, 0, [report])
    assert not [c for c in _compactor(tmp_path, Clock(0)).run().compacted if c.table == "reports"]
    settled = _compactor(tmp_path, Clock()).run().compacted
    assert [c.hour.hour for c in settled if c.table == "reports"] == [_hours_ago(2).hour]


def test_a_flush_under_way_keeps_its_hour_out_of_compaction(tmp_path: Path):
    rng = random.Random(5)
    reports = [make_report(rng, at=_hours_ago(4)) for _ in range(6)]
    writer = LakeWriter(LocalStorage(tmp_path), FORCE)
    writer.resume("reports", 0)
    _flush(writer, 0, reports[:3])
    # A writer that dies after its files but before its state says done.
    dying = LakeWriter(LocalStorage(tmp_path), FORCE)
    dying.resume("reports", 0)

    state_path = f"{FORCE}/_lake/reports/p0.json"
    real_put = LocalStorage.put

    def put(self: LocalStorage, path: str, data: bytes) -> None:
        if path == state_path and b'"writing": []' in data:
            raise SystemExit("killed before the flush was declared done")
        real_put(self, path, data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LocalStorage, "put", put)
        with pytest.raises(SystemExit):
            dying.write("reports", 0, 5, rows_of_reports(reports[3:]))
    clock = Clock()
    assert _compactor(tmp_path, clock).run().compacted == ()
    # Its heir deletes them and writes the records again: still nothing twice.
    heir = LakeWriter(LocalStorage(tmp_path), FORCE)
    heir.resume("reports", 0)
    _flush(heir, 0, reports[3:])
    clock.ahead += SETTLE.total_seconds()
    assert _compactor(tmp_path, clock).run().compacted
    assert _report_ids(tmp_path) == sorted(str(r.report_id) for r in reports)


class Crash(BaseException):
    """The compactor's process dying at one of its steps."""


@pytest.mark.parametrize("survived_steps", range(5))
def test_a_compaction_interrupted_anywhere_loses_and_doubles_nothing(
    tmp_path: Path, survived_steps: int
):
    reports = _fill(tmp_path, random.Random(6), resend=False)
    expected = sorted(str(r.report_id) for r in reports)
    steps = iter(range(survived_steps + 1))

    def fence() -> None:  # called before each step that writes: dies at the chosen one
        if next(steps) == survived_steps:
            raise Crash

    clock = Clock()
    with pytest.raises(Crash):
        _compactor(tmp_path, clock, fence).run()
    assert _report_ids(tmp_path) == expected
    assert _seen(tmp_path, "SELECT CAST(report_id AS TEXT), citizen, score FROM sightings") == (
        _sightings(reports)
    )
    # The next runs finish the work: every hour one file, every row once, nothing left over.
    for _ in range(3):
        clock.ahead += LINGER.total_seconds()
        _compactor(tmp_path, clock).run()
        assert _report_ids(tmp_path) == expected
    assert len(_files(tmp_path, "reports")) == 2
    assert len(_files(tmp_path, "sightings")) == 2
    assert journals(LocalStorage(tmp_path), FORCE) == {}
    assert _leftovers(tmp_path) == []


def test_a_compaction_published_but_not_stamped_is_finished_by_the_next_run(tmp_path: Path):
    reports = _fill(tmp_path, random.Random(7), resend=False)
    clock = Clock()
    _compactor(tmp_path, clock).run()
    storage = LocalStorage(tmp_path)
    for path, (journal, _) in journals(storage, FORCE).items():  # as if killed right after
        storage.put(path, Journal(journal.target, journal.sources).encode())
    assert _report_ids(tmp_path) == sorted(str(r.report_id) for r in reports)
    _compactor(tmp_path, clock).run()  # stamps them now: the linger starts again
    assert all(j.compacted_at for j, _ in journals(storage, FORCE).values())
    clock.ahead += LINGER.total_seconds()
    assert _compactor(tmp_path, clock).run().released
    assert _report_ids(tmp_path) == sorted(str(r.report_id) for r in reports)


def test_a_fenced_compactor_publishes_nothing(tmp_path: Path):
    reports = _fill(tmp_path, random.Random(8), resend=False)
    holder = LakeWriter(LocalStorage(tmp_path), FORCE)
    holder.resume("reports", 0)
    holder.fence("reports", 0)  # ours: passes
    LakeWriter(LocalStorage(tmp_path), FORCE).resume("reports", 0)  # another took it over
    with pytest.raises(LakeFencedError):
        holder.fence("reports", 0)
    with pytest.raises(LakeFencedError):
        _compactor(tmp_path, Clock(), lambda: holder.fence("reports", 0)).run()
    assert not [p for p in _files(tmp_path, "reports") if p.name.startswith(COMPACTED)]
    assert _report_ids(tmp_path) == sorted(str(r.report_id) for r in reports)


def _around_the_retention(root: Path, seed: int) -> tuple[list[Report], list[Report]]:
    """Reports of 29 days ago (kept by a 30-day retention) and of 31 (not), in the lake."""
    rng = random.Random(seed)
    writer = LakeWriter(LocalStorage(root), FORCE)
    writer.resume("reports", 0)
    kept = [make_report(rng, at=_hours_ago(24 * 29)) for _ in range(3)]
    old = [make_report(rng, at=_hours_ago(24 * 31)) for _ in range(3)]
    _flush(writer, 0, kept + old)
    return kept, old


def test_hours_past_the_forces_retention_are_deleted(tmp_path: Path):
    kept, old = _around_the_retention(tmp_path, 9)
    done = _compactor(tmp_path, Clock(), retention=timedelta(days=30)).run()
    assert done.expired == 2 * len({r.timestamp.strftime("%d%H") for r in old})
    assert _report_ids(tmp_path) == sorted(str(r.report_id) for r in kept)
    old_days = {f"date={r.timestamp:%Y-%m-%d}" for r in old} - {
        f"date={r.timestamp:%Y-%m-%d}" for r in kept
    }
    assert not [p for p in (tmp_path / FORCE).rglob("date=*") if p.name in old_days]


def test_a_report_resent_within_one_flush_is_kept_once_with_its_citizens(tmp_path: Path):
    # The gateway keys reports by drone: a resend goes to the same partition, most often
    # into the same flush as the first sending.
    rng = random.Random(10)
    report = make_report(rng, at=_hours_ago(3), citizens=3)
    others = [make_report(rng, at=_hours_ago(3), citizens=2) for _ in range(3)]
    sent = [others[0], report, others[1], report, report, others[2]]
    writer = LakeWriter(LocalStorage(tmp_path), FORCE)
    writer.resume("reports", 0)
    writer.write("reports", 0, len(sent) - 1, rows_of_reports(sent))
    unique = [report, *others]
    expected = sorted(str(r.report_id) for r in unique)
    assert _report_ids(tmp_path) == expected
    sightings = "SELECT CAST(report_id AS TEXT), citizen, score FROM sightings"
    assert _seen(tmp_path, sightings) == _sightings(unique)
    _compactor(tmp_path, Clock()).run()
    assert _report_ids(tmp_path) == expected
    assert _seen(tmp_path, sightings) == _sightings(unique)


@dataclass(frozen=True)
class SlowReader(LocalStorage):
    """The real directory; ``meanwhile`` runs once, right after a table's files are listed
    (a reader that lists, then is paused before it reads the journals)."""

    meanwhile: list[Callable[[], object]] = field(default_factory=list)

    def list(self, prefix: str, *, times: bool = True) -> list[Listed]:
        found = super().list(prefix, times=times)
        if prefix.endswith("/reports") and self.meanwhile:
            self.meanwhile.pop()()
        return found


def test_a_reader_paused_between_listing_and_journals_is_never_handed_a_deleted_file(
    tmp_path: Path,
):
    reports = _fill(tmp_path, random.Random(11), resend=False)
    clock = Clock()
    _compactor(tmp_path, clock).run()
    clock.ahead += LINGER.total_seconds()
    # The reader lists the hours (sources and compacted files), then the sources are
    # released while it is paused, before it reads the journals.
    reader = SlowReader(tmp_path, [_compactor(tmp_path, clock).run])
    files = live_files(reader, FORCE, "reports")
    assert all((tmp_path / path).exists() for path in files)
    assert len(files) == 2
    assert _report_ids(tmp_path) == sorted(str(r.report_id) for r in reports)


def test_a_corrupt_file_holds_back_its_hour_only_and_is_retried_later(tmp_path: Path):
    reports = _fill(tmp_path, random.Random(12), resend=False)
    [broken, *_] = _files(tmp_path, "reports")
    broken.write_bytes(b"PAR1 this is not a parquet file PAR1")
    clock = Clock()
    compactor = _compactor(tmp_path, clock)
    done = compactor.run()
    # Every other hour and table compacted; the broken one reported, its files untouched.
    assert ("reports", hour_of(str(broken.relative_to(tmp_path)))) in done.failed
    assert len(done.compacted) == 5
    assert broken.exists()
    # Not tried again at once (each try reads its whole hour), but later.
    clock.ahead += 1
    assert compactor.run().failed == ()
    clock.ahead += 24 * 3600
    assert compactor.run().failed
    del reports


def test_a_compaction_killed_mid_rewrite_leaves_nothing_behind_once_finished(tmp_path: Path):
    reports = _fill(tmp_path, random.Random(13), resend=False)
    clock = Clock()
    # Its own process, given no time at all: killed while it writes.
    killed = _compactor(tmp_path, clock, isolated=True, rewrite_seconds=0.001).run()
    assert killed.compacted == ()
    assert killed.failed
    assert _report_ids(tmp_path) == sorted(str(r.report_id) for r in reports)
    for _ in range(3):
        clock.ahead += 2 * LINGER.total_seconds()
        _compactor(tmp_path, clock, isolated=True).run()
    assert len(_files(tmp_path, "reports")) == 2
    assert _report_ids(tmp_path) == sorted(str(r.report_id) for r in reports)
    hidden = _leftovers(tmp_path)
    assert hidden == []


def _compact_then_hang(root: str) -> None:
    """In a process of its own: compact, and hang once the first hour is rewritten (just
    before it is published), to be killed there."""
    calls = iter(range(1_000))

    def fence() -> None:
        if next(calls) == 1:
            time.sleep(600)

    _compactor(Path(root), Clock(), fence, memory_mb=64).run()


def test_the_compacting_process_killed_mid_hour_leaves_nothing_behind(tmp_path: Path):
    reports = _fill(tmp_path, random.Random(14), resend=False)
    process = multiprocessing.get_context("spawn").Process(
        target=_compact_then_hang, args=(str(tmp_path),)
    )
    process.start()
    try:
        deadline = time.monotonic() + 60
        while not [p for p in tmp_path.rglob(".c-*.tmp")] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p for p in tmp_path.rglob(".c-*.tmp")], "no rewrite under way within 60 s"
    finally:
        process.kill()
        process.join(10)
    assert _report_ids(tmp_path) == sorted(str(r.report_id) for r in reports)
    clock = Clock()
    for _ in range(3):
        _compactor(tmp_path, clock).run()
        clock.ahead += LINGER.total_seconds()
    assert len(_files(tmp_path, "reports")) == 2
    assert _report_ids(tmp_path) == sorted(str(r.report_id) for r in reports)
    assert _leftovers(tmp_path) == []
    assert not (tmp_path / FORCE / "_lake" / "spill").exists() or not list(
        (tmp_path / FORCE / "_lake" / "spill").iterdir()
    )


def test_a_reader_whose_listed_hour_expires_meanwhile_lists_again(tmp_path: Path):
    kept, _ = _around_the_retention(tmp_path, 15)
    # The reader lists every hour, then retention deletes the oldest before it opens them.
    retention = _compactor(tmp_path, Clock(), retention=timedelta(days=30)).run
    reader = SlowReader(tmp_path, [retention])
    with ForceLake(reader, FORCE) as lake:
        found = lake.connection.execute("SELECT CAST(report_id AS TEXT) FROM reports").fetchall()
    assert sorted(row[0] for row in found) == sorted(str(r.report_id) for r in kept)


@pytest.mark.parametrize("bound", [True, False], ids=["fence-bound-to-its-hold", "any-hold"])
def test_a_compactor_whose_hold_went_and_came_back_publishes_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bound: bool
):
    reports = _fill(tmp_path, random.Random(16), resend=False)
    x, y = LakeWriter(LocalStorage(tmp_path), FORCE), LakeWriter(LocalStorage(tmp_path), FORCE)
    x.resume("reports", 0)
    rewriting, go = threading.Event(), threading.Event()
    real = compaction.rewrite_hour
    calls: list[str] = []

    def first_one_slow(*args: Any) -> dict[str, int]:
        calls.append(args[0])
        if len(calls) == 1:
            rewriting.set()
            go.wait(30)
        return real(*args)

    monkeypatch.setattr(compaction, "rewrite_hour", first_one_slow)
    x_fence = x.fencer("reports", 0) if bound else (lambda: x.fence("reports", 0))
    outcome: list[object] = []

    def x_runs() -> None:
        try:
            outcome.append(_compactor(tmp_path, Clock()).run(x_fence))
        except LakeFencedError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=x_runs)
    thread.start()
    assert rewriting.wait(30)  # X rewrites its first hour; its list of hours is made
    x.forget("reports", 0)
    y.resume("reports", 0)  # the partition goes to Y, which compacts the other hours
    assert _compactor(tmp_path, Clock()).run(y.fencer("reports", 0)).compacted
    y.forget("reports", 0)
    x.resume("reports", 0)  # and comes back to X, whose run goes on
    go.set()
    thread.join(60)
    assert outcome
    for table in ("reports", "sightings", "alerts", "lifecycle"):
        live = live_files(LocalStorage(tmp_path), FORCE, table)
        compacted = [p for p in live if p.rsplit("/", 1)[1].startswith(COMPACTED)]
        assert len(compacted) == len({p.rsplit("/", 1)[0] for p in compacted}), table
    assert _report_ids(tmp_path) == sorted(str(r.report_id) for r in reports)
    sightings = "SELECT CAST(report_id AS TEXT), citizen, score FROM sightings"
    assert _seen(tmp_path, sightings) == _sightings(reports)


def test_a_resend_stamped_in_another_hour_counts_the_same_compacted_or_not(tmp_path: Path):
    rng = random.Random(17)
    first = make_report(rng, at=_hours_ago(4)).model_copy(
        update={"timestamp": _hours_ago(4, 59) + timedelta(seconds=30)}
    )
    # A broken drone clock: the same report again, stamped in the next hour.
    again = first.model_copy(update={"timestamp": _hours_ago(3, 1)})
    writer = LakeWriter(LocalStorage(tmp_path), FORCE)
    writer.resume("reports", 0)
    for report in (first, again, first):
        _flush(writer, 0, [report])
    window = Window(datetime.now(UTC) - timedelta(days=1), datetime.now(UTC))

    def covered() -> int:
        with ForceLake(LocalStorage(tmp_path), FORCE) as lake:
            return sum(row[2] for row in lake.answer("coverage", window).rows)

    assert covered() == 2  # once in each hour it was stamped in
    _compactor(tmp_path, Clock()).run()
    assert covered() == 2


def test_a_broken_file_outside_the_window_leaves_the_statistics_of_the_window_alone(
    tmp_path: Path,
):
    rng = random.Random(18)
    reports = _fill(tmp_path, rng, resend=False)
    writer = LakeWriter(LocalStorage(tmp_path), FORCE)
    writer.resume("reports", 2)
    # (The engine takes the columns from the first file of the list: an older good one.)
    for hours in (96, 72):
        _flush(writer, 2, [make_report(rng, at=_hours_ago(hours))])
    [broken] = [
        p
        for p in _files(tmp_path, "reports")
        if p.parent.name == f"hour={_hours_ago(72):%H}"
        and p.parent.parent.name == f"date={_hours_ago(72):%Y-%m-%d}"
    ]
    broken.write_bytes(b"PAR1 not parquet PAR1")
    window = Window(datetime.now(UTC) - timedelta(hours=6), datetime.now(UTC))
    with ForceLake(LocalStorage(tmp_path), FORCE) as lake:
        assert lake.answer("words", window).rows
        assert sum(row[2] for row in lake.answer("coverage", window).rows) == len(reports)
