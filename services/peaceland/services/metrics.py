"""Prometheus metrics of the data path, one set for every process.

Each process serves ``/metrics`` (consumers on their own port, the gateway in its app);
every series carries the ``force`` label.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
    "Records that break the data contract (dead-lettered by the archiver, skipped by others).",
    ["force", "consumer"],
)
REPORTS_STORED = Counter(
    "peaceland_reports_stored_total", "Reports written to Cassandra.", ["force"]
)
WRITE_RETRIES = Counter(
    "peaceland_write_retries_total",
    "Batches retried because Cassandra refused writes.",
    ["force", "consumer"],
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
GATEWAY_SECONDS = Histogram(
    "peaceland_gateway_request_seconds",
    "Time to answer one POST /v1/reports.",
    ["force"],
    buckets=_LATENCY_BUCKETS,
)


def serve(port: int) -> None:
    """Serve ``/metrics`` on ``port`` from a background thread (0 disables it)."""
    if port:
        start_http_server(port)
