"""The lake consumer on the real Kafka, writing a real directory: every record once."""

from __future__ import annotations

import errno
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
from confluent_kafka import Producer

from peaceland.analytics.compaction import journals
from peaceland.analytics.lake import LakeWriter, LocalStorage, table_dir
from peaceland.analytics.rollups import COMPACTED
from peaceland.analytics.stats import ForceLake
from peaceland.node.launch import ServiceProcess
from peaceland.services.lake.consumer import LakeConsumer
from peaceland.services.lake.settings import LakeSettings
from peaceland.stack import Endpoints, Stack
from peaceland.tenants.alerts import encode_alert
from peaceland.tenants.environment import env_name
from peaceland.tenants.forces import ForceResources, consumer_group
from peaceland.tenants.kafka import producer_config
from peaceland.tenants.lifecycle import Transition, encode_transition
from peaceland.tenants.reports import encode_report, utc_now
from tests.factories import make_alert, make_report
from tests.kafka_helpers import Sender, committed_total, produce, wait_until
from tests.lake_storage import DelegatingStorage

pytestmark = pytest.mark.timeout(600)


def _settings(
    force: ForceResources, endpoints: Endpoints, lake: Path, **fields: Any
) -> LakeSettings:
    return LakeSettings(
        force_id=force.force_id,
        lake_uri=str(lake),
        **({"flush_seconds": 0.5} | fields),
        **endpoints.settings(),
    )


@contextmanager
def running(consumer: LakeConsumer) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the lake consumer did not stop within 30s"


def _column(lake: Path, force: ForceResources, table: str, column: str) -> list[str]:
    files = lake / force.force_id / table / "**" / "*.parquet"
    if not list((lake / force.force_id).glob(f"{table}/**/*.parquet")):
        return []
    rows = duckdb.connect().execute(
        f"SELECT {column} FROM read_parquet('{files}', hive_partitioning=true)"
    )
    return [str(row[0]) for row in rows.fetchall()]


def _committed(endpoints: Endpoints, force: ForceResources, topic: str) -> int:
    return committed_total(endpoints.kafka, consumer_group(force.force_id, "lake"), topic)


def test_reports_alerts_and_transitions_reach_the_lake_once_and_are_committed(
    force: ForceResources, endpoints: Endpoints, tmp_path: Path
):
    rng = random.Random(7)
    reports = [make_report(rng, citizens=2) for _ in range(300)]
    alerts = [make_alert(force.force_id, f"Citizen {i}", utc_now()) for i in range(20)]
    transitions = [
        Transition(
            force_id=force.force_id,
            alert_id=a.alert_id,
            seq=1,
            action="acknowledge",
            state="acknowledged",
            actor="officer@example.org",
            at=a.raised_at + timedelta(seconds=30),
            raised_at=a.raised_at,
        )
        for a in alerts
    ]
    produce(endpoints.kafka, force.reports_topic, [(None, encode_report(r)) for r in reports])
    # What breaks the contract is skipped (the archiver dead-letters it), never stops the lake.
    produce(endpoints.kafka, force.reports_topic, [(None, b"{not json"), (None, None)])
    produce(endpoints.kafka, force.alerts_topic, [(None, encode_alert(a)) for a in alerts])
    # Valid records the lake's columns cannot hold are skipped too, never retried forever.
    unstorable = [
        transitions[0].model_copy(update={"seq": 2**63}),
        transitions[0].model_copy(
            update={"at": datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))}
        ),
    ]
    produce(
        endpoints.kafka,
        force.lifecycle_topic,
        [(None, encode_transition(t)) for t in [*transitions, *unstorable]],
    )
    consumer = LakeConsumer(
        _settings(force, endpoints, tmp_path),
        LakeWriter(LocalStorage(tmp_path), force.force_id),
    )
    with running(consumer):
        wait_until(
            lambda: (
                _committed(endpoints, force, force.reports_topic) == 302
                and _committed(endpoints, force, force.alerts_topic) == 20
                and _committed(endpoints, force, force.lifecycle_topic) == 22
            ),
            60,
            "the lake consumer committing every record",
        )
    assert sorted(_column(tmp_path, force, "reports", "report_id")) == sorted(
        str(r.report_id) for r in reports
    )
    assert len(_column(tmp_path, force, "sightings", "citizen")) == 600
    assert sorted(_column(tmp_path, force, "alerts", "alert_id")) == sorted(
        str(a.alert_id) for a in alerts
    )
    assert sorted(_column(tmp_path, force, "lifecycle", "alert_id")) == sorted(
        str(a.alert_id) for a in alerts
    )
    assert consumer.counters.skipped == 4

    # A second consumer of the same group, from a lake that was already written past the
    # committed offsets (as after a crash between writing and committing): nothing doubles.
    more = [make_report(rng, citizens=1) for _ in range(50)]
    produce(endpoints.kafka, force.reports_topic, [(None, encode_report(r)) for r in more])
    again = LakeConsumer(
        _settings(force, endpoints, tmp_path),
        LakeWriter(LocalStorage(tmp_path), force.force_id),
    )
    with running(again):
        wait_until(
            lambda: _committed(endpoints, force, force.reports_topic) == 352,
            60,
            "the second consumer committing the new reports",
        )
    ids = _column(tmp_path, force, "reports", "report_id")
    assert len(ids) == len(set(ids)) == 350


