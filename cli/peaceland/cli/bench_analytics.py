"""``peaceland bench analytics``: the lake's size per report and its queries' speed.

Two parts, each honest about what it measures:

1. **Bytes per report**: a sample of the simulated fleet's reports goes through the real
   path (the data contract's JSON, then ``report_rows`` and ``LakeWriter``, whose files the
   lake consumer writes): lake bytes (reports and sightings tables) over raw JSON bytes.
2. **Query speed** at volume: days of reports for one force are generated straight into
   the lake by DuckDB (a fast path, not through Kafka: 10 M reports through the consumer
   would take the better part of an hour here), in the lake's layout and tables, with the
   fleet's shape (0 to 8 citizens, 0 to 40 words, 1 % of reports with a low score, alerts
   for those, officers acting on 80 % of them). Then every predefined statistic and a few
   ad-hoc queries run over the whole range, on DuckDB and on Spark (local), each timed.

Every figure is a JSON object on its own line: ``{"query", "engine", "reports", "seconds"}``
for queries.
"""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from peaceland.analytics.compaction import Compactor, live_files, reading_of
from peaceland.analytics.lake import (
    ArrowStorage,
    LakeWriter,
    LocalStorage,
    open_storage,
    rows_of_reports,
)
from peaceland.analytics.rollups import COMPACTED, KINDS
from peaceland.analytics.sql import QueryLimits, run_query
from peaceland.analytics.stats import STATISTICS, ForceLake, Options, Window
from peaceland.loadgen.fleet import VOCABULARY, Fleet
from peaceland.services.lake.consumer import LakeConsumer
from peaceland.services.lake.settings import LakeSettings
from peaceland.stack import Endpoints
from peaceland.tenants.forces import resources_for
from peaceland.tenants.kafka import client_config, producer_config
from peaceland.tenants.objectstore import S3Access
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics
from peaceland.tenants.reports import Report, encode_report

FORCE: Final = "bench-analytics"
START: Final = datetime(2026, 1, 5, tzinfo=UTC)

#: Questions nobody thought of when the statistics were written.
AD_HOC: Final = {
    "drones-per-day": (
        "SELECT date, count(DISTINCT drone_id) AS drones, count(*) AS reports "
        "FROM reports GROUP BY date ORDER BY date"
    ),
    "low-scores-by-hour-of-day": (
        "SELECT hour, count(*) AS sightings, avg(score) AS mean_score "
        "FROM sightings WHERE score < 30 GROUP BY hour ORDER BY hour"
    ),
    "citizen-trail": (
        "SELECT timestamp, drone_id, latitude, longitude FROM sightings "
        "WHERE citizen = 'Alice Martin' AND date = DATE '2026-01-06' ORDER BY timestamp"
    ),
    "words-near-alerts": (
        "SELECT w, count(*) AS n FROM (SELECT unnest(r.words) AS w FROM reports r "
        "JOIN alerts a ON a.report_id = r.report_id) GROUP BY w ORDER BY n DESC LIMIT 10"
    ),
}

Emit = Callable[[dict[str, Any]], None]


