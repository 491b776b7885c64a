"""The lake consumer writing to the stack's real S3 server: killed mid-run, it still leaves
every report in the lake once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from peaceland.analytics.lake import ArrowStorage, open_storage
from peaceland.analytics.mirror import Mirror
from peaceland.node.launch import ServiceProcess
from peaceland.stack import Endpoints
from peaceland.tenants.environment import env_name
from peaceland.tenants.forces import ForceResources
from tests.kafka_helpers import Sender
from tests.services.lake.test_consumer import assert_each_once, killed_while_writing

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def s3_uri(endpoints: Endpoints) -> Iterator[str]:
    access = endpoints.s3
    assert access is not None
    uri = access.lake_uri(f"consumer-{uuid.uuid4().hex[:8]}")
    yield uri
    storage = open_storage(uri, s3_keys=(access.access_key, access.secret_key))
    assert isinstance(storage, ArrowStorage)
    storage.filesystem.delete_dir(storage.root)


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
