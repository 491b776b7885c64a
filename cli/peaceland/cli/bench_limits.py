"""``peaceland bench limits``: the servers' own limits and the pipeline's, in one run.

Every later change to the data path is judged by the ratios this prints: what the pipeline
stores end to end against what Kafka's own producer and consumer move, and against what our
Cassandra driver writes with the archiver's own writer (``ReportStore``) once with the
archiver's settings and once at one request per row. All on the running stack, minutes apart,
because these machines are too noisy for figures taken on different days to compare.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient

from peaceland.cli import bench_pipeline
from peaceland.loadgen.errors import LoadError
from peaceland.loadgen.fleet import Fleet
from peaceland.loadgen.limits import (
    check_rates,
    climb,
    kafka_consumer_benchmark,
    kafka_producer_benchmark,
    ratio,
)
from peaceland.services.archiver.settings import ArchiverSettings
from peaceland.services.archiver.store import ReportStore
from peaceland.stack import Stack
from peaceland.stack.servers import Kafka
from peaceland.stack.settings import CASSANDRA_VERSION, KAFKA_VERSION
from peaceland.tenants.cassandra import connect, shutdown_session
from peaceland.tenants.forces import resources_for
from peaceland.tenants.kafka import client_config
from peaceland.tenants.provisioning.keyspace import (
    Replication,
    checked_keyspace,
    drop_keyspace,
    ensure_keyspace,
)
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics
from peaceland.tenants.reports import Report, encode_report

Say = Callable[[str], None]

#: Reports handed to Kafka's producer as its payloads (it draws from them at random).
_PAYLOADS = 2_000
#: Reports per ``ReportStore.write``: the archiver's batch.
_CHUNK = ArchiverSettings.model_fields["batch_size"].default


def run(
    stack: Stack,
    *,
    kafka_records: int,
    cassandra_reports: int,
    rates: Sequence[float],
    seconds: float,
    refine: int,
    drones: int,
    seed: int,
    say: Say,
) -> dict[str, Any]:
    """The servers' limits on a scratch force's topic and keyspace, then the pipeline's
    climb; every figure and the ratios between them."""
    check_rates(rates)  # before minutes of measuring, not after
    kafka = stack.server("kafka")
    if not isinstance(kafka, Kafka):
        raise LoadError("bench limits runs Kafka's own tools, which need the stack's Kafka")
    endpoints = stack.endpoints()
    began = datetime.now(UTC)
    machine = {"cores": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)}
    reports = _simulated(drones, seed, 2 * cassandra_reports)
    payloads = [encode_report(r) for r in reports[:_PAYLOADS]]
    force = resources_for(f"bench-{secrets.token_hex(4)}")
    admin = AdminClient(client_config(endpoints.kafka))
    session = connect(endpoints.cassandra)
    group = f"{force.force_id}-limits"
    try:
        ensure_topics(admin, force, TopicSettings(partitions=6))
        java = kafka.tools(say)
        say(f"Kafka's own producer: {kafka_records} of our reports as fast as it goes")
        producer = kafka_producer_benchmark(
            java, endpoints.kafka, force.reports_topic, payloads, kafka_records
        )
        say(f"  {producer['records_per_s']:.0f} records/s")
        say("Kafka's own consumer: the same records from the start")
        consumer = kafka_consumer_benchmark(
            java, endpoints.kafka, force.reports_topic, kafka_records, group=group
        )
        say(f"  {consumer['records_per_s']:.0f} records/s")
        ensure_keyspace(session, force.keyspace, Replication(), retention_days=30)
        say(f"Cassandra: {cassandra_reports} reports at one request per row, 256 in flight")
        raw = _cassandra_writes(
            session,
            force.keyspace,
            reports[:cassandra_reports],
            concurrency=256,
            batch_max_bytes=0,  # every statement larger than a batch: each goes alone
            batch_max_statements=1,
        )
        say(f"  {raw['reports_per_s']:.0f} reports/s ({raw['rows_per_s']:.0f} rows/s)")
        say(f"Cassandra: {cassandra_reports} more with the archiver's settings")
        defaults = ArchiverSettings.model_fields
        archiver = _cassandra_writes(
            session,
            force.keyspace,
            reports[cassandra_reports:],
            concurrency=defaults["write_concurrency"].default,
            batch_max_bytes=defaults["batch_max_bytes"].default,
            batch_max_statements=defaults["batch_max_statements"].default,
        )
        say(f"  {archiver['reports_per_s']:.0f} reports/s")
        _check_stored(session, force.keyspace, len(reports))
    finally:
        _tidy(
            say,
            ("the scratch topics", lambda: delete_topics(admin, force)),
            (
                "the consumer group",
                lambda: admin.delete_consumer_groups([group])[group].result(timeout=30),
            ),
            ("the scratch keyspace", lambda: drop_keyspace(session, force.keyspace)),
            ("the Cassandra session", lambda: shutdown_session(session)),
        )
    pipeline = climb(
        lambda rate: bench_pipeline.run(
            stack,
            reports=max(100, int(rate * seconds)),
            rate=rate,
            drones=drones,
            seed=seed,
            batch=50,
            keep=False,
            say=say,
            lag_every=1.0,
        ),
        rates,
        say,
        refine=refine,
    )
    # A rate kept up is stored at that rate in the steady state; a run's own stored rate
    # also pays the few seconds of the last reports' way through, which is not a limit.
    best = pipeline["highest_rate_kept_up"]
    return {
        "started": began.isoformat(timespec="seconds"),
        "scratch_force": force.force_id,
        "machine": machine,
        "servers": {"kafka": KAFKA_VERSION, "cassandra": CASSANDRA_VERSION},
        "report_bytes": round(sum(map(len, payloads)) / len(payloads), 1),
        "kafka_producer": producer,
        "kafka_consumer": consumer,
        "cassandra_one_request_per_row": raw,
        "cassandra_archiver_writer": archiver,
        "pipeline": pipeline,
        "ratios": {
            "pipeline_to_kafka_producer": ratio(best, producer["records_per_s"]),
            "pipeline_to_kafka_consumer": ratio(best, consumer["records_per_s"]),
            "pipeline_to_cassandra_one_request_per_row": ratio(best, raw["reports_per_s"]),
            "pipeline_to_cassandra_archiver_writer": ratio(best, archiver["reports_per_s"]),
            "capacity_to_cassandra_archiver_writer": ratio(
                pipeline["capacity_rps"], archiver["reports_per_s"]
            ),
            "archiver_writer_to_one_request_per_row": ratio(
                archiver["reports_per_s"], raw["reports_per_s"]
            ),
        },
    }


def writer(
    stack: Stack,
    *,
    reports: int,
    settings: Sequence[tuple[int, int]],
    drones: int,
    seed: int,
    say: Say,
) -> dict[str, Any]:
    """The archiver's writer alone, on a scratch keyspace, with each of ``settings``
    (requests in flight, statements per batch): each on reports of its own."""
    endpoints = stack.endpoints()
    made = _simulated(drones, seed, reports * len(settings))
    force = resources_for(f"bench-{secrets.token_hex(4)}")
    session = connect(endpoints.cassandra)
    runs = []
    try:
        ensure_keyspace(session, force.keyspace, Replication(), retention_days=30)
        for at, (concurrency, statements) in enumerate(settings):
            say(f"{reports} reports, {concurrency} requests in flight, batches of {statements}")
            run = _cassandra_writes(
                session,
                force.keyspace,
                made[at * reports : (at + 1) * reports],
                concurrency=concurrency,
                batch_max_bytes=ArchiverSettings.model_fields["batch_max_bytes"].default
                if statements > 1
                else 0,
                batch_max_statements=statements,
            )
            say(f"  {run['reports_per_s']:.0f} reports/s")
            runs.append(run)
        _check_stored(session, force.keyspace, len(made))
    finally:
        _tidy(
            say,
            ("the scratch keyspace", lambda: drop_keyspace(session, force.keyspace)),
            ("the Cassandra session", lambda: shutdown_session(session)),
        )
    return {"machine": {"cores": os.cpu_count()}, "runs": runs}


def _tidy(say: Say, *steps: tuple[str, Callable[[], object]]) -> None:
    """Each step of a clean-up, whatever became of the ones before it."""
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # a clean-up reports, it does not hide the run's own error
            say(f"could not remove {what}: {exc}")


def _cassandra_writes(
    session: Session,
    keyspace: str,
    reports: list[Report],
    *,
    concurrency: int,
    batch_max_bytes: int,
    batch_max_statements: int,
) -> dict[str, Any]:
    """``reports`` written by the archiver's own writer, a batch of the archiver's size at a
    time; every one must be stored."""
    store = ReportStore(
        session,
        keyspace,
        concurrency,
        batch_max_bytes=batch_max_bytes,
        batch_max_statements=batch_max_statements,
    )
    # Cassandra warns of every unlogged batch over several partitions (the archiver's): a
    # line per batch would bury the figures, which say what those batches cost.
    warnings = logging.getLogger("cassandra.protocol")
    level = warnings.level
    warnings.setLevel(logging.ERROR)
    try:
        began = time.perf_counter()
        for at in range(0, len(reports), _CHUNK):
            outcome = store.write(reports[at : at + _CHUNK])
            if outcome.failed or outcome.refused:
                problems = [str(error) for _, error in outcome.failed[:3]]
                problems += [reason for _, _, reason in outcome.refused[:3]]
                raise LoadError(f"Cassandra did not store every report: {problems}")
        seconds = time.perf_counter() - began
    finally:
        warnings.setLevel(level)
    rows = sum(2 + len(report.sightings()) for report in reports)
    return {
        "reports": len(reports),
        "rows": rows,
        "concurrency": concurrency,
        "batch_max_statements": batch_max_statements,
        "seconds": round(seconds, 2),
        "reports_per_s": round(len(reports) / seconds, 1),
        "rows_per_s": round(rows / seconds, 1),
    }


def _simulated(drones: int, seed: int, count: int) -> list[Report]:
    """``count`` reports of a simulated fleet, from a day ago (inside any retention)."""
    start = (datetime.now(UTC) - timedelta(days=1)).replace(second=0, microsecond=0)
    made = list(islice(Fleet(drones=drones, seed=seed).reports(start), count))
    if len(made) < count:
        raise LoadError("the simulated fleet made fewer reports than asked")
    return made


def _check_stored(session: Session, keyspace: str, written: int) -> None:
    """Every report written has its id in the keyspace, or the run says how many do not."""
    row = session.execute(
        f"SELECT COUNT(*) FROM {checked_keyspace(keyspace)}.report_ids", timeout=60
    ).one()
    if int(row[0]) != written:
        raise LoadError(f"Cassandra holds {row[0]} report ids after writing {written}")
