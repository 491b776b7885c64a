"""Faults in the middle of a run: every accepted report stored once, every alert raised once.

Each test drives the real gateway, archiver and alerter processes with simulated drones,
injects its fault halfway through, waits until both consumers have committed everything,
then checks Cassandra and the alerts topic against the simulator's ground truth.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import pytest
from cassandra.cluster import Session
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from peaceland.loadgen.pipeline import BENCH_ALERTING, Target, drive
from peaceland.loadgen.watcher import AlertWatcher
from peaceland.node.launch import ForceServices, ServiceProcess, start_force_services
from peaceland.stack import CassandraRing, Endpoints, KafkaCluster, Stack, StackError
from peaceland.stack.servers import Cassandra
from peaceland.tenants.cassandra import connect, is_transient, shutdown_session
from peaceland.tenants.forces import ForceResources, consumer_group, resources_for
from peaceland.tenants.kafka import client_config, producer_config
from peaceland.tenants.provisioning.keyspace import Replication, drop_keyspace, ensure_keyspace
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics
from peaceland.tenants.reports import Citizen, Report, encode_report
from tests.factories import make_report
from tests.kafka_helpers import committed_total, wait_until

log = logging.getLogger(__name__)

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


def target(services: ForceServices) -> Target:
    """Where the load generator reaches the force that ``services`` run."""
    return Target(
        services.gateway_url,
        services.harness_key,
        services.endpoints.kafka,
        services.endpoints.cassandra,
    )


@pytest.fixture
def services(force: ForceResources, endpoints: Endpoints, stack: Stack) -> Iterator[ForceServices]:
    running = start_force_services(endpoints, force, stack.settings.state_dir, BENCH_ALERTING)
    yield running
    running.stop()


@pytest.mark.parametrize("consumer", ["archiver", "alerter"])
def test_killing_a_consumer_mid_run_loses_and_doubles_nothing(
    consumer: str, force: ForceResources, endpoints: Endpoints, services: ForceServices
):
    process = services.processes[consumer]

    def crash() -> None:
        assert process.kill()  # the supervisor starts it again, as a kubelet would

    result = drive(target(services), force, reports=REPORTS, rate=RATE, fault=crash)
    assert_nothing_lost_or_doubled(result)
    assert services.restarts[consumer] == 1


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

    result = drive(target(services), force, reports=REPORTS, rate=RATE, fault=restart)
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
    replicated = Endpoints(cluster.access, endpoints.cassandra, endpoints.database_url)
    admin = AdminClient(client_config(cluster.access))
    services = None
    try:
        # Three copies of every record; an acknowledged one is on at least two.
        ensure_topics(
            admin, force, TopicSettings(partitions=3, replication_factor=3, min_insync_replicas=2)
        )
        ensure_keyspace(cassandra, force.keyspace, Replication())
        services = start_force_services(replicated, force, stack.settings.state_dir, BENCH_ALERTING)
        result = drive(
            target(services), force, reports=REPORTS, rate=RATE, fault=lambda: cluster.kill(1)
        )
        assert_nothing_lost_or_doubled(result)
    finally:
        if services is not None:
            services.stop()
        delete_topics(admin, force)
        drop_keyspace(cassandra, force.keyspace)
        cluster.down()


def _low_report(seed: int, citizen: str) -> Report:
    report = make_report(random.Random(seed), citizens=0)
    return report.model_copy(update={"citizens": [Citizen(name=citizen, score=1.0)]})


def _post(url: str, key: str, report: Report) -> None:
    response = httpx2.post(
        f"{url}/v1/reports",
        content=encode_report(report),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 202, response.text


def test_a_replacement_alerter_fences_its_dead_predecessors_transaction(
    force: ForceResources, endpoints: Endpoints, services: ForceServices, cassandra: Session
):
    """kill -9 of an alerter in the middle of a transaction, then a replacement pod under
    another name: alerts resume once the replacement holds the dead one's slot, whose
    transactional id aborts the open transaction. Without that, the transaction (here one
    that would time out only after 15 minutes) holds every read_committed reader."""
    bootstrap = endpoints.kafka
    watcher = AlertWatcher(bootstrap, force.alerts_topic)
    watcher.start()
    alerter = services.processes["alerter"]
    services.supervised.discard("alerter")  # this test starts its replacement itself
    try:
        _post(services.gateway_url, services.harness_key, _low_report(1, "Before Kill"))
        wait_until(lambda: len(watcher.events) == 1, 60, "the first alert")
        [slot] = list(cassandra.execute(f"SELECT slot FROM {force.keyspace}.alerter_slots"))
        assert alerter.kill()
        # What the dead alerter left: a transaction begun under its id, records written to
        # every partition of the alerts topic, never committed nor aborted.
        dead = Producer(
            {
                **producer_config(bootstrap),
                "transactional.id": f"{consumer_group(force.force_id, 'alerter')}.{slot.slot}",
                "transaction.timeout.ms": 900_000,
                "message.timeout.ms": 900_000,
            }
        )
        dead.init_transactions(30)
        dead.begin_transaction()
        partitions = dead.list_topics(force.alerts_topic, timeout=10).topics[force.alerts_topic]
        for partition in partitions.partitions:
            dead.produce(force.alerts_topic, value=b"{}", partition=partition)
        assert dead.flush(30) == 0
        replacement = ServiceProcess(
            "alerter-replacement",
            force.force_id,
            {**alerter.env, "PEACELAND_ALERTER_INSTANCE": f"{force.force_id}-replacement"},
            alerter.state_dir,
            module="peaceland.services.alerter",
        )
        began = time.monotonic()
        replacement.start()
        try:
            seed = 100
            while len(watcher.events) < 2:
                assert time.monotonic() - began < 120, "alerts did not resume within 120 s"
                _post(
                    services.gateway_url, services.harness_key, _low_report(seed, f"After {seed}")
                )
                seed += 1
                time.sleep(0.5)
            resumed = time.monotonic() - began
        finally:
            replacement.stop()
    finally:
        watcher.stop()
    log.info("alerts resumed %.1f s after the replacement alerter started", resumed)
    assert {a.citizen for _, a in watcher.events} >= {"Before Kill"}
    assert all(a.event == "raised" for _, a in watcher.events)


def _java_hash(text: str) -> int:
    """Java's String.hashCode, which Kafka uses to place a group or a transactional id."""
    units = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    return h - 2**32 if h >= 2**31 else h


