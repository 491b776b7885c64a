"""What a run made of its reports, against its ground truth: nothing lost, nothing doubled,
one alert per low-score citizen, and how long alerts took."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date
from typing import Any

from cassandra.cluster import Session
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, TopicPartition

from peaceland.loadgen.errors import LoadError
from peaceland.loadgen.stats import percentiles
from peaceland.loadgen.truth import GroundTruth
from peaceland.tenants.forces import ForceResources
from peaceland.tenants.kafka import KafkaAccess, client_config
from peaceland.tenants.provisioning.keyspace import checked_keyspace


def verify(
    session: Any,
    force: ForceResources,
    truth: GroundTruth,
    events: list[tuple[float, Any]],
    kafka: KafkaAccess,
    sizes: Callable[[str], dict[str, int]] | None = None,
    produced_at: list[float] | None = None,
) -> dict[str, Any]:
    """Cassandra and the alerts topic against the ground truth; ``sizes`` measures the
    keyspace on disk when given; ``produced_at`` (the alert records' Kafka timestamps, in
    the order of ``events``) breaks the alerts' latency into stages."""
    stored = Counter(
        row.report_id
        for row in session.execute(f"SELECT report_id FROM {force.keyspace}.reports_by_drone_day")
    )
    accepted = set(truth.accepted_at)
    raised = [alert for _, alert in events if alert.event == "raised"]
    raised_ids = Counter(alert.alert_id for alert in raised)
    event_sightings = Counter((alert.report_id, alert.citizen) for _, alert in events)
    report_times = record_times(kafka, force.reports_topic)
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
        "alert_latency_ms": percentiles(latencies),
        "alert_stages_ms": alert_stages(events, produced_at, report_times, truth)
        if produced_at is not None and truth.posted_at
        else None,
        "raw_bytes_per_report": round(truth.raw_bytes / max(truth.sent, 1), 1),
        "stored_bytes_per_report": round(stored_bytes / max(len(stored), 1), 1)
        if table_bytes
        else None,
        "stored_bytes_by_table": table_bytes,
    }


#: The stages of an alert's way, a chain on this one machine's wall clock, each from the
#: moment the one before it ended:
#: - ``request_to_gateway``: the drone's request sent → the gateway took it in (the moment
#:   it stamps on the reports' records, before parsing them);
#: - ``gateway_to_answer``: → the drone has its 202 (the gateway parsed the request, handed
#:   the reports to its producer and Kafka acknowledged them on every in-sync replica);
#: - ``answer_to_alerter``: → the alerter takes the sighting up (the alert's ``raised_at``):
#:   its poll and the sightings ahead of it in its batch; negative when the alerter was
#:   quicker than the answer's way back to the drone;
#: - ``alerter_to_alert_record``: → the alerter hands the alert to its producer (the alert
#:   record's timestamp): this sighting's decision and those after it in the batch;
#: - ``alert_record_to_visible``: → a read_committed reader has it (the transaction's
#:   commit, the reader's fetch);
#: and ``request_to_visible``, the whole way.
ALERT_STAGES = (
    "request_to_gateway",
    "gateway_to_answer",
    "answer_to_alerter",
    "alerter_to_alert_record",
    "alert_record_to_visible",
    "request_to_visible",
)


def alert_stages(
    events: list[tuple[float, Any]],
    produced_at: list[float],
    report_times: dict[uuid.UUID, float],
    truth: GroundTruth,
) -> dict[str, dict[str, float | None]]:
    """p50, p95, p99 and max of each stage of ``ALERT_STAGES``, in milliseconds, over every
    alert event whose report went through the gateway."""
    stages: dict[str, list[float]] = {stage: [] for stage in ALERT_STAGES}
    # The watcher notes a record's time before its event: a stop between the two leaves
    # one time more, at the end.
    for (seen, alert), alert_record in zip(events, produced_at, strict=False):
        posted = truth.posted_at.get(alert.report_id)
        gateway = report_times.get(alert.report_id)
        answered = truth.accepted_at.get(alert.report_id)
        if posted is None or gateway is None or answered is None:
            continue
        taken_up = alert.raised_at.timestamp()
        moments = (posted, gateway, answered, taken_up, alert_record, seen)
        for stage, took in zip(
            ALERT_STAGES,
            [*(b - a for a, b in itertools.pairwise(moments)), seen - posted],
            strict=True,
        ):
            stages[stage].append(took * 1000)
    return {stage: percentiles(sorted(took)) for stage, took in stages.items()}


def record_times(kafka: KafkaAccess, topic: str) -> dict[uuid.UUID, float]:
    """When the gateway took each report in (its record's timestamp: the moment the request
    was received), by report id; the first record of a report sent twice."""
    consumer = Consumer(
        client_config(kafka) | {"group.id": f"bench-{uuid.uuid4()}", "enable.auto.commit": False}
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
                    kind, stamp = message.timestamp()
                    if kind != TIMESTAMP_CREATE_TIME:
                        raise LoadError(
                            f"{topic} keeps no producer's time (timestamp type {kind}): the "
                            "latencies measured from it would mean something else"
                        )
                    report_id = uuid.UUID(_report_id(message.value() or b""))
                    times.setdefault(report_id, stamp / 1000)
                    seen[message.partition() or 0] = (message.offset() or 0) + 1
        return times
    finally:
        consumer.close()


def _report_id(raw: bytes) -> str:
    # The canonical encoding puts report_id second: cheaper than decoding 20,000 reports.
    start = raw.index(b'"report_id":"') + 13
    return raw[start : start + 36].decode()


def read_back(session: Session, keyspace: str, truth: GroundTruth) -> int:
    """How many of the accepted reports Cassandra returns, by drone, day and report id."""
    by_partition: dict[tuple[str, date], set[uuid.UUID]] = defaultdict(set)
    for report_id in truth.accepted_at:
        by_partition[truth.partitions[report_id]].add(report_id)
    query = session.prepare(
        f"SELECT report_id FROM {checked_keyspace(keyspace)}.reports_by_drone_day "
        "WHERE drone_id = ? AND day = ?"
    )
    found = 0
    for (drone_id, day), ids in by_partition.items():
        stored = {row.report_id for row in session.execute(query, (drone_id, day))}
        found += len(ids & stored)
    return found