@dataclass
class Outage(DelegatingStorage):
    """The real directory, unless ``down``: then every write fails as a lost disk does."""

    down: bool = False
    refused: int = 0

    def put(self, path: str, data: bytes) -> None:
        if self.down:
            self.refused += 1
            raise OSError(errno.EIO, "Input/output error", path)
        self.inner.put(path, data)

    def get(self, path: str) -> bytes | None:
        if self.down:
            self.refused += 1
            raise OSError(errno.EIO, "Input/output error", path)
        return self.inner.get(path)


def test_a_lake_outage_is_retried_and_sigterm_still_stops_the_consumer(
    force: ForceResources, endpoints: Endpoints, tmp_path: Path
):
    rng = random.Random(12)
    storage = Outage(LocalStorage(tmp_path))
    consumer = LakeConsumer(
        _settings(force, endpoints, tmp_path, retry_backoff_max=0.5),
        LakeWriter(storage, force.force_id),
    )
    before = [make_report(rng) for _ in range(20)]
    produce(endpoints.kafka, force.reports_topic, [(None, encode_report(r)) for r in before])
    after = [make_report(rng) for _ in range(20)]
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: _committed(endpoints, force, force.reports_topic) == 20, 60, "the first reports"
        )
        storage.down = True
        produce(endpoints.kafka, force.reports_topic, [(None, encode_report(r)) for r in after])
        wait_until(lambda: storage.refused >= 3, 60, "the lake's writes failing and retried")
        assert _committed(endpoints, force, force.reports_topic) == 20
    finally:
        # SIGTERM while the lake is down: the consumer stops (what it could not write is
        # read again by the next one); it does not retry forever.
        stop.set()
        thread.join(20)
    assert not thread.is_alive(), "the lake consumer ignored SIGTERM during an outage"
    # Its heir starts while the lake is still down: taking the partitions over is retried
    # too (the lake's state cannot be read), until the lake is back.
    heir = LakeConsumer(_settings(force, endpoints, tmp_path), LakeWriter(storage, force.force_id))
    refused = storage.refused
    with running(heir):
        wait_until(lambda: heir.retries >= 2, 60, "the heir retrying to take over")
        assert storage.refused > refused
        storage.down = False
        wait_until(lambda: _committed(endpoints, force, force.reports_topic) == 40, 60, "the rest")
    assert sorted(_column(tmp_path, force, "reports", "report_id")) == sorted(
        str(r.report_id) for r in before + after
    )


def test_the_memory_budget_writes_buffers_before_their_time(
    force: ForceResources, endpoints: Endpoints, tmp_path: Path
):
    rng = random.Random(13)
    reports = [make_report(rng, citizens=3) for _ in range(200)]
    consumer = LakeConsumer(
        _settings(force, endpoints, tmp_path, flush_seconds=3600, flush_bytes=16 * 1024),
        LakeWriter(LocalStorage(tmp_path), force.force_id),
    )
    with running(consumer):
        produce(endpoints.kafka, force.reports_topic, [(None, encode_report(r)) for r in reports])
        wait_until(
            lambda: _committed(endpoints, force, force.reports_topic) >= 150,
            60,
            "buffers past the budget written and committed within the hour",
        )


