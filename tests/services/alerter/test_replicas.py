"""Several alerter replicas of one force at once, on the real Kafka and Cassandra.

Replicas read different partitions of the reports topic; a citizen seen by two drones lands
in two partitions, so two replicas decide about one alert, and each commits its own Kafka
transactions. These tests read the alerts topic in the order a reader gets it, never
sorted, and hold it to the readers' contract (``AlertView``).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from cassandra.cluster import Session
from confluent_kafka import Consumer, Message

from peaceland.services.alerter.book import AlertBook
from peaceland.services.alerter.consumer import Alerter
from peaceland.services.kafka import consumer_config
from peaceland.services.stream import Retry
from peaceland.stack import Endpoints
from peaceland.tenants.alerts import Alert, AlertView, decode_alert, fold
from peaceland.tenants.cassandra import to_millisecond
from peaceland.tenants.forces import ForceResources
from peaceland.tenants.kafka import KafkaAccess
from peaceland.tenants.reports import Citizen, Report, utc_now
from tests.factories import make_report
from tests.kafka_helpers import committed_total, read_all, wait_until
from tests.services.alerter.test_consumer import send, settings_for

WEEK = 7 * 86_400


class HeldAlerter(Alerter):
    """An alerter whose transactions that raise an alert wait at ``gate`` before they
    commit: a replica that is slow (a pause, a busy core) between deciding and committing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gate = threading.Event()
        self.holding = threading.Event()

    def _commit_offsets(self, alerts: list[tuple[Alert, Message]], offsets: object) -> None:
        if any(alert.event == "raised" for alert, _ in alerts):
            self.holding.set()
            assert self.gate.wait(60), "the test never opened the gate"
        super()._commit_offsets(alerts, offsets)  # type: ignore[arg-type]


@contextmanager
def running(*alerters: Alerter) -> Iterator[threading.Event]:
    stop = threading.Event()
    threads = [threading.Thread(target=a.run, args=(stop,), daemon=True) for a in alerters]
    for thread in threads:
        thread.start()
    try:
        yield stop
    finally:
        stop.set()
        for alerter in alerters:
            if isinstance(alerter, HeldAlerter):
                alerter.gate.set()
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive()


def alert_events(bootstrap: KafkaAccess, force: ForceResources) -> list[Alert]:
    """The alerts topic as a read_committed reader gets it: partition by partition, each in
    its own order (events of one alert share a partition: they are keyed by citizen)."""
    return [decode_alert(m.value() or b"") for m in read_all(bootstrap, force.alerts_topic)]


def seen_by(seed: int, citizen: Citizen, minutes_ago: float, drone: int) -> Report:
    report = make_report(random.Random(seed), citizens=0, drone=drone)
    return report.model_copy(
        update={"citizens": [citizen], "timestamp": utc_now() - timedelta(minutes=minutes_ago)}
    )


def test_an_update_committed_before_its_raise_still_gives_readers_the_right_alert(
    force: ForceResources, endpoints: Endpoints, cassandra: Session
):
    bootstrap = endpoints.kafka
    settings = settings_for(force, endpoints, dedup_window_seconds=WEEK, replicas=2)
    slow = HeldAlerter(settings, AlertBook(cassandra, force.keyspace, force.force_id))
    quick = Alerter(settings, AlertBook(cassandra, force.keyspace, force.force_id))
    eve = Citizen(name="Eve Mallory", score=3.0)
    with running(slow, quick):
        wait_until(
            lambda: bool(slow.owned()) and bool(quick.owned()),
            timeout=60,
            what="both replicas to own partitions",
        )
        mine = {p for _, p in slow.owned()}
        theirs = {p for _, p in quick.owned()}
        first = seen_by(1, eve, minutes_ago=5, drone=1)
        again = seen_by(2, eve, minutes_ago=1, drone=2)
        send(bootstrap, force.reports_topic, [(first, min(mine))])
        assert slow.holding.wait(30), "the slow replica never decided its raise"
        send(bootstrap, force.reports_topic, [(again, min(theirs))])
        wait_until(
            lambda: len(alert_events(bootstrap, force)) == 1,
            timeout=30,
            what="the quick replica's update to be committed",
        )
        slow.gate.set()
        wait_until(
            lambda: committed_total(bootstrap, settings.consumer_group, force.reports_topic) == 2,
            timeout=30,
            what="both reports to be committed",
        )
    events = alert_events(bootstrap, force)
    assert [e.event for e in events] == ["updated", "raised"]  # committed in that order
    views: dict[uuid.UUID, AlertView] = {}
    for event in events:
        fold(views, event)
    [view] = views.values()
    assert view.raised is not None
    assert view.raised.report_id == first.report_id
    assert view.latest.report_id == again.report_id
    assert view.sightings == 2
    # Every event of the alert says when it opened, the same way (to the millisecond).
    assert {e.opened_at for e in events} == {to_millisecond(first.timestamp)}


