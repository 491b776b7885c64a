"""The lake consumer writing to the stack's real S3 server: killed mid-run, it still leaves
every report in the lake once."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from peaceland.analytics.compaction import Compactor
from peaceland.analytics.lake import (
    ArrowStorage,
    LakeWriter,
    hour_of,
    open_storage,
    rows_of_reports,
)
from peaceland.analytics.mirror import Mirror
from peaceland.node.launch import ServiceProcess
from peaceland.services.lake.consumer import LakeConsumer
from peaceland.services.lake.settings import LakeSettings
from peaceland.stack import Endpoints
from peaceland.tenants.environment import env_name
from peaceland.tenants.forces import ForceResources
from tests.factories import make_report
from tests.kafka_helpers import Sender
from tests.services.lake.test_consumer import assert_each_once, killed_while_writing

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def s3_uri(s3_lake: ArrowStorage) -> str:
    return s3_lake.uri


def _ids(storage: ArrowStorage, force: ForceResources, folder: Path, table: str) -> list[str]:
    snapshot = Mirror(storage, folder).snapshot(force.force_id)
    files = [snapshot.locate(f.path) for f in snapshot.list(f"{force.force_id}/{table}")]
    if not files:
        return []
    rows = duckdb.connect().execute("SELECT report_id FROM read_parquet(?)", [files])
    return [str(row[0]) for row in rows.fetchall()]


def test_killing_the_lake_consumer_writing_to_s3_loses_and_doubles_nothing(
    force: ForceResources, endpoints: Endpoints, s3_uri: str, tmp_path: Path
):
    access = endpoints.s3
    assert access is not None
    storage = open_storage(s3_uri, s3_keys=(access.access_key, access.secret_key))
    assert isinstance(storage, ArrowStorage)
    env = endpoints.environment() | {
        env_name("lake", "force_id"): force.force_id,
        env_name("lake", "lake_uri"): s3_uri,
        env_name("lake", "flush_seconds"): "0.3",
        env_name("lake", "flush_records"): "400",
        env_name("lake", "metrics_port"): "0",
        # The AWS SDK's own variables: how a pod is given its keys.
        "AWS_ACCESS_KEY_ID": access.access_key,
        "AWS_SECRET_ACCESS_KEY": access.secret_key,
    }
    process = ServiceProcess("lake", force.force_id, env, tmp_path)
    sender = Sender.of_reports(endpoints.kafka, force.reports_topic, seed=13)
    sent = killed_while_writing(
        process,
        endpoints,
        force,
        sender,
        lambda: len(_ids(storage, force, tmp_path / "seen", "reports")),
        kills=1,
    )
    assert_each_once(
        _ids(storage, force, tmp_path / "mirror", "reports"),
        _ids(storage, force, tmp_path / "mirror", "sightings"),
        sent,
    )


def test_on_the_object_store_the_hours_past_the_retention_are_deleted(
    endpoints: Endpoints, s3_uri: str, tmp_path: Path
):
    """Compaction needs this machine's disks; the retention does not: an hour past it is
    deleted from the store, the hours within it are kept."""
    access = endpoints.s3
    assert access is not None
    (tmp_path / "key-id").write_text(access.access_key)
    (tmp_path / "secret").write_text(access.secret_key)
    settings = LakeSettings(
        force_id="kept-force",
        lake_uri=s3_uri,
        kafka_bootstrap_servers="127.0.0.1:1",  # never reached
        cassandra_contact_points="127.0.0.1",
        retention_days=2,
        s3_access_key_id_file=tmp_path / "key-id",
        s3_secret_access_key_file=tmp_path / "secret",
    )
    storage = open_storage(s3_uri, s3_keys=settings.s3_keys())
    writer = LakeWriter(storage, "kept-force")
    writer.resume("reports", 0)
    rng = random.Random(4)
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    for offset, age in enumerate((timedelta(days=3), timedelta(days=1), timedelta(0))):
        writer.write("reports", 0, offset, rows_of_reports([make_report(rng, at=now - age)]))
    consumer = LakeConsumer(settings, writer)
    try:
        assert isinstance(consumer.compactor, Compactor)
        consumer._maintain(consumer.compactor, lambda: None)
    finally:
        consumer.consumer.close()
    left = sorted(h for f in storage.list("kept-force/reports") if (h := hour_of(f.path)))

    def hour(moment: datetime) -> datetime:
        return moment.replace(minute=0, second=0, microsecond=0, tzinfo=None)

    assert left == [hour(now - timedelta(days=1)), hour(now)]
    assert consumer.counters.expired == 2  # the old hour's reports and sightings