def test_the_consumer_compacts_settled_hours_and_deletes_those_past_the_retention(
    force: ForceResources, endpoints: Endpoints, tmp_path: Path
):
    rng = random.Random(14)
    hours_ago = utc_now() - timedelta(hours=3)
    kept = [make_report(rng, at=hours_ago, citizens=1) for _ in range(200)]
    expired = [make_report(rng, at=utc_now() - timedelta(days=2)) for _ in range(20)]
    # None on partition 0, whose holder compacts: it holds it from its assignment on.
    producer = Producer(producer_config(endpoints.kafka))
    for report in [*kept, *expired]:
        producer.produce(force.reports_topic, encode_report(report), partition=1)
    assert producer.flush(30) == 0
    settings = _settings(
        force,
        endpoints,
        tmp_path,
        flush_records=25,  # many small files
        compact_every_seconds=0.5,
        compact_settle_seconds=10,
        compact_linger_seconds=1,
        retention_days=1,
    )
    consumer = LakeConsumer(settings, LakeWriter(LocalStorage(tmp_path), force.force_id))
    storage = LocalStorage(tmp_path)
    hours = {r.timestamp.strftime("%Y-%m-%d %H") for r in kept}

    def compacted() -> bool:
        on_disk = [f.path for f in storage.list(table_dir(force.force_id, "reports"))]
        return (
            len(on_disk) == len(hours)
            and all(p.rsplit("/", 1)[1].startswith(COMPACTED) for p in on_disk)
            and not journals(storage, force.force_id)
        )

    with running(consumer):
        wait_until(
            lambda: _committed(endpoints, force, force.reports_topic) == 220,
            60,
            "the lake consumer committing every report",
        )
        wait_until(compacted, 60, "one file per hour, the replaced ones released")
    assert consumer.counters.compacted >= len(hours)
    assert consumer.counters.expired >= 1
    with ForceLake(storage, force.force_id) as lake:
        found = lake.connection.execute("SELECT CAST(report_id AS TEXT) FROM reports").fetchall()
    assert sorted(row[0] for row in found) == sorted(str(r.report_id) for r in kept)


def _lake_process(
    force: ForceResources, endpoints: Endpoints, lake: Path, state_dir: Path
) -> ServiceProcess:
    env = endpoints.environment() | {
        env_name("lake", "force_id"): force.force_id,
        env_name("lake", "lake_uri"): str(lake),
        env_name("lake", "flush_seconds"): "0.3",
        env_name("lake", "flush_records"): "400",
        env_name("lake", "metrics_port"): "0",
    }
    return ServiceProcess("lake", force.force_id, env, state_dir)


def killed_while_writing(
    process: ServiceProcess,
    endpoints: Endpoints,
    force: ForceResources,
    sender: Sender,
    written: Callable[[], int],
    kills: int,
) -> list[str]:
    """Start the lake consumer under ``sender``'s reports, SIGKILL and restart it ``kills``
    times, each once it has written more since it started (mid-run, mid-flush as often as
    not); the reports sent, once it has committed every one."""
    process.start()
    try:
        with sender:
            for _ in range(kills):
                before = written()

                def more(before: int = before) -> bool:
                    return written() > before

                wait_until(more, 60, "the lake consumer writing")
                time.sleep(random.uniform(0, 0.5))
                assert process.kill()
                process.start()  # waits out the group's expiry of the killed member (45 s)
            sent = sender.stop()
        wait_until(
            lambda: _committed(endpoints, force, force.reports_topic) == len(sent),
            120,
            "the lake consumer committing every report",
        )
    finally:
        process.stop()
    return sent


def assert_each_once(reports: list[str], sightings: list[str], sent: list[str]) -> None:
    assert len(reports) == len(set(reports)), f"{len(reports) - len(set(reports))} reports doubled"
    assert sorted(reports) == sorted(sent)
    assert len(sightings) == len(sent)


def test_killing_the_lake_consumer_mid_run_loses_and_doubles_nothing(
    force: ForceResources, endpoints: Endpoints, stack: Stack, tmp_path: Path
):
    lake = tmp_path / "lake"
    process = _lake_process(force, endpoints, lake, tmp_path)
    sender = Sender.of_reports(endpoints.kafka, force.reports_topic, seed=11)
    # Twice: each restart waits for the group to expire the killed member (45 s).
    sent = killed_while_writing(
        process,
        endpoints,
        force,
        sender,
        lambda: len(_column(lake, force, "reports", "report_id")),
        kills=2,
    )
    assert_each_once(
        _column(lake, force, "reports", "report_id"),
        _column(lake, force, "sightings", "report_id"),
        sent,
    )
    assert not list(lake.rglob("*.tmp")), "a killed write left a temporary file"
