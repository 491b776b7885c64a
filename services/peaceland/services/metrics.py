"""Prometheus metrics of the data path, one set for every process.

Each process serves ``/metrics`` (consumers beside their probes, the gateway in its app);
every series carries the ``force`` label.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS: Final = (
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
)

RECORDS_CONSUMED = Counter(
    "peaceland_records_consumed_total", "Records taken from Kafka.", ["force", "consumer"]
)
RECORDS_REJECTED = Counter(
    "peaceland_records_rejected_total",
    "Records set aside, by reason: contract (the record breaks the data contract; "
    "dead-lettered by the archiver, skipped by others), conflict (a report id already stored "
    "with other content), refused (Cassandra refused the report and no retry can change it).",
    ["force", "consumer", "reason"],
)
REPORTS_STORED = Counter(
    "peaceland_reports_stored_total", "Reports written to Cassandra.", ["force"]
)
RETRIES = Counter(
    "peaceland_retries_total",
    "Attempts of a batch's step retried because a server refused or did not answer, by step.",
    ["force", "consumer", "step"],
)
RETRYING_SECONDS = Gauge(
    "peaceland_consumer_retrying_seconds",
    "How long the consumer has been retrying its current batch; 0 while it makes progress.",
    ["force", "consumer"],
)
LAST_COMMIT = Gauge(
    "peaceland_consumer_last_commit_timestamp_seconds",
    "When the consumer last committed offsets (Unix time).",
    ["force", "consumer"],
)
LAKE_RECORDS = Counter(
    "peaceland_lake_records_total",
    "Records written to the analytics lake, by stream (reports, alerts, lifecycle).",
    ["force", "stream"],
)
LAKE_BYTES = Counter(
    "peaceland_lake_bytes_total", "Parquet bytes written to the analytics lake.", ["force"]
)
LAKE_MAINTENANCE = Counter(
    "peaceland_lake_maintenance_total",
    "What the lake's maintenance did, by step and outcome: hours compacted or not (failed, "
    "retried later), hours rolled up or not, files expired, whole runs that failed.",
    ["force", "step", "outcome"],
)
ALERT_EVENTS = Counter(
    "peaceland_alert_events_total",
    "Alert events emitted, by kind (raised, updated).",
    ["force", "event"],
)
CONSUMER_LAG = Gauge(
    "peaceland_consumer_lag",
    "Records behind the end of the topic, over all partitions.",
    ["force", "consumer"],
)
BATCH_SECONDS = Histogram(
    "peaceland_batch_seconds",
    "Time to process and commit one batch.",
    ["force", "consumer"],
    buckets=_LATENCY_BUCKETS,
)
ALERT_LATENCY = Histogram(
    "peaceland_alert_latency_seconds",
    "From the report's arrival in Kafka to its alert event being committed.",
    ["force"],
    buckets=_LATENCY_BUCKETS,
)
GATEWAY_REPORTS = Counter(
    "peaceland_gateway_reports_total",
    "Reports received by the gateway, by outcome.",
    ["force", "outcome"],
)
GATEWAY_REFUSED = Counter(
    "peaceland_gateway_requests_refused_total",
    "Requests answered 429 because their force had its share of reports in flight.",
    ["force"],
)
GATEWAY_SECONDS = Histogram(
    "peaceland_gateway_request_seconds",
    "Time to answer one POST /v1/reports.",
    ["force"],
    buckets=_LATENCY_BUCKETS,
)
GATEWAY_KEY_FEED_AGE = Gauge(
    "peaceland_gateway_key_feed_age_seconds",
    "Seconds since the gateway last read the control plane's drone-key feed whole: how old "
    "a revocation may be before this gateway applies it.",
)
GATEWAY_USAGE_PENDING = Gauge(
    "peaceland_gateway_usage_pending_reports",
    "Reports accepted and counted but not yet posted to the control plane.",
)
