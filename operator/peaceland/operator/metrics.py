"""Prometheus metrics of the operator, served on ``/metrics`` (``metrics_port``).

Every series carries the force's namespace and name: what an on-call officer filters by.
"""

from __future__ import annotations

import contextlib
from typing import Final, get_args

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from peaceland.operator.progress import Verdict
from peaceland.operator.results import Outcome
from peaceland.tenants.policeforce import ConditionType
from peaceland.tenants.workloads import CONSUMERS, LAKE

_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

RECONCILES = Counter(
    "peaceland_operator_reconciles_total",
    "Reconciles of a force, by cause (create, update, resume, drift) and result (ready, "
    "waiting: consumers not yet available or the cluster cannot serve the spec, retry: a "
    "server did not answer, failed: the spec can never work).",
    ["namespace", "force", "cause", "result"],
)
RECONCILE_SECONDS = Histogram(
    "peaceland_operator_reconcile_seconds",
    "Time of one full reconcile of a force (topics, keyspace, consumers).",
    ["namespace", "force"],
    buckets=_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "peaceland_operator_consumer_lag",
    "Reports waiting for each consumer of the force (its group's lag on the reports topic).",
    ["namespace", "force", "consumer"],
)
CONSUMER_STILL = Gauge(
    "peaceland_operator_consumer_still_seconds",
    "How long each consumer of the force has committed nothing while reports wait.",
    ["namespace", "force", "consumer"],
)
CONDITION = Gauge(
    "peaceland_operator_condition",
    "1 when the force's condition is True, else 0.",
    ["namespace", "force", "condition"],
)


def observe(namespace: str, force: str, cause: str, outcome: Outcome, seconds: float) -> None:
    if outcome.permanent:
        result = "failed"
    elif outcome.retry:
        result = "retry"
    elif outcome.ready:
        result = "ready"
    else:
        result = "waiting"
    RECONCILES.labels(namespace, force, cause, result).inc()
    RECONCILE_SECONDS.labels(namespace, force).observe(seconds)
    observe_conditions(namespace, force, outcome)


def observe_conditions(namespace: str, force: str, outcome: Outcome) -> None:
    for step in outcome.steps:
        CONDITION.labels(namespace, force, step.condition).set(1 if step.ok else 0)
    CONDITION.labels(namespace, force, "Ready").set(1 if outcome.ready else 0)


def observe_progress(namespace: str, force: str, verdicts: list[Verdict]) -> None:
    for verdict in verdicts:
        CONSUMER_LAG.labels(namespace, force, verdict.consumer).set(verdict.lag)
        CONSUMER_STILL.labels(namespace, force, verdict.consumer).set(verdict.still_for)


def forget(namespace: str, force: str) -> None:
    """Drop a deleted force's gauges (its counters stay: they are history)."""
    for condition in get_args(ConditionType):
        with contextlib.suppress(KeyError):
            CONDITION.remove(namespace, force, condition)
    for consumer in (*CONSUMERS, LAKE):
        for gauge in (CONSUMER_LAG, CONSUMER_STILL):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, force, consumer)


def serve(port: int) -> None:
    if port:
        start_http_server(port)
