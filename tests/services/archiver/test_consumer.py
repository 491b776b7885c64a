"""The archiving consumer end to end, on the real Kafka and Cassandra."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from functools import partial
from typing import Any

import pytest
from cassandra.cluster import Session
from confluent_kafka import Message
from confluent_kafka.admin import AdminClient
from prometheus_client import REGISTRY

from peaceland.services.archiver.consumer import Archiver
from peaceland.services.archiver.settings import ArchiverSettings
from peaceland.services.archiver.store import ReportStore
from peaceland.services.kafka import REASON_HEADER, SOURCE_HEADER
from peaceland.stack import Endpoints
from peaceland.tenants.forces import ForceResources
from peaceland.tenants.kafka import KafkaAccess
from peaceland.tenants.provisioning.topics import TopicSettings, ensure_topics
from peaceland.tenants.reports import Citizen, Report, encode_report, utc_now
from tests.factories import make_report
from tests.kafka_helpers import committed_total, produce, read_all, wait_until

MALFORMED: dict[bytes, str] = {
    b"{not json": "(report): not valid JSON",
    json.dumps({"version": 1}).encode(): "report_id: Field required",
    b'{"version": 2}': "version: unsupported version",
}


def _settings(force: ForceResources, endpoints: Endpoints) -> ArchiverSettings:
    return ArchiverSettings(
        force_id=force.force_id,
        **endpoints.settings(),
    )


@contextmanager
def running(archiver: Archiver) -> Iterator[threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=archiver.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the archiver did not stop within 30s of being asked"


def value_of(message: Message) -> bytes:
    value = message.value()
    assert isinstance(value, bytes)
    return value


def header(message: Message, name: str) -> str:
    headers = message.headers()
    assert isinstance(headers, list), headers
    values = [value for key, value in headers if key == name]
    assert len(values) == 1, headers
    assert isinstance(values[0], bytes), headers
    return values[0].decode()


def all_committed(bootstrap: KafkaAccess, group: str, topic: str, total: int) -> bool:
    return committed_total(bootstrap, group, topic) == total


def stored_rows(cassandra: Session, keyspace: str) -> list[Any]:
    return list(
        cassandra.execute(
            f"SELECT drone_id, day, reported_at, report_id, latitude, longitude, citizen_names, "
            f"citizen_scores, words FROM {keyspace}.reports_by_drone_day"
        )
    )


def assert_stored_exactly_once(rows: list[Any], reports: list[Report]) -> None:
    counts = Counter(row.report_id for row in rows)
    expected = {r.report_id for r in reports}
    missing = expected - counts.keys()
    doubled = {rid for rid, n in counts.items() if n > 1}
    unexpected = counts.keys() - expected
    assert not missing, f"{len(missing)} reports missing, e.g. {sorted(missing)[:3]}"
    assert not doubled, f"{len(doubled)} reports stored twice, e.g. {sorted(doubled)[:3]}"
    assert not unexpected, f"{len(unexpected)} rows that no one sent"
    assert len(rows) == len(reports)


def test_ten_thousand_reports_are_stored_exactly_once_and_malformed_ones_dead_lettered(
    force: ForceResources, endpoints: Endpoints, cassandra: Session
):
    rng = random.Random(2026)
    now = utc_now()
    reports = [make_report(rng, at=now) for _ in range(10_000)]
    bootstrap = endpoints.kafka
    records = [(r.drone_id.encode(), encode_report(r)) for r in reports]
    records[5_000:5_000] = [(b"broken", value) for value in MALFORMED]
    assert produce(bootstrap, force.reports_topic, records) == len(records)

    settings = _settings(force, endpoints)
    archiver = Archiver(settings, ReportStore(cassandra, force.keyspace))
    with running(archiver):
        wait_until(
            lambda: (
                committed_total(bootstrap, settings.consumer_group, force.reports_topic)
                == len(records)
            ),
            timeout=180,
            what="the archiver to commit every record",
        )

    rows = stored_rows(cassandra, force.keyspace)
    assert_stored_exactly_once(rows, reports)
    by_id = {r.report_id: r for r in reports}
    for row in rows:
        sent = by_id[row.report_id]
        assert row.drone_id == sent.drone_id
        assert row.reported_at.replace(tzinfo=UTC) == sent.timestamp.replace(
            microsecond=sent.timestamp.microsecond // 1000 * 1000
        )
        assert row.day == sent.timestamp.astimezone(UTC).date()
        assert (row.latitude, row.longitude) == (sent.latitude, sent.longitude)
        assert list(row.citizen_names or []) == [c.name for c in sent.citizens]
        assert list(row.citizen_scores or []) == [c.score for c in sent.citizens]
        assert list(row.words or []) == sent.words

    dead = read_all(bootstrap, force.dead_letter_topic)
    assert sorted(value_of(m) for m in dead) == sorted(MALFORMED)
    for message in dead:
        assert MALFORMED[value_of(message)] in header(message, REASON_HEADER)
        assert header(message, SOURCE_HEADER).startswith(force.reports_topic + "/")
    assert archiver.counters.stored == len(reports)
    assert archiver.counters.rejected == len(MALFORMED)


def test_replaying_the_whole_topic_rewrites_the_same_rows(
    force: ForceResources, endpoints: Endpoints, cassandra: Session
):
    rng = random.Random(11)
    reports = [make_report(rng) for _ in range(2_000)]
    bootstrap = endpoints.kafka
    produce(
        bootstrap, force.reports_topic, [(r.drone_id.encode(), encode_report(r)) for r in reports]
    )
    # Two consumer groups read everything: the second is a full redelivery of the first.
    for group in ("first", "replay"):
        settings = _settings(force, endpoints).model_copy(update={"group_id": group})
        with running(Archiver(settings, ReportStore(cassandra, force.keyspace))):
            wait_until(
                partial(all_committed, bootstrap, group, force.reports_topic, len(reports)),
                timeout=120,
                what=f"group {group} to commit",
            )
    assert_stored_exactly_once(stored_rows(cassandra, force.keyspace), reports)


def test_a_tombstone_is_dead_lettered_and_the_consumer_goes_on(
    force: ForceResources, endpoints: Endpoints, cassandra: Session
):
    good = make_report(random.Random(3))
    bootstrap = endpoints.kafka
    produce(bootstrap, force.reports_topic, [(b"k", None), (b"k", encode_report(good))])
    settings = _settings(force, endpoints)
    with running(Archiver(settings, ReportStore(cassandra, force.keyspace))):
        wait_until(
            lambda: committed_total(bootstrap, settings.consumer_group, force.reports_topic) == 2,
            timeout=60,
            what="both records to be committed",
        )
    assert_stored_exactly_once(stored_rows(cassandra, force.keyspace), [good])
    [dead] = read_all(bootstrap, force.dead_letter_topic)
    assert "tombstone" in header(dead, REASON_HEADER)


@pytest.mark.parametrize("force_id", ["Bad_Force", ""])
def test_the_archiver_refuses_to_start_for_an_invalid_force(force_id: str):
    with pytest.raises(ValueError, match="force_id"):
        ArchiverSettings(
            force_id=force_id,
            kafka_bootstrap_servers="127.0.0.1:1",
            cassandra_contact_points="127.0.0.1:1",
        )


def test_while_kafka_refuses_dead_letters_the_archiver_waits_then_delivers_and_commits(
    force: ForceResources,
    endpoints: Endpoints,
    cassandra: Session,
    kafka_admin: AdminClient,
):
    bootstrap = endpoints.kafka
    kafka_admin.delete_topics([force.dead_letter_topic])[force.dead_letter_topic].result()
    wait_until(
        lambda: force.dead_letter_topic not in kafka_admin.list_topics(timeout=10).topics,
        timeout=30,
        what="the dead-letter topic to be gone",
    )
    good = make_report(random.Random(4))
    produce(bootstrap, force.reports_topic, [(b"k", b"{not json"), (b"k", encode_report(good))])
    settings = _settings(force, endpoints).model_copy(update={"dead_letter_timeout": 1.0})
    archiver = Archiver(settings, ReportStore(cassandra, force.keyspace))
    with running(archiver) as thread:
        wait_until(lambda: archiver.retries >= 2, 60, "failed dead-letter flushes")
        assert thread.is_alive()
        assert committed_total(bootstrap, settings.consumer_group, force.reports_topic) <= 0
        ensure_topics(kafka_admin, force, TopicSettings(partitions=3))
        wait_until(
            lambda: committed_total(bootstrap, settings.consumer_group, force.reports_topic) == 2,
            timeout=60,
            what="both records to be committed once the dead letter is delivered",
        )
    assert_stored_exactly_once(stored_rows(cassandra, force.keyspace), [good])
    dead = read_all(bootstrap, force.dead_letter_topic)
    assert dead, "the malformed record never reached the dead-letter topic"
    assert {value_of(d) for d in dead} == {b"{not json"}
    assert "not valid JSON" in header(dead[0], REASON_HEADER)


def rejected_count(force: ForceResources, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "peaceland_records_rejected_total",
        {"force": force.force_id, "consumer": "archiver", "reason": reason},
    )
    return value or 0.0


def test_a_report_cassandra_refuses_for_good_is_dead_lettered_and_the_rest_goes_on(
    force: ForceResources, endpoints: Endpoints, cassandra: Session
):
    # A store told to pack a whole report into one batch: Cassandra refuses a batch over
    # several partitions beyond its batch_size_fail_threshold (50 KiB), every time.
    store = ReportStore(
        cassandra, force.keyspace, batch_max_bytes=1024 * 1024, batch_max_statements=1000
    )
    crowd = [Citizen(name=f"{i:03d}" + "x" * 197, score=50.0) for i in range(300)]
    big = make_report(random.Random(99)).model_copy(update={"citizens": crowd})
    after = [make_report(random.Random(seed)) for seed in range(20)]
    bootstrap = endpoints.kafka
    records = [(r.drone_id.encode(), encode_report(r)) for r in [big, *after]]
    produce(bootstrap, force.reports_topic, records)
    settings = _settings(force, endpoints)
    archiver = Archiver(settings, store)
    with running(archiver):
        wait_until(
            partial(all_committed, bootstrap, settings.consumer_group, force.reports_topic, 21),
            timeout=60,
            what="every record to be stored or dead-lettered, and committed",
        )
    assert_stored_exactly_once(stored_rows(cassandra, force.keyspace), after)
    [dead] = read_all(bootstrap, force.dead_letter_topic)
    assert value_of(dead) == encode_report(big)
    assert "Cassandra refused to store it" in header(dead, REASON_HEADER)
    assert "Batch too large" in header(dead, REASON_HEADER)
    assert rejected_count(force, "refused") == 1
    assert archiver.retries == 0, "a refusal no retry can change must not be retried"


def test_a_second_content_under_a_stored_report_id_is_dead_lettered_and_the_first_kept(
    force: ForceResources, endpoints: Endpoints, cassandra: Session
):
    first = make_report(random.Random(7), citizens=3)
    # Same id, same drone and time (the same row), other citizens and position.
    other = first.model_copy(
        update={
            "latitude": first.latitude + 0.01,
            "citizens": [Citizen(name="Mallory Faux", score=1.0)],
            "words": ["autre"],
        }
    )
    bootstrap = endpoints.kafka
    # The conflicting copy in the same batch as the first, then in a later batch; the
    # first resent byte for byte, which stays a no-op.
    produce(bootstrap, force.reports_topic, [(b"d", encode_report(r)) for r in (first, other)])
    settings = _settings(force, endpoints)
    with running(Archiver(settings, ReportStore(cassandra, force.keyspace))):
        wait_until(
            partial(all_committed, bootstrap, settings.consumer_group, force.reports_topic, 2),
            timeout=60,
            what="the first two copies",
        )
        produce(bootstrap, force.reports_topic, [(b"d", encode_report(r)) for r in (other, first)])
        wait_until(
            partial(all_committed, bootstrap, settings.consumer_group, force.reports_topic, 4),
            timeout=60,
            what="the last two copies",
        )
    rows = stored_rows(cassandra, force.keyspace)
    assert_stored_exactly_once(rows, [first])
    [row] = rows
    assert row.latitude == first.latitude
    assert list(row.citizen_names) == [c.name for c in first.citizens]
    assert list(row.words) == first.words
    sighted = {
        r.citizen
        for r in cassandra.execute(f"SELECT citizen FROM {force.keyspace}.sightings_by_citizen")
    }
    assert sighted == {c.name for c in first.citizens}
    dead = read_all(bootstrap, force.dead_letter_topic)
    assert [value_of(d) for d in dead] == [encode_report(other)] * 2
    for letter in dead:
        assert "first accepted with other content" in header(letter, REASON_HEADER)
    assert rejected_count(force, "conflict") == 2
