"""What the lake consumer's maintenance reports in its metrics: hours compacted and rolled
up, and hours that failed (a corrupt file), which the log alone used to tell."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import REGISTRY

from peaceland.analytics.lake import LakeWriter, LocalStorage, rows_of_reports
from peaceland.services.lake.consumer import LakeConsumer
from peaceland.services.lake.settings import LakeSettings
from tests.factories import make_report

FORCE = "maintained-force"


def _count(step: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "peaceland_lake_maintenance_total", {"force": FORCE, "step": step, "outcome": outcome}
    )
    return value or 0.0


def test_maintenance_counts_hours_compacted_rolled_up_and_failed(tmp_path: Path):
    rng = random.Random(3)
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    writer = LakeWriter(LocalStorage(tmp_path), FORCE)
    writer.resume("reports", 1)
    for hours in (5, 4):  # two settled hours, two flushes each
        for _ in range(2):
            reports = [make_report(rng, at=now - timedelta(hours=hours)) for _n in range(5)]
            done = writer.done("reports", 1)
            writer.write("reports", 1, done + len(reports), rows_of_reports(reports))
    # One file of the older hour is not Parquet (a disk's fault): that hour fails.
    [broken, *_] = sorted((tmp_path / FORCE / "reports").rglob("*.parquet"))
    broken.write_bytes(b"PAR1 not parquet PAR1")
    settings = LakeSettings(
        force_id=FORCE,
        lake_uri=str(tmp_path),
        kafka_bootstrap_servers="127.0.0.1:1",  # never reached
        cassandra_contact_points="127.0.0.1",
        compact_every_seconds=60,
        compact_settle_seconds=10,
    )
    consumer = LakeConsumer(
        settings, LakeWriter(LocalStorage(tmp_path), FORCE), clock=lambda: time.time() + 60
    )
    try:
        before = {
            key: _count(*key)
            for key in (("compaction", "done"), ("compaction", "failed"), ("rollups", "done"))
        }
        assert consumer.compactor is not None
        consumer.compactor.clock = lambda: time.time() + 60  # every file has settled
        consumer._maintain(consumer.compactor, lambda: None)
        # reports and sightings of the good hour; the broken hour's reports (its sightings
        # are fine); the good hour rolled up.
        assert _count("compaction", "done") - before[("compaction", "done")] == 3
        assert _count("compaction", "failed") - before[("compaction", "failed")] == 1
        assert _count("rollups", "done") - before[("rollups", "done")] == 1
    finally:
        consumer.consumer.close()