def _coordinator(admin: AdminClient, internal_topic: str, key: str) -> int:
    """The broker coordinating ``key``: the leader of its partition of the internal topic."""
    topic = admin.list_topics(internal_topic, timeout=10).topics[internal_topic]
    h = _java_hash(key)
    partition = (0 if h == -(2**31) else abs(h)) % len(topic.partitions)
    return int(topic.partitions[partition].leader)


def test_losing_the_broker_that_coordinates_the_alerter_loses_and_doubles_nothing(
    stack: Stack, endpoints: Endpoints, cassandra: Session, tmp_path: Path
):
    """The broker that coordinates both the alerter's consumer group and its transactions
    goes down mid-run: the alerter must find the new coordinators and go on (it once hung
    there silently). Its watchdog writes every thread's stack to its log if it stops."""
    settings = stack.settings.model_copy(
        update={"state_dir": tmp_path / "kafka-cluster", "kafka_heap": "512m"}
    )
    cluster = KafkaCluster(settings, size=3)
    cluster.up()
    admin = AdminClient(client_config(cluster.access))
    services = None
    force = None
    try:
        # Bring the internal topics into being: a group and a transactional id, once.
        warm = Producer({**producer_config(cluster.access), "transactional.id": "warm-up"})
        warm.init_transactions(60)
        admin.create_topics([NewTopic("warm-up", 1, 3)])["warm-up"].result()
        wait_until(
            lambda: committed_total(cluster.access, "warm-up", "warm-up") >= 0,
            timeout=60,
            what="a group coordinator",
        )
        wait_until(
            lambda: (
                {"__consumer_offsets", "__transaction_state"}
                <= set(admin.list_topics(timeout=10).topics)
            ),
            timeout=60,
            what="Kafka's internal topics",
        )
        # A force whose alerter group and slot-0 transactions share one coordinator.
        while True:
            force = resources_for(f"t-{uuid.uuid4().hex[:12]}")
            group = consumer_group(force.force_id, "alerter")
            broker = _coordinator(admin, "__consumer_offsets", group)
            if broker == _coordinator(admin, "__transaction_state", f"{group}.0"):
                break
        ensure_topics(
            admin, force, TopicSettings(partitions=3, replication_factor=3, min_insync_replicas=2)
        )
        ensure_keyspace(cassandra, force.keyspace, Replication())
        replicated = Endpoints(cluster.access, endpoints.cassandra, endpoints.database_url)
        services = start_force_services(replicated, force, stack.settings.state_dir, BENCH_ALERTING)
        index = next(i for i, node in enumerate(cluster.nodes) if node.node.node_id == broker)
        result = drive(
            target(services),
            force,
            reports=REPORTS,
            rate=RATE,
            fault=lambda: cluster.kill(index),
        )
        assert_nothing_lost_or_doubled(result)
    finally:
        if services is not None:
            services.stop()
        if force is not None:
            delete_topics(admin, force)
            drop_keyspace(cassandra, force.keyspace)
        cluster.down()


@pytest.fixture(scope="module")
def ring(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CassandraRing]:
    """Three Cassandra nodes on 127.0.0.2-4: a keyspace of replication factor 3 has every
    row on each, and LOCAL_QUORUM is two of them."""
    settings = stack.settings.model_copy(
        update={"state_dir": tmp_path_factory.mktemp("cassandra-ring"), "cassandra_heap": "768m"}
    )
    ring = CassandraRing(settings, size=3)
    ring.up()
    yield ring
    ring.down()


def _until_done(
    call: Callable[[], object], timeout: float = 120, heal: Callable[[], object] | None = None
) -> None:
    """Send a schema change again while the ring times out: just after a node's restart it
    may not yet agree on its schema, and the operator would retry too. ``heal``, if given,
    runs every 20 s of failures (a node that keeps missing the schema is made to pull it)."""
    deadline = time.monotonic() + timeout
    healed = time.monotonic()
    while True:
        try:
            call()
            return
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() > deadline:
                raise
            if heal is not None and time.monotonic() - healed > 20:
                heal()
                healed = time.monotonic()
            time.sleep(2)


