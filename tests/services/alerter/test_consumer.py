"""The alerting consumer end to end: real Kafka transactions, real Cassandra."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from cassandra.cluster import Session
from confluent_kafka import Producer

from peaceland.services.alerter.book import AlertBook
from peaceland.services.alerter.consumer import Alerter, low_sightings
from peaceland.services.alerter.settings import AlerterSettings
from peaceland.services.force_settings import SettingsSource
from peaceland.stack import Endpoints
from peaceland.tenants.alerts import Alert, alert_id_for, decode_alert
from peaceland.tenants.cassandra import to_millisecond
from peaceland.tenants.forces import AlertingSettings, ForceResources, ForceSettings
from peaceland.tenants.kafka import KafkaAccess, producer_config
from peaceland.tenants.reports import Citizen, Report, encode_report, utc_now
from tests.factories import make_report
from tests.kafka_helpers import committed_total, read_all, wait_until


def settings_for(force: ForceResources, endpoints: Endpoints, **extra: object) -> AlerterSettings:
    return AlerterSettings(
        force_id=force.force_id,
        **endpoints.settings(),
        metrics_port=0,
        **extra,  # type: ignore[arg-type]
    )


@contextmanager
def alerting(*alerters: Alerter) -> Iterator[None]:
    stop = threading.Event()
    threads = [threading.Thread(target=a.run, args=(stop,), daemon=True) for a in alerters]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive()


def send(bootstrap: KafkaAccess, topic: str, reports: Sequence[tuple[Report, int | None]]) -> None:
    """Produce each report, to the given partition when one is named (else by key)."""
    producer = Producer(producer_config(bootstrap))
    for report, partition in reports:
        producer.produce(
            topic,
            key=report.drone_id.encode(),
            value=encode_report(report),
            partition=-1 if partition is None else partition,
        )
    assert producer.flush(30) == 0


def alerts_of(bootstrap: KafkaAccess, force: ForceResources) -> list[Alert]:
    return [decode_alert(m.value() or b"") for m in read_all(bootstrap, force.alerts_topic)]


def with_citizens(seed: int, *citizens: Citizen, drone: int = 1, minutes_ago: int = 1) -> Report:
    report = make_report(random.Random(seed), drone=drone, citizens=0)
    return report.model_copy(
        update={
            "citizens": list(citizens),
            "timestamp": utc_now() - timedelta(minutes=minutes_ago),
        }
    )


def wait_committed(
    bootstrap: KafkaAccess, settings: AlerterSettings, topic: str, total: int
) -> None:
    wait_until(
        lambda: committed_total(bootstrap, settings.consumer_group, topic) == total,
        timeout=60,
        what=f"the alerter to commit {total} reports",
    )


def test_a_low_score_raises_one_alert_with_the_drone_position_and_the_name(
    force: ForceResources, endpoints: Endpoints, cassandra: Session
):
    bootstrap = endpoints.kafka
    eve = Citizen(name="Eve Mallory", score=3.5)
    low = with_citizens(1, Citizen(name="Bob", score=80), eve)
    calm = [with_citizens(i, Citizen(name="Bob", score=80)) for i in range(2, 20)]
    send(bootstrap, force.reports_topic, [(r, None) for r in [*calm, low]])
    settings = settings_for(force, endpoints)
    alerter = Alerter(settings, AlertBook(cassandra, force.keyspace, force.force_id))
    with alerting(alerter):
        wait_committed(bootstrap, settings, force.reports_topic, 19)
    [alert] = alerts_of(bootstrap, force)
    assert alert.event == "raised"
    assert alert.citizen == "Eve Mallory"
    assert alert.score == 3.5
    assert (alert.drone_id, alert.latitude, alert.longitude) == (
        low.drone_id,
        low.latitude,
        low.longitude,
    )
    assert alert.report_id == low.report_id
    assert alert.alert_id == alert_id_for(force.force_id, "Eve Mallory", low.report_id)
    assert alert.reported_at == to_millisecond(low.timestamp)  # alert times: to the ms
    assert alert.raised_at >= alert.reported_at


def test_two_drones_in_different_partitions_seeing_a_citizen_at_once_raise_one_alert(
    force: ForceResources, endpoints: Endpoints, cassandra: Session
):
    bootstrap = endpoints.kafka
    eve = Citizen(name="Eve Mallory", score=2.0)
    reports = [(with_citizens(10 + p, eve, drone=p), p) for p in range(3)]  # one per partition
    send(bootstrap, force.reports_topic, reports)
    settings = settings_for(force, endpoints, replicas=3)
    # Three replicas of the alerter in one group: each partition has its own.
    replicas = [
        Alerter(
            settings.model_copy(update={"instance": f"replica-{i}"}),
            AlertBook(cassandra, force.keyspace, force.force_id),
        )
        for i in range(3)
    ]
    with alerting(*replicas):
        wait_committed(bootstrap, settings, force.reports_topic, 3)
    events = alerts_of(bootstrap, force)
    assert sorted(a.event for a in events) == ["raised", "updated", "updated"]
    assert len({a.alert_id for a in events}) == 1


def test_a_resent_report_raises_no_second_alert(
    force: ForceResources, endpoints: Endpoints, cassandra: Session
):
    bootstrap = endpoints.kafka
    report = with_citizens(5, Citizen(name="Eve Mallory", score=1.0))
    send(bootstrap, force.reports_topic, [(report, 0), (report, 0), (report, 1)])
    settings = settings_for(force, endpoints)
    with alerting(Alerter(settings, AlertBook(cassandra, force.keyspace, force.force_id))):
        wait_committed(bootstrap, settings, force.reports_topic, 3)
    assert sorted(a.event for a in alerts_of(bootstrap, force)) == ["raised", "updated", "updated"]


def test_a_threshold_change_applies_without_a_restart(
    force: ForceResources, endpoints: Endpoints, cassandra: Session, tmp_path: Path
):
    bootstrap = endpoints.kafka
    settings_file = tmp_path / "force.json"
    settings_file.write_text(ForceSettings(force_id=force.force_id).model_dump_json())
    settings = settings_for(force, endpoints, settings_file=settings_file)
    source = SettingsSource(settings.default_settings(), settings_file, check_every=0.1)
    alerter = Alerter(settings, AlertBook(cassandra, force.keyspace, force.force_id), source)
    with alerting(alerter):
        send(
            bootstrap,
            force.reports_topic,
            [(with_citizens(1, Citizen(name="Anna", score=30.0)), None)],
        )
        wait_committed(bootstrap, settings, force.reports_topic, 1)
        assert alerts_of(bootstrap, force) == []  # 30 is not below the default 20
        settings_file.write_text(
            json.dumps(
                {
                    "force_id": force.force_id,
                    "alerting": {"score_threshold": 35.0},
                }
            )
        )
        wait_until(
            lambda: source.current().alerting.score_threshold == 35.0,
            timeout=10,
            what="the new threshold to be read",
        )
        send(
            bootstrap,
            force.reports_topic,
            [(with_citizens(2, Citizen(name="Anna", score=30.0)), None)],
        )
        wait_committed(bootstrap, settings, force.reports_topic, 2)
    [alert] = alerts_of(bootstrap, force)
    assert (alert.event, alert.citizen) == ("raised", "Anna")


def test_a_malformed_record_is_skipped_and_alerts_go_on(
    force: ForceResources, endpoints: Endpoints, cassandra: Session
):
    bootstrap = endpoints.kafka
    producer = Producer(producer_config(bootstrap))
    producer.produce(force.reports_topic, value=b"{broken", partition=0)
    producer.produce(force.reports_topic, value=None, partition=0)
    assert producer.flush(10) == 0
    send(
        bootstrap,
        force.reports_topic,
        [(with_citizens(3, Citizen(name="Eve Mallory", score=1.0)), 0)],
    )
    settings = settings_for(force, endpoints)
    with alerting(Alerter(settings, AlertBook(cassandra, force.keyspace, force.force_id))):
        wait_committed(bootstrap, settings, force.reports_topic, 3)
    assert [a.citizen for a in alerts_of(bootstrap, force)] == ["Eve Mallory"]


def test_a_citizen_named_twice_in_one_report_is_one_sighting():
    report = with_citizens(
        1,
        Citizen(name="Eve", score=9.0),
        Citizen(name="Eve", score=4.0),
        Citizen(name="Bob", score=50.0),
    )
    assert low_sightings(report, 20.0) == [Citizen(name="Eve", score=4.0)]


def test_the_threshold_is_strict():
    report = with_citizens(1, Citizen(name="Eve", score=20.0))
    assert low_sightings(report, AlertingSettings().score_threshold) == []
