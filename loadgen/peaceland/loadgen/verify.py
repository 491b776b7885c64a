"""What a run made of its reports, against its ground truth: nothing lost, nothing doubled,
one alert per low-score citizen, and how long alerts took."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date
from typing import Any

from cassandra.cluster import Session
from confluent_kafka import Consumer, TopicPartition

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


#: The stages of an alert's way, each from the moment named before it (wall clock of this
#: one machine): the drone's request sent; the gateway hands the report to its producer
#: (the report record's timestamp); the alerter takes the sighting up (the alert's
#: ``raised_at``) after Kafka's acknowledgement, the alerter's poll and its batch; the
#: alerter hands the alert to its producer (the alert record's timestamp) after its
#: decision; the alert is visible to a read_committed reader, once the transaction is
#: committed. And, apart, the gateway's answer after the report record.
ALERT_STAGES = (
    "request_to_report_record",
    "report_record_to_alerter",
    "alerter_decision",
    "alert_record_to_visible",
    "request_to_visible",
    "report_record_to_gateway_answer",
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
    for (seen, alert), alert_record in zip(events, produced_at, strict=True):
        posted = truth.posted_at.get(alert.report_id)
        report_record = report_times.get(alert.report_id)
        if posted is None or report_record is None:
            continue
        taken_up = alert.raised_at.timestamp()
        for stage, took in zip(
            ALERT_STAGES,
            (
                report_record - posted,
                taken_up - report_record,
                alert_record - taken_up,
                seen - alert_record,
                seen - posted,
                truth.accepted_at[alert.report_id] - report_record,
            ),
            strict=True,
        ):
            stages[stage].append(took * 1000)
    return {stage: percentiles(sorted(took)) for stage, took in stages.items()}


def record_times(kafka: KafkaAccess, topic: str) -> dict[uuid.UUID, float]:
    """When the gateway handed each report to Kafka (its record timestamp), by report id."""
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
