"""Faults in the middle of a run: every accepted report stored once, every alert raised once.

Each test drives the real gateway, archiver and alerter processes with simulated drones,
injects its fault halfway through, waits until both consumers have committed everything,
then checks Cassandra and the alerts topic against the simulator's ground truth.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient

from peaceland.cli.bench_pipeline import drive, start_services
from peaceland.cli.services import ForceServices
from peaceland.cli.stack import Endpoints, KafkaCluster, Stack
from peaceland.tenants.cassandra import is_transient
from peaceland.tenants.forces import ForceResources, resources_for
from peaceland.tenants.provisioning.keyspace import Replication, drop_keyspace, ensure_keyspace
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics
from tests.kafka_helpers import wait_until

pytestmark = pytest.mark.timeout(900)

REPORTS, RATE = 6_000, 400


def assert_nothing_lost_or_doubled(result: dict[str, Any]) -> None:
    summary = {k: v for k, v in result.items() if k != "stored_bytes_by_table"}
    assert result["reports_accepted"] == result["reports_sent"] == REPORTS, summary
    assert result["lost"] == 0, summary
    assert result["duplicates"] == 0, summary
    assert result["reports_stored"] == REPORTS, summary
    assert result["alerts_expected"] > 0, summary
    assert result["alerts_raised"] == result["alerts_expected"], summary
    assert result["alerts_raised_twice"] == 0, summary
    assert result["alert_events_missing"] == 0, summary


@pytest.fixture
def services(force: ForceResources, endpoints: Endpoints, stack: Stack) -> Iterator[ForceServices]:
    running = start_services(endpoints, force, stack.settings.state_dir)
    yield running
    running.stop()


@pytest.mark.parametrize("consumer", ["archiver", "alerter"])
def test_killing_a_consumer_mid_run_loses_and_doubles_nothing(
    consumer: str, force: ForceResources, endpoints: Endpoints, services: ForceServices
):
    process = services.processes[consumer]

    def crash_and_restart() -> None:
        assert process.kill()
        time.sleep(1)
        process.start()

    result = drive(endpoints, force, services, reports=REPORTS, rate=RATE, fault=crash_and_restart)
    assert_nothing_lost_or_doubled(result)


def test_restarting_cassandra_mid_run_loses_and_doubles_nothing(
    force: ForceResources,
    endpoints: Endpoints,
    services: ForceServices,
    stack: Stack,
    cassandra: Session,
):
    server = stack.server("cassandra")
    if server.external:
        pytest.skip("Cassandra is external: this test restarts the stack's own")

    def restart() -> None:
        assert server.stop()
        time.sleep(2)  # consumers meet a Cassandra that is down, not merely restarting
        stack.up(["cassandra"])

    result = drive(endpoints, force, services, reports=REPORTS, rate=RATE, fault=restart)
    assert_nothing_lost_or_doubled(result)
    # Sessions opened before the restart (this test session's own) come back too.
    wait_until(
        partial(_answers, cassandra), timeout=60, what="the test session to reconnect to Cassandra"
    )


def _answers(session: Session) -> bool:
    try:
        session.execute("SELECT release_version FROM system.local")
    except Exception as exc:
        if not is_transient(exc):
            raise
        return False
    return True


def test_losing_one_broker_of_three_loses_and_doubles_nothing(
    stack: Stack, endpoints: Endpoints, cassandra: Session, tmp_path: Path
):
    settings = stack.settings.model_copy(
        update={"state_dir": tmp_path / "kafka-cluster", "kafka_heap": "512m"}
    )
    cluster = KafkaCluster(settings, size=3)
    cluster.up()
    force = resources_for(f"t-{uuid.uuid4().hex[:12]}")
    replicated = Endpoints(
        cluster.bootstrap_servers, endpoints.cassandra_contact_points, endpoints.database_url
    )
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    services = None
    try:
        # Three copies of every record; an acknowledged one is on at least two.
        ensure_topics(
            admin, force, TopicSettings(partitions=3, replication_factor=3, min_insync_replicas=2)
        )
        ensure_keyspace(cassandra, force.keyspace, Replication())
        services = start_services(replicated, force, stack.settings.state_dir)
        result = drive(
            replicated, force, services, reports=REPORTS, rate=RATE, fault=lambda: cluster.kill(1)
        )
        assert_nothing_lost_or_doubled(result)
    finally:
        if services is not None:
            services.stop()
        delete_topics(admin, force)
        drop_keyspace(cassandra, force.keyspace)
        cluster.down()
