"""The smoke pipeline of ``peaceland demo``: a demo police force, end to end.

Brings the stack up, provisions the demo force (its topics and keyspace), runs its archiver,
flies a simulated fleet for a few minutes of reports through Kafka, and checks that every
report reached Cassandra; it says what it did at each step.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, timedelta

from cassandra.cluster import Session
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from peaceland.cli.errors import CommandError
from peaceland.cli.simulator import Fleet
from peaceland.cli.stack import Endpoints
from peaceland.services.archiver.consumer import Archiver
from peaceland.services.archiver.settings import ArchiverSettings
from peaceland.services.archiver.store import ReportStore
from peaceland.services.kafka import producer_config
from peaceland.tenants.cassandra import connect, shutdown_session
from peaceland.tenants.forces import resources_for
from peaceland.tenants.provisioning.keyspace import Replication, checked_keyspace, ensure_keyspace
from peaceland.tenants.provisioning.topics import TopicSettings, ensure_topics
from peaceland.tenants.reports import encode_report, utc_now

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class SmokeResult:
    sent: int
    stored: int
    rejected: int
    read_back: int
    seconds: float


def provision(endpoints: Endpoints, force_id: str, say: Say) -> None:
    """Create the force's topics and keyspace (idempotent: a second run changes nothing)."""
    resources = resources_for(force_id)
    admin = AdminClient({"bootstrap.servers": endpoints.kafka_bootstrap_servers})
    created = ensure_topics(admin, resources, TopicSettings(partitions=6))
    say(
        f"topics of {force_id}: {', '.join(resources.topics)}"
        + (" (created)" if created else " (already there)")
    )
    session = connect(endpoints.cassandra_contact_points)
    try:
        applied = ensure_keyspace(session, resources.keyspace, Replication())
    finally:
        shutdown_session(session)
    say(
        f"keyspace of {force_id}: {resources.keyspace}"
        + (f" (migrations {applied} applied)" if applied else " (schema up to date)")
    )


def run(
    endpoints: Endpoints,
    force_id: str,
    *,
    drones: int,
    minutes: int,
    say: Say,
    timeout: float = 120.0,
) -> SmokeResult:
    """Fly ``drones`` for ``minutes`` simulated minutes through Kafka into Cassandra."""
    resources = resources_for(force_id)
    settings = ArchiverSettings(
        force_id=force_id,
        kafka_bootstrap_servers=endpoints.kafka_bootstrap_servers,
        cassandra_contact_points=endpoints.cassandra_contact_points,
    )
    session = connect(endpoints.cassandra_contact_points)
    stop = threading.Event()
    archiver = Archiver(settings, ReportStore(session, resources.keyspace))
    thread = threading.Thread(target=archiver.run, args=(stop,), name="archiver", daemon=True)
    thread.start()
    say(f"archiver running for {force_id} (consumer group {settings.consumer_group})")
    try:
        began = time.monotonic()
        fleet = Fleet(drones=drones, seed=int(began))
        producer = Producer(producer_config(endpoints.kafka_bootstrap_servers, linger_ms=5))
        start = utc_now() - timedelta(minutes=minutes)
        sent_ids: dict[tuple[str, date], set[uuid.UUID]] = defaultdict(set)
        sent = 0
        for report in fleet.reports(start, minutes):
            producer.produce(
                resources.reports_topic, key=report.drone_id.encode(), value=encode_report(report)
            )
            producer.poll(0)
            sent_ids[report.drone_id, report.timestamp.astimezone(UTC).date()].add(report.report_id)
            sent += 1
        if producer.flush(30) != 0:
            raise CommandError("Kafka did not acknowledge every report within 30s")
        say(
            f"{drones} simulated drones sent {sent} reports ({minutes} minutes of flight) "
            f"to {resources.reports_topic}, acknowledged by Kafka"
        )
        deadline = time.monotonic() + timeout
        while archiver.counters.stored + archiver.counters.rejected < sent:
            if time.monotonic() > deadline or not thread.is_alive():
                raise CommandError(
                    f"the archiver stored {archiver.counters.stored} of {sent} reports "
                    f"within {timeout:.0f}s"
                )
            time.sleep(0.1)
        seconds = time.monotonic() - began
        read_back = _read_back(session, resources.keyspace, sent_ids)
    finally:
        stop.set()
        thread.join(30)
        shutdown_session(session)
    say(f"read back {read_back} of {sent} reports by drone, day and report id")
    return SmokeResult(
        sent, archiver.counters.stored, archiver.counters.rejected, read_back, seconds
    )


def _read_back(
    session: Session, keyspace: str, sent: dict[tuple[str, date], set[uuid.UUID]]
) -> int:
    """How many of the sent reports Cassandra returns, each counted once."""
    query = session.prepare(
        f"SELECT report_id FROM {checked_keyspace(keyspace)}.reports_by_drone_day "
        "WHERE drone_id = ? AND day = ?"
    )
    found = 0
    for (drone_id, day), ids in sent.items():
        stored = {row.report_id for row in session.execute(query, (drone_id, day))}
        found += len(ids & stored)
    return found