def bytes_per_report(
    sample: int, folder: Path, drones: int = 500, store: S3Access | None = None
) -> dict[str, Any]:
    """Lake bytes (reports + sightings) per raw JSON byte, through the real writer: as the
    consumer writes them (a file per minute: its default flush, one partition), then once
    its hours are compacted (``Compactor``, as the consumer runs it). ``store``: on that S3
    store instead of ``folder`` (a folder of its bucket of its own, removed afterwards; the
    hours copied into ``folder`` to be compacted, as the consumer does)."""
    fleet = Fleet(drones=drones, seed=7)
    reports = list(fleet.reports(START, minutes=max(1, -(-sample // drones))))[:sample]
    raw = sum(len(encode_report(r)) for r in reports)
    if store is None:
        storage: LocalStorage | ArrowStorage = LocalStorage(folder)
    else:
        opened = open_storage(
            store.lake_uri(f"bench-{uuid.uuid4().hex[:8]}"),
            s3_keys=(store.access_key, store.secret_key),
        )
        assert isinstance(opened, ArrowStorage)
        storage = opened
    try:
        return _sized(storage, folder, reports, raw, drones, "s3" if store else "disk")
    finally:
        if isinstance(storage, ArrowStorage):
            storage.filesystem.delete_dir_contents(storage.root, missing_dir_ok=True)


def _sized(
    storage: LocalStorage | ArrowStorage,
    folder: Path,
    reports: list[Report],
    raw: int,
    drones: int,
    where: str,
) -> dict[str, Any]:
    writer = LakeWriter(storage, FORCE)
    writer.resume("reports", 0)
    for first in range(0, len(reports), drones):  # a minute of the fleet per flush
        minute = reports[first : first + drones]
        writer.write("reports", 0, first + len(minute) - 1, rows_of_reports(minute))

    def sizes() -> dict[str, int]:
        listed = {f.path: f.size for f in storage.list(FORCE, times=False)}
        if isinstance(storage, LocalStorage):
            listed = {path: (folder / path).stat().st_size for path in listed}
        return {
            table: sum(listed[path] for path in live_files(storage, FORCE, table))
            for table in ("reports", "sightings")
        }

    flushed = sizes()
    began = time.perf_counter()
    compactor = Compactor(
        storage,
        FORCE,
        fence=lambda: None,
        work_dir=folder / "work",
        settle=timedelta(0),
        clock=lambda: time.time() + 1,
    )
    compacted = compactor.run().compacted
    seconds = time.perf_counter() - began
    after = sizes()
    n = len(reports)
    return {
        "metric": "lake_bytes_per_report",
        "lake": where,
        "reports": n,
        "raw_json_bytes_per_report": round(raw / n, 1),
        "flushed_files": sum(c.sources for c in compacted),
        "lake_bytes_per_report": round(sum(flushed.values()) / n, 1),
        "lake_share_of_raw": round(sum(flushed.values()) / raw, 4),
        "compacted_files": len(compacted),
        "compacted_bytes_per_report": round(sum(after.values()) / n, 1),
        "compacted_reports_table_bytes_per_report": round(after["reports"] / n, 1),
        "compacted_sightings_table_bytes_per_report": round(after["sightings"] / n, 1),
        "compacted_share_of_raw": round(sum(after.values()) / raw, 4),
        "compaction_seconds": round(seconds, 2),
        "compaction_reports_per_second": round(n / seconds),
    }


#: Ways to encode the compacted ``reports`` and ``sightings`` tables (``encodings``), each
#: lossless: the same rows, read back equal. What each changes, beside the compactor's.
ENCODINGS: Final[Mapping[str, str]] = {
    "as-compacted": "the compactor's settings (zstd 6, dictionaries)",
    "delta-times": "timestamps delta-encoded (DELTA_BINARY_PACKED)",
    "delta-times+binary-ids": "and report_id as its 16 bytes instead of 36 characters",
    "delta-times+binary-ids+no-sighting-ids": "and no report_id in sightings",
}


def encodings(folder: Path, raw_bytes: float, reports: int) -> Iterator[dict[str, Any]]:
    """The compacted reports and sightings of the size sample at ``folder`` (one file per
    hour) written again each way of ``ENCODINGS``: bytes per report, and the share of the
    raw JSON. What is left to reach the 15 % target, measured rather than guessed."""
    storage = LocalStorage(folder)
    tables = {
        table: [pq.read_table(folder / path) for path in live_files(storage, FORCE, table)]
        for table in ("reports", "sightings")
    }
    for variant, description in ENCODINGS.items():
        sizes: dict[str, int] = {}
        for table, hours in tables.items():
            sizes[table] = 0
            for hour in hours:
                encoded = hour
                options: dict[str, Any] = {}
                if variant != "as-compacted":
                    options["column_encoding"] = {"timestamp": "DELTA_BINARY_PACKED"}
                    options["use_dictionary"] = [
                        c for c in encoded.column_names if c != "timestamp"
                    ] + (["words.list.element"] if table == "reports" else [])
                if "binary-ids" in variant:
                    ids = pa.array(
                        [uuid.UUID(i).bytes for i in encoded["report_id"].to_pylist()],
                        pa.binary(16),
                    )
                    encoded = encoded.set_column(
                        encoded.column_names.index("report_id"), "report_id", ids
                    )
                if "no-sighting-ids" in variant and table == "sightings":
                    encoded = encoded.drop_columns(["report_id"])
                    options["use_dictionary"].remove("report_id")
                sink = io.BytesIO()
                pq.write_table(
                    encoded, sink, compression="zstd", compression_level=6,
                    dictionary_pagesize_limit=8 * 1024 * 1024, row_group_size=262_144,
                    **options,
                )  # fmt: skip
                if not pq.read_table(io.BytesIO(sink.getvalue())).equals(encoded):
                    raise RuntimeError(f"{variant}: {table} did not read back as written")
                sizes[table] += len(sink.getvalue())
        total = sum(sizes.values())
        yield {
            "metric": "lake_encoding",
            "variant": variant,
            "what": description,
            "reports": reports,
            "bytes_per_report": round(total / reports, 1),
            "reports_table_bytes_per_report": round(sizes["reports"] / reports, 1),
            "sightings_table_bytes_per_report": round(sizes["sightings"] / reports, 1),
            "share_of_raw": round(total / reports / raw_bytes, 4),
        }


def _literal(texts: Iterable[str]) -> str:
    """A SQL list of texts."""
    return "[" + ", ".join("'" + t.replace("'", "''") + "'" for t in texts) + "]"


def _names() -> str:
    fleet = Fleet(drones=1, seed=7)
    return _literal(sorted({c.name for c in fleet.population.ordinary})[:2_000])


def seal(force: Path) -> int:
    """Name each generated hour's one file as compaction names its own (``COMPACTED``):
    the generated lake is what compaction leaves, one file per hour with each report once
    (its ids are drawn afresh), so the statistics read it as they read a compacted lake.
    How many files were renamed (none the second time)."""
    renamed = 0
    for hour in sorted(force.glob("*/date=*/hour=*")):
        files = sorted(hour.glob("*.parquet"))
        if len(files) == 1 and not files[0].name.startswith(COMPACTED):
            files[0].rename(hour / f"{COMPACTED}generated.parquet")
            renamed += 1
    return renamed


def roll_up(root: Path, reports: int) -> dict[str, Any]:
    """Make the rollups of every hour (``peaceland.analytics.rollups``) as the lake
    consumer's compactor does (each hour in a child process held to the consumer's
    memory budget), timed: what ``coverage`` and ``words`` read. None made when those of
    a previous run hold."""
    storage = LocalStorage(root)
    compactor = Compactor(
        storage,
        FORCE,
        fence=lambda: None,
        memory_mb=LakeSettings.model_fields["compact_memory_mb"].default,
        seconds=86_400.0,
        isolated=True,
    )
    began = time.perf_counter()
    done = compactor.run()
    seconds = time.perf_counter() - began
    if done.rollups_failed:
        raise RuntimeError(f"{len(done.rollups_failed)} hour(s) could not be rolled up")
    taken = reading_of(storage, FORCE).files
    return {
        "metric": "rollups",
        "hours": len(done.rolled_up),
        "reports": reports,
        "seconds": round(seconds, 1),
        "reports_per_second": round(reports / seconds) if done.rolled_up else None,
        # Those a reader takes (stale ones of an earlier run linger a while).
        "rollup_bytes": sum(
            Path(storage.locate(path)).stat().st_size for kind in KINDS for path in taken[kind]
        ),
    }


def generate(root: Path, reports: int, days: int, drones: int = 1_000) -> dict[str, Any]:
    """Write ``reports`` reports over ``days`` days into the lake at ``root`` with DuckDB,
    with their sightings, alerts and officers' actions."""
    began = time.perf_counter()
    force = root / FORCE
    shutil.rmtree(force, ignore_errors=True)
    force.mkdir(parents=True)
    words = _literal(VOCABULARY)
    span_ms = days * 86_400_000
    con = duckdb.connect(config={"threads": 2, "memory_limit": "6GB"})
    con.execute(f"SET temp_directory = '{root / '.tmp'}'")
    con.execute(
        f"""
        CREATE TABLE generated AS
        SELECT uuid()::VARCHAR AS report_id,
               'drone-' || lpad((i % {drones})::VARCHAR, 4, '0') AS drone_id,
               TIMESTAMP '{START:%Y-%m-%d %H:%M:%S}'
                   + to_milliseconds((i * {span_ms} // {reports})::BIGINT) AS timestamp,
               round(48.8566 + (random() - 0.5) * 0.15, 6) AS latitude,
               round(2.3522 + (random() - 0.5) * 0.25, 6) AS longitude,
               random() < 0.01 AS low,
               list_transform(
                   range((random() * 9)::INTEGER),
                   lambda x: {{'name': {_names()}[1 + (random() * 1999)::INTEGER],
                         'score': round(20 + random() * 80, 2)}}
               ) AS citizens,
               list_transform(range((random() * 41)::INTEGER),
                              lambda x: {words}[1 + (random() * {len(VOCABULARY) - 1})::INTEGER])
                   AS words
        FROM range({reports}) t(i)
        """
    )
    con.execute(
        """
        UPDATE generated SET citizens = list_prepend(
            {'name': 'Suspect ' || (random() * 199)::INTEGER, 'score': round(random() * 19.99, 2)},
            citizens)
        WHERE low
        """
    )
    partition = "strftime({0}, '%Y-%m-%d') AS date, strftime({0}, '%H') AS hour"
    copy = "(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date, hour), OVERWRITE_OR_IGNORE)"
    con.execute(
        f"""COPY (SELECT report_id, drone_id, timestamp, latitude, longitude, words,
                         len(citizens)::SMALLINT AS citizen_count,
                         list_min(list_transform(citizens, lambda c: c.score)) AS lowest_score,
                         {partition.format("timestamp")}
                  FROM generated ORDER BY timestamp)
            TO '{force / "reports"}' {copy}"""
    )
    con.execute(
        f"""COPY (SELECT report_id, drone_id, timestamp, latitude, longitude,
                         c.name AS citizen, c.score AS score, {partition.format("timestamp")}
                  FROM (SELECT *, unnest(citizens) AS c FROM generated) ORDER BY timestamp)
            TO '{force / "sightings"}' {copy}"""
    )
    con.execute(
        """CREATE TABLE raised AS
           SELECT 'raised' AS event, uuid()::VARCHAR AS alert_id, c.name AS citizen,
                  c.score AS score, drone_id, report_id, latitude, longitude,
                  timestamp AS reported_at, timestamp AS opened_at,
                  timestamp + INTERVAL 150 MILLISECOND AS raised_at
           FROM (SELECT *, unnest(citizens) AS c FROM generated WHERE low)
           WHERE c.score < 20"""
    )
    con.execute(
        f"""COPY (SELECT *, {partition.format("raised_at")} FROM raised ORDER BY raised_at)
            TO '{force / "alerts"}' {copy}"""
    )
    con.execute(
        f"""COPY (
            SELECT alert_id, seq, action, state, 'officer@bench.peaceland.local' AS actor,
                   "at", raised_at, NULL::VARCHAR AS assignee, NULL::VARCHAR AS note,
                   {partition.format('"at"')}
            FROM (
                SELECT alert_id, 1::BIGINT AS seq, 'acknowledge' AS action,
                       'acknowledged' AS state,
                       raised_at + to_milliseconds((10000 + random() * 590000)::BIGINT) AS "at",
                       raised_at
                FROM raised WHERE random() < 0.8
            ) ORDER BY "at")
            TO '{force / "lifecycle"}' {copy}"""
    )
    counts = {
        table: con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]  # type: ignore[index]
        for table, source in (("reports", "generated"), ("alerts", "raised"))
    }
    con.close()
    shutil.rmtree(root / ".tmp", ignore_errors=True)
    size = sum(p.stat().st_size for p in force.rglob("*.parquet"))
    return {
        "metric": "generated",
        "reports": counts["reports"],
        "alerts": counts["alerts"],
        "days": days,
        "lake_bytes": size,
        "lake_bytes_per_report": round(size / max(counts["reports"], 1), 1),
        "seconds": round(time.perf_counter() - began, 1),
    }


def queries(root: Path, reports: int, days: int, engines: list[str]) -> Iterator[dict[str, Any]]:
    """Time every predefined statistic over the whole range, and the ad-hoc queries."""
    window = Window(START, START + timedelta(days=days))
    storage = LocalStorage(root)
    if "duckdb" in engines:
        began = time.perf_counter()
        spill = root / ".spill"
        spill.mkdir(exist_ok=True)
        lake = ForceLake(storage, FORCE, memory_limit="4GB", spill=spill)
        yield {"query": "(open the force's tables)", "engine": "duckdb", "reports": reports,
               "seconds": round(time.perf_counter() - began, 3)}  # fmt: skip
        for name in STATISTICS:
            for attempt in ("cold", "warm"):
                began = time.perf_counter()
                lake.answer(name, window, Options())
                yield {"query": name, "engine": "duckdb", "reports": reports, "run": attempt,
                       "seconds": round(time.perf_counter() - began, 3)}  # fmt: skip
        for name, sql in AD_HOC.items():
            result = run_query(lake, sql, QueryLimits(seconds=600, rows=100_000))
            yield {"query": name, "engine": "duckdb", "reports": reports,
                   "seconds": result.seconds, "rows": len(result.rows)}  # fmt: skip
        lake.close()
    if "spark" in engines:
        from peaceland.analytics.spark import SparkForceLake, local_spark  # noqa: PLC0415 - a JVM

        began = time.perf_counter()
        spark = local_spark(threads=2, memory="4g")
        spark_lake = SparkForceLake(spark, storage, FORCE)
        yield {"query": "(start Spark, open the force's tables)", "engine": "spark",
               "reports": reports, "seconds": round(time.perf_counter() - began, 3)}  # fmt: skip
        try:
            for name in STATISTICS:
                began = time.perf_counter()
                spark_lake.answer(name, window, Options())
                yield {"query": name, "engine": "spark", "reports": reports,
                       "seconds": round(time.perf_counter() - began, 3)}  # fmt: skip
        finally:
            spark.stop()


def run(
    reports: int,
    days: int,
    sample: int,
    engines: list[str],
    lake: Path,
    emit: Emit,
    *,
    reuse: bool = False,
    with_encodings: bool = False,
    store: S3Access | None = None,
) -> None:
    """Measure, emitting each figure as it comes (``reuse``: the lake a previous run
    generated with the same reports and days, if there is one; ``with_encodings``: the
    size sample written again each way of ``ENCODINGS``; ``store``: the size sample
    written and compacted on that S3 store too)."""
    lake.mkdir(parents=True, exist_ok=True)
    sample_dir = lake / ".sample"
    shutil.rmtree(sample_dir, ignore_errors=True)
    sized = bytes_per_report(sample, sample_dir)
    emit(sized)
    if with_encodings:
        for figure in encodings(sample_dir, sized["raw_json_bytes_per_report"], sample):
            emit(figure)
    shutil.rmtree(sample_dir, ignore_errors=True)
    if store is not None:
        emit(bytes_per_report(sample, sample_dir, store=store))
        shutil.rmtree(sample_dir, ignore_errors=True)
    marker = lake / f".{FORCE}.json"
    made = json.loads(marker.read_text()) if marker.exists() else {}
    if reuse and made.get("reports") == reports and made.get("days") == days:
        emit(made | {"reused": True})
    else:
        marker.unlink(missing_ok=True)
        made = generate(lake, reports, days)
        marker.write_text(json.dumps(made))
        emit(made)
    seal(lake / FORCE)
    emit(roll_up(lake, reports))
    for figure in queries(lake, reports, days, engines):
        emit(figure)


def emit_json(figure: dict[str, Any]) -> None:
    print(json.dumps(figure), flush=True)  # noqa: T201 - the benchmark's output


def consumer_rate(endpoints: Endpoints, reports: int, folder: Path) -> dict[str, Any]:
    """The lake consumer's sustained records/s on the real Kafka: ``reports`` already in a
    bench force's topic (6 partitions), read, written to a lake on this disk and committed
    by one consumer process's loop (in this process, on its own thread)."""
    force = f"bench-lake-{uuid.uuid4().hex[:8]}"
    resources = resources_for(force)
    admin = AdminClient(client_config(endpoints.kafka))
    ensure_topics(admin, resources, TopicSettings(partitions=6, replication_factor=1))
    try:
        producer = Producer(producer_config(endpoints.kafka, linger_ms=20))
        fleet = Fleet(drones=1_000, seed=3)
        # Stamped now: the consumer refuses a report older than the data contract allows.
        for index, report in enumerate(fleet.live_reports()):
            if index == reports:
                break
            while True:
                try:
                    producer.produce(resources.reports_topic, encode_report(report))
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.flush(60)
        settings = LakeSettings(
            force_id=force, lake_uri=str(folder), flush_seconds=5, **endpoints.settings()
        )
        consumer = LakeConsumer(settings, LakeWriter(LocalStorage(folder), force))
        stop = threading.Event()
        thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
        began = time.perf_counter()
        thread.start()
        deadline = began + max(300.0, reports / 100)
        while consumer.counters.written < reports and time.perf_counter() < deadline:
            time.sleep(0.05)
        seconds = time.perf_counter() - began
        stop.set()
        thread.join(60)
    finally:
        delete_topics(admin, resources)
        shutil.rmtree(folder / force, ignore_errors=True)
    if consumer.counters.skipped:
        raise RuntimeError(f"{consumer.counters.skipped} bench reports were refused as broken")
    return {
        "metric": "lake_consumer",
        "records": consumer.counters.written,
        "partitions": 6,
        "seconds": round(seconds, 1),
        "records_per_second": round(consumer.counters.written / seconds),
        "files": consumer.counters.files,
        "skipped_as_broken": consumer.counters.skipped,
    }
