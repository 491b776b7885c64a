"""The predefined statistics on DuckDB, over a lake written by the real writer, checked
against the same figures computed in plain Python from the records themselves."""

from __future__ import annotations

import math
import random
import statistics
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyarrow.fs import LocalFileSystem

from peaceland.analytics.lake import (
    ArrowStorage,
    LakeWriter,
    LocalStorage,
    Storage,
    alert_rows,
    open_storage,
    report_rows,
    rows_of_reports,
    transition_rows,
)
from peaceland.analytics.stats import STATISTICS, ForceLake, Options, UnknownStatisticError, Window
from peaceland.tenants.alerts import Alert
from peaceland.tenants.lifecycle import Transition
from peaceland.tenants.reports import Report
from tests.factories import make_alert, make_report

FORCE = "stats-force"
START = datetime(2026, 11, 29, 22, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(hours=4))


def _history(rng: random.Random) -> tuple[list[Report], list[Alert], list[Transition]]:
    # Reports over six hours around the window (it crosses midnight: two date partitions).
    reports = [
        make_report(rng, at=START - timedelta(hours=1) + timedelta(minutes=3 * i))
        for i in range(120)
    ]
    alerts, transitions = [], []
    for report in reports:
        # One alert per citizen and report, as the alerter raises them.
        for citizen in {c.name: c for c in report.citizens}.values():
            if citizen.score < 20:
                alert = make_alert(
                    FORCE,
                    citizen.name,
                    report.timestamp,
                    report_id=report.report_id,
                    drone_id=report.drone_id,
                    latitude=report.latitude,
                    longitude=report.longitude,
                    score=citizen.score,
                )
                alerts.append(alert)
                if rng.random() < 0.7:  # some alerts nobody acted on
                    acted = alert.raised_at + timedelta(seconds=rng.randint(5, 600))
                    transitions.append(_transition(alert, 1, "acknowledge", acted))
                    transitions.append(
                        _transition(alert, 2, "resolve", acted + timedelta(minutes=5))
                    )
    return reports, alerts, transitions