def test_rebalances_mid_run_never_raise_an_alert_twice(
    force: ForceResources, endpoints: Endpoints, cassandra: Session
):
    bootstrap = endpoints.kafka
    # Three slots: two replicas, and a third that comes and goes.
    settings = settings_for(force, endpoints, dedup_window_seconds=WEEK, replicas=3)
    rng = random.Random(5)
    citizens = [f"Citizen {i:03d}" for i in range(150)]
    reports = []
    for i in range(3_000):
        seen = rng.sample(citizens, rng.randint(1, 3))
        report = make_report(rng, citizens=0, drone=rng.randint(0, 59))
        reports.append(
            report.model_copy(
                update={
                    "citizens": [
                        Citizen(name=name, score=rng.choice([2.0, 15.0, 60.0, 90.0]))
                        for name in seen
                    ],
                    "timestamp": utc_now() - timedelta(seconds=3_000 - i),
                }
            )
        )

    def book() -> AlertBook:
        return AlertBook(cassandra, force.keyspace, force.force_id)

    def feed() -> None:
        for i in range(0, len(reports), 100):
            send(bootstrap, force.reports_topic, [(r, None) for r in reports[i : i + 100]])
            time.sleep(0.25)

    replicas = [Alerter(settings, book()), Alerter(settings, book())]
    with running(*replicas):
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        # A third replica joins and leaves, again and again: every join and every leave
        # moves partitions between replicas while they decide their batches.
        for _ in range(3):
            churn = settings.model_copy(update={"instance": "churn"})
            with running(Alerter(churn, book())):
                time.sleep(2)
            time.sleep(1)
        feeder.join(120)
        wait_until(
            lambda: (
                committed_total(bootstrap, settings.consumer_group, force.reports_topic)
                == len(reports)
            ),
            timeout=180,
            what="every report to be committed",
        )
    events = alert_events(bootstrap, force)
    raised = Counter(e.citizen for e in events if e.event == "raised")
    low = {(r.report_id, c.name) for r in reports for c in r.sightings() if c.score < 20.0}
    per_sighting = Counter((e.report_id, e.citizen) for e in events)
    assert raised, "no alert raised at all"
    assert max(raised.values()) == 1, {c: n for c, n in raised.items() if n > 1}
    assert set(raised) == {name for _, name in low}
    assert set(per_sighting) == low
    assert max(per_sighting.values()) == 1, {k: n for k, n in per_sighting.items() if n > 1}


class FailingAlerter(Alerter):
    """An alerter whose transactions fail (as while a broker is away) until ``gate`` opens:
    it keeps the batch it decided, retrying, its partitions paused. Its fetches wait for
    a few records (up to 3 s), so that its first batch holds reports of several partitions."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gate = threading.Event()
        self.failed = threading.Event()
        self.consumer.close()
        self.consumer = Consumer(
            {
                **consumer_config(self.settings.kafka_access(), self.settings.consumer_group),
                "isolation.level": "read_committed",
                "fetch.min.bytes": 1_000,
                "fetch.wait.max.ms": 3_000,
            }
        )

    def _commit_offsets(self, alerts: list[tuple[Alert, Message]], offsets: object) -> None:
        if alerts and not self.gate.is_set():
            self.held = len(alerts)
            self.failed.set()
            raise Retry("the test holds this replica's transactions")
        super()._commit_offsets(alerts, offsets)  # type: ignore[arg-type]


def test_a_partition_lost_and_given_back_during_a_retry_raises_nothing_twice(
    force: ForceResources, endpoints: Endpoints, cassandra: Session
):
    # A decides a batch, fails to commit it and retries. Meanwhile B joins, takes some of
    # A's partitions, raises their alerts, and leaves: the partitions come back to A. A's
    # batch still holds those records; acting on them now would raise their alerts again.
    bootstrap = endpoints.kafka
    settings = settings_for(force, endpoints, dedup_window_seconds=WEEK, replicas=2)
    retrying = FailingAlerter(settings, AlertBook(cassandra, force.keyspace, force.force_id))
    citizens = [Citizen(name=f"Lost {p}", score=2.0) for p in range(3)]
    with running(retrying):
        wait_until(lambda: len(retrying.owned()) == 3, 60, "A to own every partition")
        # Reports on partitions 0 and 1, in one batch of A's: a second member takes partition
        # 0 from the first (librdkafka's cooperative-sticky assignor does, of three).
        send(
            bootstrap,
            force.reports_topic,
            [(seen_by(p, citizens[p], 1, drone=p), p) for p in (0, 1)],
        )
        assert retrying.failed.wait(30), "A never decided its batch"
        assert retrying.held == 2, f"A's batch held {retrying.held} reports, not both"
        helper = Alerter(
            settings.model_copy(update={"instance": "b"}),
            AlertBook(cassandra, force.keyspace, force.force_id),
        )
        with running(helper):
            wait_until(lambda: bool(helper.owned()), 60, "B to take partitions from A")
            assert (force.reports_topic, 0) in helper.owned(), helper.owned()
            wait_until(
                lambda: len(alert_events(bootstrap, force)) == 1,
                60,
                "B to raise the alert of the partition it took",
            )
        wait_until(lambda: len(retrying.owned()) == 3, 60, "the partitions to come back to A")
        retrying.gate.set()
        # A goes on with new reports: its transactions (with anything it would raise again)
        # commit, and the new alerts show it did.
        send(bootstrap, force.reports_topic, [(seen_by(2, citizens[2], 1, drone=2), 2)])
        wait_until(
            lambda: committed_total(bootstrap, settings.consumer_group, force.reports_topic) == 3,
            60,
            "every report to be committed",
        )
    raised = Counter(e.citizen for e in alert_events(bootstrap, force) if e.event == "raised")
    assert raised == {c.name: 1 for c in citizens}
