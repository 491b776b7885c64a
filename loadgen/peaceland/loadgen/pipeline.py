"""``peaceland bench pipeline``: the whole data path under load, checked against ground truth.

A fresh bench force gets its topics, keyspace and its three processes (gateway, archiver,
alerter); the simulator drives reports through the gateway at the target rate; a
read_committed watcher timestamps every alert event as it becomes visible. When both
consumer groups have committed every report, Cassandra and the alerts topic are compared
with what the simulator sent.
"""

from __future__ import annotations

import secrets
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from peaceland.cli.errors import CommandError
from peaceland.cli.services import ForceServices
from peaceland.cli.simulate import GroundTruth, send_to_gateway
from peaceland.cli.simulator import Fleet
from peaceland.stack import Endpoints, Stack
from peaceland.stack.servers import Cassandra
from peaceland.tenants.alerts import decode_alert
from peaceland.tenants.cassandra import connect, shutdown_session
from peaceland.tenants.forces import (
    AlertingSettings,
    ForceResources,
    ForceSettings,
    consumer_group,
    resources_for,
)
from peaceland.tenants.provisioning.keyspace import Replication, drop_keyspace, ensure_keyspace
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics
from peaceland.tenants.workloads import CONSUMERS

Say = Callable[[str], None]


@dataclass
class AlertWatcher:
    """Reads the alerts topic as a read_committed consumer, timestamping each event."""

    bootstrap: str
    topic: str
    #: Called with each event as it arrives (the demo prints them).
    on_event: Callable[[Any], None] = lambda _alert: None
    events: list[tuple[float, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"bench-watcher-{uuid.uuid4()}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
            }
        )
        partitions = consumer.list_topics(self.topic, timeout=10).topics[self.topic].partitions
        consumer.assign([TopicPartition(self.topic, p, 0) for p in partitions])

        def watch() -> None:
            try:
                while not self._stop.is_set():
                    message = consumer.poll(0.1)
                    if message is not None and message.error() is None:
                        alert = decode_alert(message.value() or b"")
                        self.events.append((time.time(), alert))
                        self.on_event(alert)
            finally:
                consumer.close()

        self._thread = threading.Thread(target=watch, name="alert-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


#: A window longer than any run: each low-score citizen must raise exactly one alert.
BENCH_ALERTING = AlertingSettings(score_threshold=20.0, dedup_window_seconds=7 * 86_400)


def start_services(
    endpoints: Endpoints, force: ForceResources, state_dir: Path, say: Say = lambda _: None
) -> ForceServices:
    """The force's gateway, archiver and alerter, running and joined to their groups."""
    settings_file = state_dir / "services" / f"{force.force_id}.json"
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(
        ForceSettings(force_id=force.force_id, alerting=BENCH_ALERTING).model_dump_json()
    )
    services = ForceServices(
        endpoints,
        force.force_id,
        state_dir,
        drone_key=secrets.token_urlsafe(24),
        settings_file=settings_file,
    )
    try:
        services.start()
        admin = AdminClient({"bootstrap.servers": endpoints.kafka_bootstrap_servers})
        groups = [consumer_group(force.force_id, name) for name in CONSUMERS]
        _wait_groups(admin, groups, say)
    except BaseException:
        services.stop()  # nobody else holds them yet
        raise
    return services


def drive(
    endpoints: Endpoints,
    force: ForceResources,
    services: ForceServices,
    *,
    reports: int,
    rate: float,
    drones: int = 100,
    seed: int = 1,
    batch: int = 50,
    fault: Callable[[], None] | None = None,
    say: Say = lambda _: None,
    sizes: Callable[[str], dict[str, int]] | None = None,
) -> dict[str, Any]:
    """Send ``reports`` through the gateway at ``rate``, run ``fault`` halfway through, wait
    until both consumers committed everything, and compare with the ground truth."""
    bootstrap = endpoints.kafka_bootstrap_servers
    watcher = AlertWatcher(bootstrap, force.alerts_topic)
    watcher.start()
    faults: list[BaseException] = []
    try:
        fleet = Fleet(drones=drones, seed=seed, threshold=BENCH_ALERTING.score_threshold)
        injector = None
        if fault is not None:
            injector = threading.Timer(reports / rate / 2, _capture(fault, faults))
            injector.start()
        say(f"sending {reports} reports at {rate:.0f}/s through the gateway")
        began = time.time()
        truth = send_to_gateway(
            fleet,
            url=services.gateway_url,
            drone_key=services.drone_key,
            total=reports,
            rate=rate,
            batch=batch,
        )
        sent_seconds = time.time() - began
        if injector is not None:
            injector.join()
        if faults:
            raise faults[0]
        say(f"sent in {sent_seconds:.1f}s; waiting for the consumers to drain")
        admin = AdminClient({"bootstrap.servers": bootstrap})
        _wait_drained(admin, bootstrap, force, timeout=max(180.0, reports / 100))
        drained_seconds = time.time() - began
        time.sleep(0.5)  # the last alert events reach the watcher
    finally:
        watcher.stop()
    session = connect(endpoints.cassandra_contact_points)
    try:
        result = verify(session, force, truth, watcher.events, bootstrap, sizes)
    finally:
        shutdown_session(session)
    return result | {
        "rate_target_rps": rate,
        "send_rps": round(truth.accepted / sent_seconds, 1),
        "throughput_rps": round(truth.accepted / drained_seconds, 1),
        "seconds": round(drained_seconds, 1),
    }


def _capture(fault: Callable[[], None], errors: list[BaseException]) -> Callable[[], None]:
    def run() -> None:
        try:
            fault()
        except BaseException as exc:  # re-raised by drive() in the main thread
            errors.append(exc)

    return run


def run(
    stack: Stack,
    *,
    reports: int,
    rate: float,
    drones: int,
    seed: int,
    batch: int,
    keep: bool,
    say: Say,
) -> dict[str, Any]:
    """The benchmark: a fresh force on the stack, driven and checked, then removed."""
    endpoints = stack.endpoints()
    force = resources_for(f"bench-{secrets.token_hex(4)}")
    admin = AdminClient({"bootstrap.servers": endpoints.kafka_bootstrap_servers})
    session = connect(endpoints.cassandra_contact_points)
    cassandra = stack.server("cassandra")
    sizes = None
    if isinstance(cassandra, Cassandra) and not cassandra.external:
        sizes = cassandra.table_bytes
    services: ForceServices | None = None
    try:
        ensure_topics(admin, force, TopicSettings(partitions=6))
        ensure_keyspace(session, force.keyspace, Replication(), retention_days=30)
        say(f"bench force {force.force_id}: topics and keyspace ready")
        services = start_services(endpoints, force, stack.settings.state_dir, say)
        result = drive(
            endpoints,
            force,
            services,
            reports=reports,
            rate=rate,
            drones=drones,
            seed=seed,
            batch=batch,
            say=say,
            sizes=sizes,
        )
        return result | {"force": force.force_id}
    finally:
        if services is not None:
            services.stop()
        if not keep:
            delete_topics(admin, force)
            drop_keyspace(session, force.keyspace)
        shutdown_session(session)


_COORDINATOR_MOVING = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError._TIMED_OUT,
)