def _transition(alert: Alert, seq: int, action: str, at: datetime) -> Transition:
    return Transition.model_validate(
        {
            "force_id": FORCE,
            "alert_id": alert.alert_id,
            "seq": seq,
            "action": action,
            "state": "acknowledged" if action == "acknowledge" else "resolved",
            "actor": "officer@example.org",
            "at": at,
            "raised_at": alert.raised_at,
        }
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lake")


def write_history(
    root: Path | Storage, force_id: str = FORCE
) -> tuple[list[Report], list[Alert], list[Transition]]:
    """A few hours of a force's reports, alerts and transitions, written by the real writer
    (into a local lake at ``root``, or any storage)."""
    reports, alerts, transitions = _history(random.Random(5))
    writer = LakeWriter(LocalStorage(root) if isinstance(root, Path) else root, force_id)
    rows = rows_of_reports(reports)
    writer.resume("reports", 0)
    writer.write("reports", 0, len(reports) - 1, rows)
    # Two drones resent a report (a timeout, then the same report again): counted once.
    for offset, report in enumerate((reports[len(reports) // 2], reports[-1]), len(reports)):
        writer.write("reports", 0, offset, report_rows(report))
    writer.resume("alerts", 0)
    writer.write(
        "alerts", 0, len(alerts), {"alerts": [r for a in alerts for r in alert_rows(a)["alerts"]]}
    )
    writer.resume("lifecycle", 0)
    # A transition written twice (a retried send) counts once.
    lifecycle = [r for t in [*transitions, transitions[0]] for r in transition_rows(t)["lifecycle"]]
    writer.write("lifecycle", 0, len(transitions), {"lifecycle": lifecycle})
    return reports, alerts, transitions


@pytest.fixture(scope="module")
def history(root: Path):
    reports, alerts, transitions = write_history(root)
    with ForceLake(LocalStorage(root), FORCE) as lake:
        yield lake, reports, alerts, transitions


def _in_window(moment: datetime) -> bool:
    return WINDOW.start <= moment < WINDOW.end


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)


def test_alerts_per_hour_counts_the_alerts_raised_in_each_hour_of_the_window(history):
    lake, _, alerts, _ = history
    expected = Counter(_hour(a.raised_at) for a in alerts if _in_window(a.raised_at))
    answer = lake.answer("alerts-per-hour", WINDOW)
    assert answer.columns == ("hour", "alerts")
    assert dict(answer.rows) == expected
    assert len(expected) >= 4  # the history does cross midnight inside the window


def test_alerts_per_zone_puts_each_alert_in_its_grid_cell(history):
    lake, _, alerts, _ = history
    g = 0.02
    expected = Counter(
        (round(math.floor(a.latitude / g) * g, 6), round(math.floor(a.longitude / g) * g, 6))
        for a in alerts
        if _in_window(a.raised_at)
    )
    answer = lake.answer("alerts-per-zone", WINDOW, Options(zone_degrees=g))
    assert {(lat, lon): n for lat, lon, n in answer.rows} == expected
    assert [row[2] for row in answer.rows] == sorted((row[2] for row in answer.rows), reverse=True)


def test_top_drones_and_citizens_rank_by_alerts_raised(history):
    lake, _, alerts, _ = history
    for name, key in (("top-drones", "drone_id"), ("top-citizens", "citizen")):
        counts = Counter(getattr(a, key) for a in alerts if _in_window(a.raised_at))
        expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        assert list(lake.answer(name, WINDOW, Options(top=3)).rows) == expected


def test_words_compare_reports_with_alerts_and_without(history):
    lake, reports, alerts, _ = history
    alerting = {a.report_id for a in alerts if _in_window(a.raised_at)}
    inside = [r for r in reports if _in_window(r.timestamp)]
    with_alerts = Counter(w for r in inside if r.report_id in alerting for w in r.words)
    without = Counter(w for r in inside if r.report_id not in alerting for w in r.words)
    answer = lake.answer("words", WINDOW, Options(top=100)).records()
    assert {row["word"]: row["heard_with_alerts"] for row in answer} == +with_alerts | {
        w: 0 for w in without if w not in with_alerts
    }
    assert {row["word"]: row["heard_without_alerts"] for row in answer} == +without | {
        w: 0 for w in with_alerts if w not in without
    }
    total_with = sum(1 for r in inside if r.report_id in alerting)
    total_without = len(inside) - total_with
    for row in answer:
        assert row["per_report_with_alerts"] == round(with_alerts[row["word"]] / total_with, 4)
        assert row["per_report_without_alerts"] == round(without[row["word"]] / total_without, 4)


def test_reaction_time_runs_from_raising_to_the_first_officers_act(history):
    lake, _, alerts, transitions = history
    first_act: dict[uuid.UUID, datetime] = {}
    for t in sorted(transitions, key=lambda t: t.at):
        first_act.setdefault(t.alert_id, t.at)
    raised = [a for a in alerts if _in_window(a.raised_at)]
    by_hour: dict[datetime, list[Alert]] = {}
    for alert in raised:
        by_hour.setdefault(_hour(alert.raised_at), []).append(alert)
    answer = {row["hour"]: row for row in lake.answer("reaction-by-hour", WINDOW).records()}
    assert set(answer) == set(by_hour)
    for hour, hour_alerts in by_hour.items():
        seconds = [
            (first_act[a.alert_id] - a.raised_at).total_seconds()
            for a in hour_alerts
            if a.alert_id in first_act
        ]
        row = answer[hour]
        assert row["alerts"] == len(hour_alerts)
        assert row["acted_on"] == len(seconds)
        if seconds:
            assert row["median_seconds"] == round(statistics.median(seconds), 1)
            assert row["max_seconds"] == max(seconds)
    by_zone = lake.answer("reaction-by-zone", WINDOW, Options(zone_degrees=1)).records()
    assert sum(row["alerts"] for row in by_zone) == len(raised)


def test_coverage_counts_reports_and_drone_hours_per_zone(history):
    lake, reports, _, _ = history
    inside = [r for r in reports if _in_window(r.timestamp)]
    answer = lake.answer("coverage", WINDOW, Options(zone_degrees=1)).records()
    assert sum(row["reports"] for row in answer) == len(inside)
    drone_hours = {(r.drone_id, _hour(r.timestamp)) for r in inside}
    assert sum(row["drone_hours"] for row in answer) == len(drone_hours)


def test_a_force_with_nothing_in_the_lake_gets_empty_answers(tmp_path: Path):
    with ForceLake(LocalStorage(tmp_path), "empty-force") as lake:
        for name in STATISTICS:
            assert lake.answer(name, WINDOW).rows == ()


def test_a_force_sees_only_its_own_files(history, root: Path):
    assert history[0].answer("coverage", WINDOW).rows  # the lake does hold a force's files
    with ForceLake(LocalStorage(root), "other-force") as lake:
        for name in STATISTICS:
            assert lake.answer(name, WINDOW).rows == ()


def test_a_lake_elsewhere_is_read_through_a_snapshot_and_says_so(tmp_path: Path):
    with pytest.raises(ValueError, match="may not hold '='"):
        open_storage(str(tmp_path / "date=2026-01-01" / "lake"))
    remote = ArrowStorage(LocalFileSystem(), str(tmp_path), "s3://bucket/lake")
    with pytest.raises(ValueError, match="read through a snapshot"):
        ForceLake(remote, FORCE)


def test_bad_questions_are_refused_with_the_reason():
    with pytest.raises(UnknownStatisticError, match="there are: alerts-per-hour"):
        ForceLake(LocalStorage(Path("/nonexistent")), "f").answer("alerts", WINDOW)
    with pytest.raises(ValueError, match="ends"):
        Window(START, START)
    with pytest.raises(ValueError, match="time zone"):
        Window(START.replace(tzinfo=None), START.replace(tzinfo=None) + timedelta(hours=1))
    with pytest.raises(ValueError, match="zone_degrees"):
        Options(zone_degrees=0)
