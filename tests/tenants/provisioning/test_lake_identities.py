"""A force's users on the lake's real S3 server (the stack's SeaweedFS): the server itself
refuses a force's keys outside the force's folder.

Every refusal has its control, the same request on the force's own folder answered, so a
probe cannot pass because the request was broken in another way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from peaceland.analytics.lake import ArrowStorage, open_storage
from peaceland.analytics.mirror import Mirror
from peaceland.stack import Endpoints
from peaceland.tenants.objectstore import S3Access
from peaceland.tenants.provisioning.lake_identities import (
    LAKE_ROLES,
    LakeIdentities,
    LakeIdentityError,
    LakeLocation,
    S3Key,
    iam_endpoint_of,
)


@dataclass(frozen=True)
class Lake:
    access: S3Access
    uri: str
    location: LakeLocation
    identities: LakeIdentities

    def filesystem(self, key: S3Key) -> pafs.S3FileSystem:
        host = self.access.endpoint.split("://", 1)[1]
        return pafs.S3FileSystem(
            access_key=key.access_key_id,
            secret_key=key.secret_access_key,
            endpoint_override=host,
            scheme="http",
            region="us-east-1",
            connect_timeout=3,
            request_timeout=10,
        )

    def path(self, force_id: str, name: str = "") -> str:
        return f"{self.location.bucket}/{self.location.folder(force_id)}/{name}".rstrip("/")


@pytest.fixture
def lake(endpoints: Endpoints) -> Iterator[Lake]:
    access = endpoints.s3
    assert access is not None
    uri = access.lake_uri(f"identities-{uuid.uuid4().hex[:8]}")
    location = LakeLocation.from_uri(uri)
    admin = S3Key(access.access_key, access.secret_key)
    identities = LakeIdentities(iam_endpoint_of(uri), admin, location)
    made = Lake(access, uri, location, identities)
    yield made
    admin_fs = made.filesystem(admin)
    admin_fs.delete_dir_contents(f"{location.bucket}/{location.prefix}", missing_dir_ok=True)


def _force() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _refused(call: object) -> str:
    """The server's refusal of ``call()``: AccessDenied, nothing else."""
    assert callable(call)
    with pytest.raises(OSError, match=r"ACCESS_DENIED|Access Denied|AccessDenied") as refused:
        call()
    return str(refused.value)


def _write(filesystem: pafs.FileSystem, path: str, body: bytes = b"report") -> None:
    with filesystem.open_output_stream(path) as out:
        out.write(body)


def _read(filesystem: pafs.FileSystem, path: str) -> bytes:
    with filesystem.open_input_stream(path) as source:
        return bytes(source.read())


def _listed(filesystem: pafs.FileSystem, path: str) -> list[str]:
    return [i.path for i in filesystem.get_file_info(pafs.FileSelector(path, recursive=True))]


def test_a_forces_lake_key_reaches_its_own_folder_and_the_server_refuses_any_other(lake: Lake):
    a, b = _force(), _force()
    keys_a = lake.identities.ensure(a, 1, {})
    keys_b = lake.identities.ensure(b, 1, {})
    writer_a, writer_b = lake.filesystem(keys_a["lake"]), lake.filesystem(keys_b["lake"])
    _write(writer_a, lake.path(a, "reports/one.parquet"), b"a's")
    _write(writer_b, lake.path(b, "reports/one.parquet"), b"b's")

    # Controls: a's own folder, each request answered.
    assert _read(writer_a, lake.path(a, "reports/one.parquet")) == b"a's"
    assert lake.path(a, "reports/one.parquet") in _listed(writer_a, lake.path(a))
    assert writer_a.get_file_info(lake.path(a)).type == pafs.FileType.Directory
    writer_a.delete_file(lake.path(a, "reports/one.parquet"))
    _write(writer_a, lake.path(a, "reports/one.parquet"), b"a's")

    # b's folder: refused by the server, whatever a's key asks.
    _refused(lambda: _read(writer_a, lake.path(b, "reports/one.parquet")))
    _refused(lambda: _write(writer_a, lake.path(b, "reports/two.parquet")))
    _refused(lambda: writer_a.delete_file(lake.path(b, "reports/one.parquet")))
    _refused(lambda: _listed(writer_a, lake.path(b)))
    _refused(lambda: writer_a.get_file_info(lake.path(b)))
    # Nor the list of forces, nor a sibling whose name starts like a's.
    _refused(lambda: _listed(writer_a, f"{lake.location.bucket}/{lake.location.prefix}"))
    _refused(lambda: _write(writer_a, lake.path(a) + "x/reports/one.parquet"))
    assert _read(writer_b, lake.path(b, "reports/one.parquet")) == b"b's"


