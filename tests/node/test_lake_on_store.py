"""The lake on the stack's S3 store, the production path, through the operator and the local
node: each force gets users of its own on the store; its lake consumer writes under its key
and the control plane's analytics read under the force's; the store refuses either key
outside the force's folder; a rotation retires the old users; a deletion removes all of them,
and the force's lake."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from peaceland.analytics.lake import ArrowStorage, open_storage
from peaceland.analytics.mirror import Mirror
from peaceland.api.problems import Problem
from peaceland.api.routes.analytics import Analytics
from peaceland.api.settings import ApiSettings
from peaceland.node.platform import LocalPlatform, demo_force
from peaceland.operator import manifests
from peaceland.stack import Endpoints, Stack
from peaceland.stack.kube import KubeApiServer
from peaceland.tenants.forces import ForceSettings, resources_for
from peaceland.tenants.provisioning.lake_identities import (
    LakeIdentities,
    LakeLocation,
    S3Key,
    iam_endpoint_of,
)
from tests.kafka_helpers import Sender, wait_until

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def platform(stack: Stack, kubernetes: KubeApiServer) -> Iterator[LocalPlatform]:
    namespace = f"t-lks-{uuid.uuid4().hex[:8]}"
    platform = LocalPlatform(
        stack, manifests.definitions(), namespace=namespace, lake_on_store=True
    )
    platform.start(lambda _: None)
    yield platform
    platform.kubectl("delete", "policeforce", "--all", "-n", namespace, "--timeout=60s")
    platform.stop()
    assert platform.lake_uri is not None
    store = _admin_storage(stack.endpoints(), platform.lake_uri)
    store.filesystem.delete_dir_contents(store.root, missing_dir_ok=True)


def _admin_storage(endpoints: Endpoints, uri: str) -> ArrowStorage:
    access = endpoints.s3
    assert access is not None
    storage = open_storage(uri, s3_keys=(access.access_key, access.secret_key))
    assert isinstance(storage, ArrowStorage)
    return storage


def _under(uri: str, key: S3Key) -> ArrowStorage:
    storage = open_storage(uri, s3_keys=(key.access_key_id, key.secret_access_key))
    assert isinstance(storage, ArrowStorage)
    return storage


def _report_ids(storage: ArrowStorage, force_id: str, folder: Path) -> list[str]:
    snapshot = Mirror(storage, folder).snapshot(force_id)
    files = [snapshot.locate(f.path) for f in snapshot.list(f"{force_id}/reports")]
    if not files:
        return []
    rows = duckdb.connect().execute("SELECT report_id FROM read_parquet(?)", [files])
    return [str(row[0]) for row in rows.fetchall()]


def test_each_forces_lake_on_the_store_is_written_and_read_under_its_own_keys_only(
    platform: LocalPlatform, endpoints: Endpoints, tmp_path: Path
):
    assert platform.lake_uri is not None
    uri = platform.lake_uri
    a, b = (f"lks-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for name in (a, b):
        manifest = demo_force(ForceSettings(force_id=name))
        manifest["spec"]["deletionPolicy"] = "Delete"
        platform.apply_force(manifest)
    for name in (a, b):
        platform.wait_ready(name, lambda _: None)
    keys = {name: platform.credentials(name).s3 for name in (a, b)}
    assert {role for k in keys.values() for role in k} == {"lake", "dashboard"}

    # A's reports reach A's lake, written by its consumer under A's lake key.
    with Sender.of_reports(endpoints.kafka, resources_for(a).reports_topic, seed=21) as sender:
        time.sleep(1)
    sent = sender.stop()
    reader_a = _under(uri, keys[a]["dashboard"])
    wait_until(
        lambda: len(_report_ids(reader_a, a, tmp_path / "seen")) >= len(sent),
        120,
        "A's reports reaching its lake on the store",
    )
    assert sorted(_report_ids(reader_a, a, tmp_path / "read")) == sorted(sent)

    # The store itself refuses each key of A on B's folder (and B's on A's).
    with pytest.raises(OSError, match="ACCESS_DENIED"):
        Mirror(reader_a, tmp_path / "theirs").snapshot(b)
    with pytest.raises(OSError, match="ACCESS_DENIED"):
        _under(uri, keys[a]["lake"]).put(f"{b}/reports/planted.parquet", b"not theirs")
    with pytest.raises(OSError, match="ACCESS_DENIED"):
        Mirror(_under(uri, keys[b]["dashboard"]), tmp_path / "b").snapshot(a)

    # The control plane's analytics read each force's lake under that force's key: a bug
    # handing B's questions A's key gets the store's refusal, never A's files.
    settings = ApiSettings(
        database_url="postgresql://x@127.0.0.1/x", lake_mirror_dir=tmp_path / "api"
    )
    analytics = Analytics(
        _admin_storage(endpoints, uri), settings, force_keys=lambda f: keys[f]["dashboard"]
    )
    assert analytics.lake(a).list(f"{a}/reports")
    crossed = Analytics(
        _admin_storage(endpoints, uri), settings, force_keys=lambda _f: keys[a]["dashboard"]
    )
    with pytest.raises(Problem, match="cannot be read now"):
        crossed.lake(b)
    unkeyed = Analytics(_admin_storage(endpoints, uri), settings, force_keys=lambda _f: None)
    with pytest.raises(Problem, match="no key of the analytics lake"):
        unkeyed.lake(a)


def test_a_rotation_retires_the_old_users_of_the_store_and_a_deletion_all_of_them(
    platform: LocalPlatform, endpoints: Endpoints, tmp_path: Path
):
    assert platform.lake_uri is not None
    uri = platform.lake_uri
    access = endpoints.s3
    assert access is not None
    identities = LakeIdentities(
        iam_endpoint_of(uri),
        S3Key(access.access_key, access.secret_key),
        LakeLocation.from_uri(uri),
    )
    name = f"lks-{uuid.uuid4().hex[:8]}"
    manifest = demo_force(ForceSettings(force_id=name))
    manifest["spec"]["deletionPolicy"] = "Delete"
    platform.apply_force(manifest)
    platform.wait_ready(name, lambda _: None)
    old = platform.credentials(name)
    assert identities.generations(name) == {0}

    manifest["spec"]["credentials"] = {"rotation": 1}
    platform.apply_force(manifest)
    wait_until(lambda: identities.generations(name) == {1}, 120, "generation 0 retired")
    new = platform.credentials(name)
    assert new.s3["lake"] != old.s3["lake"]
    # The consumer runs on the new key: what A's drones send still reaches the lake.
    with Sender.of_reports(endpoints.kafka, resources_for(name).reports_topic, seed=22) as sender:
        time.sleep(0.5)
    sent = sender.stop()
    reader = _under(uri, new.s3["dashboard"])
    wait_until(
        lambda: len(_report_ids(reader, name, tmp_path / "seen")) >= len(sent),
        120,
        "reports reaching the lake after the rotation",
    )
    with pytest.raises(OSError, match=r"(?i)denied|invalid|signature|not exist"):
        _under(uri, old.s3["dashboard"]).get(f"{name}/_lake/reports/p0.json")

    admin = _admin_storage(endpoints, uri)
    assert admin.list(f"{name}/reports")
    platform.kubectl("delete", "policeforce", name, "-n", platform.namespace, "--timeout=90s")
    assert identities.generations(name) == set()
    # Its deletion policy Delete reaches its lake: not a file of it is left.
    assert admin.list(name) == []
    with pytest.raises(OSError, match=r"(?i)denied|invalid|signature|not exist"):
        _under(uri, new.s3["dashboard"]).get(f"{name}/_lake/reports/p0.json")
