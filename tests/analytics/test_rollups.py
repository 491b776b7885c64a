"""The rollups of compacted hours of reports: ``coverage`` and ``words`` read them for the
hours wholly in their window, and answer exactly what the reports themselves say, checked
against figures computed in plain Python, for windows cut anywhere; a rollup that no longer
matches its files is never read."""

from __future__ import annotations

import math
import shutil
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from peaceland.analytics import rollups
from peaceland.analytics.compaction import Compactor, Maintenance, reading_of
from peaceland.analytics.lake import LakeWriter, LocalStorage, alert_rows
from peaceland.analytics.rollups import KINDS, rollup_dir
from peaceland.analytics.stats import ForceLake, Options, Window
from peaceland.tenants.alerts import Alert
from peaceland.tenants.reports import Report
from tests.analytics.test_stats import FORCE, START, write_history
from tests.factories import make_alert

LINGER = timedelta(minutes=15)

#: Windows cut on hours and inside them, one within a single hour, one around everything.
WINDOWS = [
    Window(START, START + timedelta(hours=4)),
    Window(START + timedelta(minutes=30), START + timedelta(hours=3, minutes=10)),
    Window(START + timedelta(minutes=10), START + timedelta(minutes=40)),
    Window(START - timedelta(hours=3), START + timedelta(hours=10)),
]


class Clock:
    """Now, ``ahead`` of the real time: far enough for every file just written to have
    settled (the history's hours are long past)."""

    def __init__(self) -> None:
        self.ahead = 2 * 3600.0

    def __call__(self) -> float:
        return time.time() + self.ahead


def _compactor(root: Path, clock: Clock, **options: object) -> Compactor:
    return Compactor(
        LocalStorage(root),
        FORCE,
        fence=lambda: None,
        linger=LINGER,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hours(reports: list[Report]) -> list[datetime]:
    """The hours of the reports (UTC, without a zone, as the lake names them)."""
    return sorted({_hour(r.timestamp).replace(tzinfo=None) for r in reports})


def _alerting(report: Report, alerts: list[Alert]) -> bool:
    """An alert event names the report, raised from an hour before its hour to an hour
    after it."""
    start = _hour(report.timestamp)
    return any(
        a.report_id == report.report_id
        and start - timedelta(hours=1) <= a.raised_at < start + timedelta(hours=2)
        for a in alerts
    )


def _expected_words(
    reports: list[Report], alerts: list[Alert], window: Window
) -> dict[str, tuple[int, int]]:
    heard: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for report in reports:
        if window.start <= report.timestamp < window.end:
            for word in report.words:
                heard[word][0 if _alerting(report, alerts) else 1] += 1
    return {word: (n[0], n[1]) for word, n in heard.items()}


def _expected_coverage(
    reports: list[Report], window: Window, g: float
) -> dict[tuple[float, float], tuple[int, int]]:
    cells: dict[tuple[float, float], list[Report]] = defaultdict(list)
    for report in reports:
        if window.start <= report.timestamp < window.end:
            cell = (
                round(math.floor(report.latitude / g) * g, 6),
                round(math.floor(report.longitude / g) * g, 6),
            )
            cells[cell].append(report)
    return {
        cell: (len(inside), len({(r.drone_id, _hour(r.timestamp)) for r in inside}))
        for cell, inside in cells.items()
    }


def _late_alerts(reports: list[Report], alerts: list[Alert]) -> list[Alert]:
    """An alert raised in the hour after its report's (it counts) and one three hours
    after (it does not), each naming a report no other alert names."""
    named = {a.report_id for a in alerts}
    quiet = [r for r in reports if r.report_id not in named and r.words]
    late = []
    for report, delay in ((quiet[10], timedelta(minutes=61)), (quiet[20], timedelta(hours=3))):
        alert = make_alert(
            FORCE, "Late Citizen", report.timestamp, report_id=report.report_id, event="updated"
        )
        late.append(alert.model_copy(update={"raised_at": _hour(report.timestamp) + delay}))
    return late


def _write_alerts(root: Path, alerts: list[Alert]) -> None:
    writer = LakeWriter(LocalStorage(root), FORCE)
    writer.resume("alerts", 1)
    first = writer.done("alerts", 1) + 1
    rows = [row for alert in alerts for row in alert_rows(alert)["alerts"]]
    writer.write("alerts", 1, first + len(alerts) - 1, {"alerts": rows})


@pytest.fixture(scope="module")
def rolled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Report], list[Alert]]:
    root = tmp_path_factory.mktemp("rolled")
    reports, alerts, _ = write_history(root)
    late = _late_alerts(reports, alerts)
    _write_alerts(root, late)
    done = _compactor(root, Clock()).run()
    assert sorted(done.rolled_up) == _hours(reports)  # every hour of the history
    return root, reports, [*alerts, *late]


Words = dict[str, tuple[int, int]]
Coverage = dict[tuple[float, float], tuple[int, int]]