def test_a_forces_dashboard_key_reads_its_own_folder_and_writes_nothing(lake: Lake):
    a, b = _force(), _force()
    keys_a = lake.identities.ensure(a, 1, {})
    lake.identities.ensure(b, 1, {})
    _write(lake.filesystem(keys_a["lake"]), lake.path(a, "alerts/one.parquet"), b"a's")
    reader = lake.filesystem(keys_a["dashboard"])
    assert _read(reader, lake.path(a, "alerts/one.parquet")) == b"a's"
    assert lake.path(a, "alerts/one.parquet") in _listed(reader, lake.path(a))
    _refused(lambda: _write(reader, lake.path(a, "alerts/two.parquet")))
    _refused(lambda: reader.delete_file(lake.path(a, "alerts/one.parquet")))
    _refused(lambda: _listed(reader, lake.path(b)))


def test_the_readers_snapshot_of_another_forces_lake_is_refused_by_the_server(
    lake: Lake, tmp_path: Path
):
    """Through the control plane's own path: a snapshot of the lake under a force's keys."""
    a, b = _force(), _force()
    keys_a = lake.identities.ensure(a, 1, {})
    keys_b = lake.identities.ensure(b, 1, {})
    _write(
        lake.filesystem(keys_b["lake"]), lake.path(b, "reports/date=2026-12-01/hour=01/x.parquet")
    )
    _write(
        lake.filesystem(keys_a["lake"]), lake.path(a, "reports/date=2026-12-01/hour=01/x.parquet")
    )
    dashboard_a = keys_a["dashboard"]
    keys = (dashboard_a.access_key_id, dashboard_a.secret_access_key)
    storage = open_storage(lake.uri, s3_keys=keys)
    assert isinstance(storage, ArrowStorage)
    mirror = Mirror(storage, tmp_path)
    assert [f.path for f in mirror.snapshot(a).list(f"{a}/reports")]
    _refused(lambda: mirror.snapshot(b))


def test_ensuring_again_keeps_the_recorded_key_and_removes_any_other(lake: Lake):
    force = _force()
    first = lake.identities.ensure(force, 1, {})
    assert set(first) == set(LAKE_ROLES)
    again = lake.identities.ensure(force, 1, first)
    assert again == first
    # A Secret never written (the operator stopped after making the keys): the next attempt
    # makes new keys, and the ones nobody recorded stop working.
    lost = lake.identities.ensure(force, 1, {})
    assert lost["lake"].access_key_id != first["lake"].access_key_id
    _write(lake.filesystem(lost["lake"]), lake.path(force, "reports/one.parquet"))
    with pytest.raises(OSError, match=r"(?i)denied|invalid|forbidden|signature|not exist"):
        _write(lake.filesystem(first["lake"]), lake.path(force, "reports/two.parquet"))


def test_retiring_a_generation_removes_its_users_and_the_server_refuses_their_keys(lake: Lake):
    force = _force()
    old = lake.identities.ensure(force, 1, {})
    new = lake.identities.ensure(force, 2, {})
    assert lake.identities.generations(force) == {1, 2}
    assert lake.identities.retire(force, keep=2) == [1]
    assert lake.identities.generations(force) == {2}
    _write(lake.filesystem(new["lake"]), lake.path(force, "reports/one.parquet"))
    with pytest.raises(OSError, match=r"(?i)denied|invalid|forbidden|signature|not exist"):
        _write(lake.filesystem(old["lake"]), lake.path(force, "reports/two.parquet"))
    assert lake.identities.retire(force, keep=None) == [2]
    assert lake.identities.generations(force) == set()
    with pytest.raises(OSError, match=r"(?i)denied|invalid|forbidden|signature|not exist"):
        _write(lake.filesystem(new["lake"]), lake.path(force, "reports/three.parquet"))
    assert lake.identities.retire(force, keep=None) == []


def test_a_wrong_administrator_or_no_store_is_said_never_hidden(lake: Lake):
    wrong = LakeIdentities(
        iam_endpoint_of(lake.uri), S3Key(lake.access.access_key, "not-the-secret"), lake.location
    )
    with pytest.raises(
        LakeIdentityError, match=r"making the store's user t-\w+\.lake\.g1: HTTP 403"
    ):
        wrong.ensure(_force(), 1, {})
    away = LakeIdentities("http://127.0.0.1:9", S3Key("k", "s"), lake.location, timeout=1.0)
    with pytest.raises(LakeIdentityError, match="listing the store's users"):
        away.generations(_force())


def test_a_lake_location_is_read_from_its_uri():
    uri = "s3://peaceland-lake/prod/x?endpoint_override=127.0.0.1:18333&scheme=http"
    assert LakeLocation.from_uri(uri) == LakeLocation("peaceland-lake", "prod/x")
    assert LakeLocation.from_uri("s3://bucket").folder("force-a") == "force-a"
    assert iam_endpoint_of(uri) == "http://127.0.0.1:18333"
    with pytest.raises(ValueError, match="not an s3://"):
        LakeLocation.from_uri("/var/lib/lake")
    with pytest.raises(ValueError, match="endpoint_override"):
        iam_endpoint_of("s3://bucket/prefix")
