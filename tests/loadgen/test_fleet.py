"""The synthetic fleet and its ground truth, with no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from peaceland.loadgen.drivers import fleet_reports
from peaceland.loadgen.fleet import Fleet
from peaceland.loadgen.truth import GroundTruth
from peaceland.tenants.reports import decode_report, encode_report

START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_the_same_seed_flies_the_same_fleet():
    first = [encode_report(r) for r in Fleet(drones=5, seed=7).reports(START, 3)]
    second = [encode_report(r) for r in Fleet(drones=5, seed=7).reports(START, 3)]
    other = [encode_report(r) for r in Fleet(drones=5, seed=8).reports(START, 3)]
    assert first == second
    assert first != other


def test_every_drone_reports_once_a_minute_with_valid_reports():
    reports = list(Fleet(drones=4, seed=1).reports(START, 3))
    assert len(reports) == 12
    for minute in range(3):
        batch = reports[minute * 4 : (minute + 1) * 4]
        assert len({r.drone_id for r in batch}) == 4
    for report in reports:
        # What the fleet sends is what the contract accepts.
        assert decode_report(encode_report(report), received_at=report.timestamp) == report


def test_only_the_asked_share_of_reports_has_a_low_score_and_truth_knows_which():
    fleet = Fleet(drones=50, seed=3, low_score_share=0.1, threshold=20.0)
    truth = GroundTruth(threshold=fleet.threshold)
    reports = list(fleet.reports(START, 20))
    for report in reports:
        truth.record(report, encode_report(report))
    low = {(r.report_id, c.name) for r in reports for c in r.citizens if c.score < fleet.threshold}
    assert truth.low_sightings == low
    assert truth.sent == 1000
    share = len({report_id for report_id, _ in low}) / len(reports)
    assert 0.05 < share < 0.15
    assert truth.expected_alerts() == len({name for _, name in low})


def test_a_share_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="share"):
        Fleet(low_score_share=1.5)


def test_a_run_of_n_reports_yields_n_reports_ending_about_now():
    reports = list(fleet_reports(Fleet(drones=7, seed=2), 30))
    assert len(reports) == 30
    assert datetime.now(UTC) - reports[-1].timestamp < timedelta(minutes=2)
    assert reports[0].timestamp < reports[-1].timestamp