def _transient(exc: KafkaException) -> bool:
    """An admin error that a moment's wait cures: a coordinator being elected or moving.

    The admin client does not always flag these retriable."""
    error = exc.args[0]
    return bool(error.retriable()) or error.code() in _COORDINATOR_MOVING


def _wait_groups(admin: AdminClient, groups: list[str], say: Say, timeout: float = 60) -> None:
    """Until both consumer groups are stable (joined, partitions assigned): latency is then
    measured warm.

    Asks with ListGroups, not describe_consumer_groups: against a freshly started three-node
    cluster, librdkafka 2.16's ConsumerGroupDescribe retries aborted the whole process
    (a C-level abort) in CI.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            listed = admin.list_consumer_groups(request_timeout=10).result()
        except KafkaException as exc:
            if not _transient(exc):
                raise
        else:
            states = {g.group_id: str(g.state) for g in listed.valid}
            if all(states.get(group, "").endswith("STABLE") for group in groups):
                say("archiver and alerter have joined their groups")
                return
        time.sleep(0.5)
    raise CommandError(f"consumer groups {groups} did not settle within {timeout}s")


def _wait_drained(
    admin: AdminClient, bootstrap: str, force: ForceResources, timeout: float
) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})
    try:
        partitions = [
            TopicPartition(force.reports_topic, p)
            for p in consumer.list_topics(force.reports_topic, timeout=10)
            .topics[force.reports_topic]
            .partitions
        ]
        ends = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions)
        deadline = time.monotonic() + timeout
        for group in ("archiver", "alerter"):
            name = consumer_group(force.force_id, group)
            while True:
                try:
                    offsets = admin.list_consumer_group_offsets(
                        [ConsumerGroupTopicPartitions(name, partitions)]
                    )[name].result()
                    if sum(max(tp.offset, 0) for tp in offsets.topic_partitions) >= ends:
                        break
                except KafkaException as exc:
                    if not _transient(exc):
                        raise
                if time.monotonic() > deadline:
                    raise CommandError(f"the {group} did not drain within {timeout:.0f}s")
                time.sleep(0.25)
    finally:
        consumer.close()


def verify(
    session: Any,
    force: ForceResources,
    truth: GroundTruth,
    events: list[tuple[float, Any]],
    bootstrap: str,
    sizes: Callable[[str], dict[str, int]] | None = None,
) -> dict[str, Any]:
    """Cassandra and the alerts topic against the ground truth; ``sizes`` measures the
    keyspace on disk when given."""
    stored = Counter(
        row.report_id
        for row in session.execute(f"SELECT report_id FROM {force.keyspace}.reports_by_drone_day")
    )
    accepted = set(truth.accepted_at)
    raised = [alert for _, alert in events if alert.event == "raised"]
    raised_ids = Counter(alert.alert_id for alert in raised)
    event_sightings = Counter((alert.report_id, alert.citizen) for _, alert in events)
    report_times = _record_times(bootstrap, force.reports_topic)
    latencies = sorted(
        (seen - report_times[alert.report_id]) * 1000
        for seen, alert in events
        if alert.report_id in report_times
    )
    table_bytes = sizes(force.keyspace) if sizes is not None else {}
    stored_bytes = sum(size for table, size in table_bytes.items() if table != "open_alerts")
    return {
        "reports_sent": truth.sent,
        "reports_accepted": truth.accepted,
        "reports_rejected": truth.rejected,
        "reports_stored": len(stored),
        "lost": len(accepted - stored.keys()),
        "duplicates": sum(n - 1 for n in stored.values() if n > 1),
        "alerts_expected": truth.expected_alerts(),
        "alerts_raised": len(raised),
        "alerts_raised_twice": sum(1 for n in raised_ids.values() if n > 1),
        "alert_events_expected": len(truth.low_sightings),
        "alert_events": len(events),
        "alert_events_missing": len(truth.low_sightings - event_sightings.keys()),
        "alert_latency_ms": _percentiles(latencies),
        "raw_bytes_per_report": round(truth.raw_bytes / max(truth.sent, 1), 1),
        "stored_bytes_per_report": round(stored_bytes / max(len(stored), 1), 1)
        if table_bytes
        else None,
        "stored_bytes_by_table": table_bytes,
    }


def _record_times(bootstrap: str, topic: str) -> dict[uuid.UUID, float]:
    """When the gateway handed each report to Kafka (its record timestamp), by report id."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        times: dict[uuid.UUID, float] = {}
        seen = dict.fromkeys(partitions, 0)
        while any(seen[p] < ends[p] for p in partitions):
            for message in consumer.consume(1000, timeout=1):
                if message.error() is None:
                    report_id = uuid.UUID(_report_id(message.value() or b""))
                    times[report_id] = message.timestamp()[1] / 1000
                    seen[message.partition() or 0] = (message.offset() or 0) + 1
        return times
    finally:
        consumer.close()


def _report_id(raw: bytes) -> str:
    # The canonical encoding puts report_id second: cheaper than decoding 20,000 reports.
    start = raw.index(b'"report_id":"') + 13
    return raw[start : start + 36].decode()


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    quantiles = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": round(quantiles[49], 2),
        "p95": round(quantiles[94], 2),
        "p99": round(quantiles[98], 2),
        "max": round(values[-1], 2),
    }