def _answers(root: Path, window: Window, options: Options) -> tuple[Words, Coverage]:
    with ForceLake(LocalStorage(root), FORCE) as lake:
        words = {
            r["word"]: (r["heard_with_alerts"], r["heard_without_alerts"])
            for r in lake.answer("words", window, Options(top=10_000)).records()
        }
        coverage = {
            (lat, lon): (n, drone_hours)
            for lat, lon, n, drone_hours in lake.answer("coverage", window, options).rows
        }
    return words, coverage


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("grid", [0.01, 0.05])
def test_rolled_up_hours_answer_coverage_and_words_as_their_reports_do(
    rolled: tuple[Path, list[Report], list[Alert]], window: Window, grid: float
):
    root, reports, alerts = rolled
    plan = reading_of(LocalStorage(root), FORCE)
    assert plan.files["_reports_rolled"]
    assert not plan.files["_reports_once"]
    assert all(plan.files[kind] for kind in KINDS)
    words, coverage = _answers(root, window, Options(zone_degrees=grid))
    assert words == _expected_words(reports, alerts, window)
    assert coverage == _expected_coverage(reports, window, grid)
    assert coverage, "an empty window proves nothing"


def test_words_count_an_alert_raised_in_the_next_hour_but_not_three_hours_later(
    rolled: tuple[Path, list[Report], list[Alert]],
):
    root, reports, alerts = rolled
    window = WINDOWS[-1]
    late = alerts[-2:]
    by_id = {r.report_id: r for r in reports}
    words, _ = _answers(root, window, Options())
    counted, ignored = (by_id[a.report_id] for a in late)
    # The first late alert's report is with an alert, the second's is not.
    assert _alerting(counted, alerts)
    assert not _alerting(ignored, alerts)
    for word in counted.words:
        assert words[word][0] >= Counter(counted.words)[word]


def test_a_late_alert_makes_its_rollups_stale_until_they_are_made_again(tmp_path: Path):
    reports, alerts, _ = write_history(tmp_path)
    clock = Clock()
    first = _compactor(tmp_path, clock).run()
    assert sorted(first.rolled_up) == _hours(reports)
    window = WINDOWS[-1]
    assert _answers(tmp_path, window, Options())[0] == _expected_words(reports, alerts, window)

    # An alert naming a quiet report, written after its hour was rolled up.
    [late, _] = _late_alerts(reports, alerts)
    _write_alerts(tmp_path, [late])
    alerts.append(late)
    hour = _hour(late.raised_at).replace(tzinfo=None)
    plan = reading_of(LocalStorage(tmp_path), FORCE)
    rolled_hours = {p.split("/")[-3:-1][1] for p in plan.files["_reports_rolled"]}
    assert f"hour={(hour - timedelta(hours=1)):%H}" not in rolled_hours  # read from reports now
    expected = _expected_words(reports, alerts, window)
    assert _answers(tmp_path, window, Options())[0] == expected

    # The hour's alerts are compacted again once their last compaction's journal is gone
    # (two lingers), and the three hours whose key changed are rolled up again.
    clock.ahead += LINGER.total_seconds()
    assert _compactor(tmp_path, clock).run().rolled_up == ()
    clock.ahead += LINGER.total_seconds()
    again = _compactor(tmp_path, clock)
    remade = again.run()
    assert set(remade.rolled_up) == {hour - timedelta(hours=n) for n in (-1, 0, 1)}
    assert _answers(tmp_path, window, Options())[0] == expected
    # The stale rollups go a linger after this compactor found them stale.
    stale = _rollup_files(tmp_path)
    hours = len(_hours(reports))
    assert len(stale) == 2 * hours + 2 * 3  # the three stale hours' rollups are still there
    clock.ahead += LINGER.total_seconds()
    again.run()
    assert len(_rollup_files(tmp_path)) == 2 * hours
    assert _answers(tmp_path, window, Options())[0] == expected


def _rollup_files(root: Path) -> list[Path]:
    return [p for kind in KINDS for p in (root / rollup_dir(FORCE, kind)).rglob("*.parquet")]


def test_an_hour_with_one_rollup_of_two_is_read_from_its_reports_and_rolled_up_again(
    tmp_path: Path,
):
    """A crash between the two rollups' publications leaves one: it is not taken."""
    reports, alerts, _ = write_history(tmp_path)
    clock = Clock()
    _compactor(tmp_path, clock).run()
    [one, *_] = sorted((tmp_path / rollup_dir(FORCE, "word_counts")).rglob("*.parquet"))
    one.unlink()
    plan = reading_of(LocalStorage(tmp_path), FORCE)
    assert len(plan.files["_reports_once"]) == 1
    window = WINDOWS[-1]
    expected = _expected_words(reports, alerts, window)
    assert _answers(tmp_path, window, Options())[0] == expected
    assert len(_compactor(tmp_path, clock).run().rolled_up) == 1
    assert not reading_of(LocalStorage(tmp_path), FORCE).files["_reports_once"]
    assert _answers(tmp_path, window, Options())[0] == expected