def _schemas_agree(ring: CassandraRing, restarted: list[Cassandra], wait: float = 60) -> bool:
    """Until every node of the ring holds one schema version; whether it came to that.

    A node restarted after a kill -9 was seen (twice in CI) to miss a keyspace made after its
    restart for minutes: past half the wait, such a node drops its local schema and pulls it
    again from the others. Just after its restart the node may not yet see any other node
    alive and then refuses to reset (seen once in CI, a JMX error failing a teardown): that
    is retried, like a ``describecluster`` asked of a node still starting."""
    deadline = time.monotonic() + wait
    reset_from = time.monotonic() + wait / 2
    while True:
        try:
            described = ring.nodes[0].nodetool("describecluster")
        except StackError as exc:
            log.info("describecluster not answered yet: %s", exc)
        else:
            if len(re.findall(r"^\s+[0-9a-f-]{36}: \[", described, re.MULTILINE)) == 1:
                return True
        if time.monotonic() > deadline:
            return False
        if time.monotonic() > reset_from:
            for node in restarted:
                try:
                    node.nodetool("resetlocalschema")
                except StackError as exc:
                    log.info("resetlocalschema refused, retried: %s", exc)
        time.sleep(2)


@pytest.fixture
def ring_force(
    ring: CassandraRing, kafka_admin: AdminClient, endpoints: Endpoints
) -> Iterator[tuple[ForceResources, Endpoints, Session]]:
    """A force whose keyspace lives on the ring, three copies of each row."""
    force = resources_for(f"t-{uuid.uuid4().hex[:12]}")
    ensure_topics(kafka_admin, force, TopicSettings(partitions=3))
    session = connect(ring.access)
    try:
        _until_done(
            lambda: ensure_keyspace(session, force.keyspace, Replication(factor=3)),
            heal=lambda: _schemas_agree(ring, ring.nodes, wait=10),
        )
        on_ring = Endpoints(endpoints.kafka, ring.access, endpoints.database_url)
        yield force, on_ring, session
        restarted = [node for node in ring.nodes if node.pid() is None]
        for node in restarted:
            ring.restart(ring.nodes.index(node))
        # The next test needs the whole ring, so a node that cannot restart fails here. The
        # keyspace, though, goes with the ring's temporary directory: dropping it is tidiness.
        if _schemas_agree(ring, restarted, wait=120):
            _until_done(lambda: drop_keyspace(session, force.keyspace))
        else:
            log.warning("the ring's schema still disagrees; %s left to the ring", force.keyspace)
    finally:
        delete_topics(kafka_admin, force)
        # A session left open keeps reconnecting to the ring's nodes after they are gone,
        # from driver threads, for the rest of the test session.
        shutdown_session(session)


def test_losing_one_cassandra_replica_of_three_loses_and_doubles_nothing(
    ring: CassandraRing, ring_force: tuple[ForceResources, Endpoints, Session], stack: Stack
):
    force, on_ring, _ = ring_force
    services = start_force_services(on_ring, force, stack.settings.state_dir, BENCH_ALERTING)
    try:
        result = drive(
            target(services), force, reports=REPORTS, rate=RATE, fault=lambda: ring.kill(1)
        )
    finally:
        services.stop()
    assert_nothing_lost_or_doubled(result)


def test_the_archiver_commits_nothing_that_a_quorum_of_replicas_does_not_hold(
    ring: CassandraRing, ring_force: tuple[ForceResources, Endpoints, Session], stack: Stack
):
    """With two replicas of three down, a write at LOCAL_QUORUM cannot succeed: the archiver
    must hold its offsets and retry, not commit reports that one node alone has (and could
    take with it)."""
    force, on_ring, session = ring_force
    services = start_force_services(on_ring, force, stack.settings.state_dir, BENCH_ALERTING)
    bootstrap = on_ring.kafka
    group = consumer_group(force.force_id, "archiver")
    metrics_port = services.processes["archiver"].env["PEACELAND_ARCHIVER_METRICS_PORT"]

    def store_retries() -> float:
        text = httpx2.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith("peaceland_retries_total{") and 'step="store"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    try:
        ring.kill(1)
        ring.kill(2)
        reports = [_low_report(seed, f"Quorum {seed}") for seed in range(20)]
        for report in reports:
            _post(services.gateway_url, services.harness_key, report)
        wait_until(lambda: store_retries() >= 2, 120, "the archiver to retry its writes")
        assert committed_total(bootstrap, group, force.reports_topic) <= 0
        ring.restart(1)
        wait_until(
            lambda: committed_total(bootstrap, group, force.reports_topic) == len(reports),
            180,
            "the archiver to store and commit once a quorum is back",
        )
    finally:
        services.stop()
    stored = {
        row.report_id
        for row in session.execute(f"SELECT report_id FROM {force.keyspace}.reports_by_drone_day")
    }
    assert stored == {r.report_id for r in reports}
