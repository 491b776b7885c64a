"""The book of open alerts, on the real Cassandra: one alert per citizen per window."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

from cassandra.cluster import Session

from peaceland.services.alerter.book import AlertBook, Decision, Sighting
from peaceland.tenants.alerts import alert_id_for
from peaceland.tenants.forces import ForceResources
from peaceland.tenants.provisioning.topics import readable_for
from peaceland.tenants.reports import MAX_CLOCK_SKEW, MAX_REPORT_AGE, Citizen, Report
from tests.factories import make_report

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
EVE = Citizen(name="Eve Mallory", score=4.0)


def report_at(seconds: float, seed: int, drone: int = 1) -> Report:
    base = make_report(random.Random(seed), citizens=0, drone=drone)
    return base.model_copy(
        update={
            "timestamp": T0 + timedelta(seconds=seconds),
            "citizens": [EVE],
        }
    )


def sighting(report: Report, source: str) -> Sighting:
    return Sighting(report, EVE, source, datetime.now(UTC))


def test_the_first_sighting_raises_and_later_ones_in_the_window_update(
    force: ForceResources, cassandra: Session
):
    book = AlertBook(cassandra, force.keyspace, force.force_id)
    first, second = report_at(0, 1), report_at(120, 2)
    raised = book.decide(sighting(first, "0/1"), window_seconds=600)
    updated = book.decide(sighting(second, "1/7"), window_seconds=600)
    assert raised.event == "raised"
    assert raised.alert_id == alert_id_for(force.force_id, EVE.name, first.report_id)
    assert updated.event == "updated"
    assert updated.alert_id == raised.alert_id
    assert updated.opened_at == first.timestamp
    row = cassandra.execute(
        f"SELECT * FROM {force.keyspace}.alerts_by_day WHERE day = %s AND alert_id = %s",
        (first.timestamp.date(), raised.alert_id),
    ).one()
    assert (row.citizen, row.drone_id, row.state) == (EVE.name, first.drone_id, "open")
    assert row.last_seen_at.replace(tzinfo=UTC) == second.timestamp
    assert (row.last_latitude, row.last_longitude) == (second.latitude, second.longitude)


def test_a_sighting_after_the_window_raises_a_new_alert(force: ForceResources, cassandra: Session):
    book = AlertBook(cassandra, force.keyspace, force.force_id)
    first = book.decide(sighting(report_at(0, 1), "0/1"), window_seconds=600)
    later = book.decide(sighting(report_at(601, 2), "0/2"), window_seconds=600)
    assert later.event == "raised"
    assert later.alert_id != first.alert_id


def test_the_same_record_read_again_raises_the_same_alert_again(
    force: ForceResources, cassandra: Session
):
    # What a crash between the decision and the transaction's commit looks like.
    book = AlertBook(cassandra, force.keyspace, force.force_id)
    report = report_at(0, 1)
    assert book.decide(sighting(report, "0/1"), 600) == book.decide(sighting(report, "0/1"), 600)


def test_a_resent_report_in_another_record_only_updates(force: ForceResources, cassandra: Session):
    book = AlertBook(cassandra, force.keyspace, force.force_id)
    report = report_at(0, 1)
    first = book.decide(sighting(report, "0/1"), 600)
    again = book.decide(sighting(report, "2/9"), 600)
    assert (first.event, again.event) == ("raised", "updated")
    assert again.alert_id == first.alert_id


def test_a_replayed_record_whose_alert_was_succeeded_still_raises_it(
    force: ForceResources, cassandra: Session
):
    book = AlertBook(cassandra, force.keyspace, force.force_id)
    old = report_at(0, 1)
    first = book.decide(sighting(old, "0/1"), 60)
    book.decide(sighting(report_at(3_600, 2), "0/2"), 60)  # the window is long over
    assert book.decide(sighting(old, "0/1"), 60) == first


def test_a_late_report_older_than_the_open_alert_updates_it(
    force: ForceResources, cassandra: Session
):
    book = AlertBook(cassandra, force.keyspace, force.force_id)
    opened = book.decide(sighting(report_at(300, 1), "0/1"), 600)
    late = book.decide(sighting(report_at(100, 2), "1/1"), 600)
    assert late.event == "updated"
    assert late.alert_id == opened.alert_id


def race(book: AlertBook, reports: list[Report], round_: int) -> list[Decision]:
    """Every report decided at the same instant, each from its own thread (a replica)."""
    barrier = threading.Barrier(len(reports))
    decisions: list[Decision] = []

    def decide(report: Report, index: int) -> None:
        barrier.wait()
        decisions.append(book.decide(sighting(report, f"{index}/{round_}"), 600))

    threads = [threading.Thread(target=decide, args=(r, i)) for i, r in enumerate(reports)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return decisions


def test_replicas_seeing_a_citizen_at_once_agree_on_one_alert(
    force: ForceResources, cassandra: Session
):
    book = AlertBook(cassandra, force.keyspace, force.force_id)
    for round_ in range(10):
        reports = [report_at(round_ * 10_000, seed=round_ * 100 + i, drone=i) for i in range(4)]
        decisions = race(book, reports, round_)
        assert len(decisions) == 4
        assert [d.event for d in decisions].count("raised") == 1, decisions
        assert len({d.alert_id for d in decisions}) == 1, decisions


def test_the_dedup_state_outlives_every_sighting_that_can_still_arrive_in_its_window(
    force: ForceResources, cassandra: Session
):
    # A sighting inside an alert's window may reach the alerter long after the alert opened:
    # the drone kept it for up to MAX_REPORT_AGE (out of radio range, a clock within
    # MAX_CLOCK_SKEW), then Kafka kept it for as long as the topic's retention lets an
    # alerter that was down catch up. The alert's dedup state must still be there, or that
    # sighting raises a second alert inside one window.
    book = AlertBook(cassandra, force.keyspace, force.force_id)
    window, replay_hours = 600, 168
    report = report_at(0, 1)
    book.decide(sighting(report, "0/1"), window_seconds=window, replay_hours=replay_hours)
    row = cassandra.execute(
        f"SELECT TTL(alert_id) AS ttl FROM {force.keyspace}.open_alerts WHERE citizen = %s",
        (EVE.name,),
    ).one()
    latest_arrival = (
        timedelta(seconds=window)
        + MAX_REPORT_AGE
        + MAX_CLOCK_SKEW
        + readable_for(replay_hours * 3_600_000)
    )
    assert row.ttl >= latest_arrival.total_seconds()


def test_a_raised_alert_can_be_found_by_its_id_alone_for_its_lifecycle(
    force: ForceResources, cassandra: Session
):
    book = AlertBook(cassandra, force.keyspace, force.force_id)
    first = report_at(0, 1)
    raised = book.decide(sighting(first, "0/1"), window_seconds=600)
    book.decide(sighting(report_at(60, 2), "0/2"), window_seconds=600)  # an update: no row
    row = cassandra.execute(
        f"SELECT day, citizen, raised_at, state, last_seq FROM {force.keyspace}.alert_lifecycle "
        "WHERE alert_id = %s",
        (raised.alert_id,),
    ).one()
    assert (row.day.date(), row.citizen) == (first.timestamp.date(), EVE.name)
    assert row.raised_at is not None
    assert (row.state, row.last_seq) == (None, None)  # open, untouched