def test_rollups_go_with_their_hours_past_the_retention(tmp_path: Path):
    reports, _, _ = write_history(tmp_path)
    _compactor(tmp_path, Clock()).run()
    assert _rollup_files(tmp_path)
    age = datetime.now(UTC) - START
    _compactor(tmp_path, Clock(), retention=age - timedelta(hours=2)).run()
    left = {p.parent.name for p in _rollup_files(tmp_path)}
    assert left  # the newest hours stayed
    assert len(left) < len(_hours(reports))  # the oldest went
    _compactor(tmp_path, Clock(), retention=timedelta(hours=1)).run()
    assert _rollup_files(tmp_path) == []


def test_a_lake_without_rollups_answers_the_same(
    rolled: tuple[Path, list[Report], list[Alert]], tmp_path: Path
):
    root, _, _ = rolled
    plain = tmp_path / "plain"
    shutil.copytree(root, plain)
    shutil.rmtree(plain / FORCE / "_rollups")
    for window in WINDOWS:
        assert _answers(plain, window, Options()) == _answers(root, window, Options())


def test_a_run_reports_what_it_rolled_up(tmp_path: Path):
    reports, _, _ = write_history(tmp_path)
    done: Maintenance = _compactor(tmp_path, Clock()).run()
    assert done.rollups_failed == ()
    assert sorted(done.rolled_up) == _hours(reports)
    # Made once: the next run finds them holding.
    assert _compactor(tmp_path, Clock()).run().rolled_up == ()


def test_rollups_of_another_format_are_never_read_and_are_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    reports, alerts, _ = write_history(tmp_path)
    clock = Clock()
    _compactor(tmp_path, clock).run()
    monkeypatch.setattr(rollups, "ROLLUP_FORMAT", rollups.ROLLUP_FORMAT + 1)  # an upgrade
    plan = reading_of(LocalStorage(tmp_path), FORCE)
    assert plan.files["_reports_rolled"] == []
    assert all(plan.files[kind] == [] for kind in KINDS)
    window = WINDOWS[0]
    words, coverage = _answers(tmp_path, window, Options())
    assert words == _expected_words(reports, alerts, window)
    assert coverage == _expected_coverage(reports, window, 0.01)
    assert sorted(_compactor(tmp_path, clock).run().rolled_up) == _hours(reports)
    assert _answers(tmp_path, window, Options()) == (words, coverage)


def test_rollups_made_another_way_are_never_read_even_without_a_new_format_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """What a rollup is made of (its SQL, grid, columns, what "with an alert" means) is part
    of its key: a change forgotten in ``ROLLUP_FORMAT`` still makes old rollups stale."""
    write_history(tmp_path)
    _compactor(tmp_path, Clock()).run()
    assert reading_of(LocalStorage(tmp_path), FORCE).files["_reports_rolled"]
    changed = dict(rollups._ROLLUPS) | {"word_counts": "SELECT 1"}
    monkeypatch.setattr(rollups, "_ROLLUPS", changed)
    assert reading_of(LocalStorage(tmp_path), FORCE).files["_reports_rolled"] == []


def test_an_alert_event_without_a_report_id_changes_no_answer(tmp_path: Path):
    """(The writer never writes one, the schema allows it.) In SQL, ``x IN (… NULL …)`` is
    NULL, not false: such a report would be neither with an alert nor without."""
    root = tmp_path / "rolled"
    reports, alerts, _ = write_history(root)
    row = alert_rows(alerts[0])["alerts"][0] | {"report_id": None}
    writer = LakeWriter(LocalStorage(root), FORCE)
    writer.resume("alerts", 2)
    writer.write("alerts", 2, 0, {"alerts": [row]})
    assert _compactor(root, Clock()).run().rolled_up
    plain = tmp_path / "plain"
    shutil.copytree(root, plain)
    shutil.rmtree(plain / FORCE / "_rollups")
    for window in WINDOWS:
        assert _answers(root, window, Options()) == _answers(plain, window, Options())
    assert _answers(root, WINDOWS[-1], Options())[0] == _expected_words(
        reports, alerts, WINDOWS[-1]
    )


def test_what_a_killed_run_left_of_a_rollup_is_removed_by_the_next(tmp_path: Path):
    """A temporary is hidden from every listing: neither the retention nor a stale rollup's
    deletion would ever see it."""
    write_history(tmp_path)
    clock = Clock()
    _compactor(tmp_path, clock).run()
    [one, *_] = _rollup_files(tmp_path)
    leftover = one.with_name(f".{one.name}.0123456789abcdef.tmp")
    leftover.write_bytes(b"half a rollup")
    _compactor(tmp_path, clock).run()
    assert not leftover.exists()
    assert one.exists()
