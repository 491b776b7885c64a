"""The whole data path under load, checked against ground truth.

The simulator drives reports through a force's gateway at the target rate; a read_committed
watcher timestamps every alert event as it becomes visible. When both consumer groups have
committed every report, Cassandra and the alerts topic are compared with what the simulator
sent. What runs the force (the local node, a cluster) is the caller's business: this module
needs only the addresses in a ``Target``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient

from peaceland.loadgen.cpu import CpuMeter
from peaceland.loadgen.drivers import send_to_gateway
from peaceland.loadgen.errors import LoadError
from peaceland.loadgen.fleet import Fleet
from peaceland.loadgen.lag import LagSampler, lag_growth, lag_of, reports_partitions
from peaceland.loadgen.verify import verify
from peaceland.loadgen.watcher import AlertWatcher
from peaceland.tenants.cassandra import CassandraAccess, connect, shutdown_session
from peaceland.tenants.forces import AlertingSettings, ForceResources
from peaceland.tenants.kafka import KafkaAccess, client_config, is_transient
from peaceland.tenants.workloads import CONSUMERS

Say = Callable[[str], None]

#: Seconds at the start of a run whose lag says nothing of the consumers' pace.
_WARM_UP: Final = 5.0

#: A window longer than any run: each low-score citizen must raise exactly one alert.
BENCH_ALERTING: Final = AlertingSettings(score_threshold=20.0, dedup_window_seconds=7 * 86_400)


@dataclass(frozen=True)
class Target:
    """Where a force's data path can be reached: its gateway (and a drone key it accepts),
    the Kafka and the Cassandra it writes to."""

    gateway_url: str
    drone_key: str
    kafka: KafkaAccess
    cassandra: CassandraAccess


def drive(
    target: Target,
    force: ForceResources,
    *,
    reports: int,
    rate: float,
    drones: int = 100,
    seed: int = 1,
    batch: int = 50,
    fault: Callable[[], None] | None = None,
    say: Say = lambda _: None,
    threshold: float = BENCH_ALERTING.score_threshold,
    sizes: Callable[[str], dict[str, int]] | None = None,
    processes: Mapping[str, int] | None = None,
    lag_every: float | None = None,
) -> dict[str, Any]:
    """Send ``reports`` through the gateway at ``rate``, run ``fault`` halfway through, wait
    until both consumers committed everything, and compare with the ground truth.
    ``processes`` (pids by name) have their CPU time from the first send to the drain
    measured; this process (the simulator and the watcher) is always measured. With
    ``lag_every``, the consumers' lag is sampled that often until the drain."""
    watcher = AlertWatcher(target.kafka, force.alerts_topic)
    watcher.start()
    sampler = None
    if lag_every is not None:
        sampler = LagSampler(target.kafka, force, lag_every)
        sampler.start()
    meter = CpuMeter({"simulator": os.getpid(), **(processes or {})})
    meter.start()
    faults: list[BaseException] = []
    try:
        fleet = Fleet(drones=drones, seed=seed, threshold=threshold)
        injector = None
        if fault is not None:
            injector = threading.Timer(reports / rate / 2, _capture(fault, faults))
            injector.start()
        say(f"sending {reports} reports at {rate:.0f}/s through the gateway")
        began = time.time()
        truth = send_to_gateway(
            fleet,
            url=target.gateway_url,
            drone_key=target.drone_key,
            total=reports,
            rate=rate,
            batch=batch,
        )
        # Sending ended with the last report the gateway took (the simulator's last calls
        # may return later: stragglers, retries, closing its connections).
        sent_seconds = max(truth.accepted_at.values(), default=time.time()) - began
        if injector is not None:
            injector.join()
        if faults:
            raise faults[0]
        say(f"sent in {sent_seconds:.1f}s; waiting for the consumers to drain")
        wait_drained(target.kafka, force, timeout=max(180.0, reports / 100))
        drained_seconds = time.time() - began
        cpu = meter.stop(truth.accepted)
        lag = sampler.stop() if sampler is not None else None
        time.sleep(0.5)  # the last alert events reach the watcher
    finally:
        watcher.stop()
        if sampler is not None:
            sampler.stop()
    session = connect(target.cassandra)
    try:
        result = verify(
            session, force, truth, watcher.events, target.kafka, sizes, watcher.produced_at
        )
    finally:
        shutdown_session(session)
    return result | {
        "rate_target_rps": rate,
        "send_rps": round(truth.accepted / sent_seconds, 1),
        "throughput_rps": round(truth.accepted / drained_seconds, 1),
        "seconds": round(drained_seconds, 1),
        # How long the consumers took to catch up once the last report was accepted.
        "drain_seconds": round(drained_seconds - sent_seconds, 2),
        "cpu": cpu,
        **(_lag_figures(sampler, lag, began, sent_seconds) if sampler and lag is not None else {}),
    }


def _lag_figures(
    sampler: LagSampler, lag: list[dict[str, Any]], began: float, sent_seconds: float
) -> dict[str, Any]:
    """The lag's samples and its growth while the reports were sent, after the consumers'
    first seconds (their start, not their pace). ``lag_judged`` is false when the samples
    cannot say (too short a run, or sampling failed): such a run is never called kept up."""
    start = began - sampler.origin
    growth = lag_growth(lag, since=start + _WARM_UP, until=start + sent_seconds)
    return {
        "lag_growth_rps": growth,
        "lag_judged": sampler.error is None and all(g is not None for g in growth.values()),
        **({"lag_error": sampler.error} if sampler.error else {}),
        "lag": lag,
    }


def _capture(fault: Callable[[], None], errors: list[BaseException]) -> Callable[[], None]:
    def run() -> None:
        try:
            fault()
        except BaseException as exc:  # re-raised by drive() in the main thread
            errors.append(exc)

    return run


def wait_drained(kafka: KafkaAccess, force: ForceResources, timeout: float) -> None:
    """Until the archiver and the alerter groups have committed every report of the force."""
    admin = AdminClient(client_config(kafka))
    consumer = Consumer(client_config(kafka) | {"group.id": "bench-offsets"})
    try:
        partitions = reports_partitions(consumer, force)
        deadline = time.monotonic() + timeout
        while True:
            try:
                lag = lag_of(admin, consumer, force, partitions)
                behind = [group for group in CONSUMERS if lag[group] > 0]
                if not behind:
                    break
            except KafkaException as exc:
                if not is_transient(exc):
                    raise
                behind = list(CONSUMERS)
            if time.monotonic() > deadline:
                raise LoadError(f"the {', '.join(behind)} did not drain within {timeout:.0f}s")
            time.sleep(0.25)
    finally:
        consumer.close()
