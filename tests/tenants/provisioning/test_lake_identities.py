"""A force's users on the lake's real S3 server (the stack's SeaweedFS): the server itself
refuses a force's keys outside the force's folder.

Every refusal has its control, the same request on the force's own folder answered, so a
probe cannot pass because the request was broken in another way.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pyarrow.fs as pafs
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.httpsession import URLLib3Session

from peaceland.analytics.lake import ArrowStorage, open_storage
from peaceland.analytics.mirror import Mirror
from peaceland.api.app import _analytics
from peaceland.api.problems import Problem
from peaceland.api.routes.analytics import Analytics
from peaceland.api.settings import ApiSettings
from peaceland.stack import Endpoints
from peaceland.tenants.objectstore import S3Access
from peaceland.tenants.provisioning.lake_identities import (
    LAKE_ROLES,
    LakeIdentities,
    LakeIdentityError,
    LakeLocation,
    S3Key,
    iam_endpoint_of,
    s3_user,
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
    for force in identities.forces():  # no user, no live key left on the shared store
        identities.retire(force, keep=None)
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
        LakeIdentityError, match=r"making the store's user t-\w+\.lake\.g1\.[0-9a-f]{6}: HTTP 403"
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


def _iam(lake: Lake, key: S3Key, **params: str) -> tuple[int, str]:
    """One call of the store's IAM query API signed with ``key``, as any client could make
    it (boto3 does not model CreateAccessKey's AccessKeyId and SecretAccessKey: SeaweedFS
    takes them)."""
    body = urlencode({**params, "Version": "2010-05-08"})
    request = AWSRequest(
        method="POST",
        url=iam_endpoint_of(lake.uri) + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    credentials = Credentials(key.access_key_id, key.secret_access_key)
    SigV4Auth(credentials, "iam", "us-east-1").add_auth(request)
    answer = URLLib3Session().send(request.prepare())
    return answer.status_code, answer.content.decode()


def test_a_key_a_force_makes_itself_is_deleted_by_the_next_reconcile(lake: Lake):
    """SeaweedFS lets a user manage its own keys (its policies have no Deny to forbid it):
    a key the force's consumer makes reaches its own folder only, and lives until the
    operator's next reconcile, which deletes every key its Secret does not record, even
    one whose name boto3 would refuse (the store takes ids of 4 characters)."""
    force = _force()
    keys = lake.identities.ensure(force, 1, {})
    planted = f"Zz{uuid.uuid4().hex[:4].upper()}"
    status, said = _iam(
        lake, keys["lake"], Action="CreateAccessKey",
        AccessKeyId=planted, SecretAccessKey="chosen-by-the-force",
    )  # fmt: skip
    assert status == 200, said  # if the store ever refuses it, this test has done its job
    survivor = lake.filesystem(S3Key(planted, "chosen-by-the-force"))
    _write(survivor, lake.path(force, "reports/planted.parquet"))
    _refused(lambda: _write(survivor, lake.path(_force(), "reports/planted.parquet")))
    assert lake.identities.ensure(force, 1, keys) == keys
    with pytest.raises(OSError, match=r"(?i)denied|invalid|forbidden|signature|not exist"):
        _write(survivor, lake.path(force, "reports/after.parquet"))
    _write(lake.filesystem(keys["lake"]), lake.path(force, "reports/after.parquet"))


def test_retiring_removes_a_user_whatever_key_the_store_holds_for_it(lake: Lake):
    """A key the store took with a name boto3 refuses (under 16 characters) must not make
    a user immortal: rotation and deletion would never finish, and the key would outlive
    its force (a force later made under the name has the same folder)."""
    force = _force()
    lake.identities.ensure(force, 1, {})
    planted = f"Zz{uuid.uuid4().hex[:4].upper()}"
    admin = S3Key(lake.access.access_key, lake.access.secret_key)
    user = s3_user(lake.location, force, "lake", 1)
    status, said = _iam(
        lake, admin, Action="CreateAccessKey", UserName=user,
        AccessKeyId=planted, SecretAccessKey="chosen-by-the-force",
    )  # fmt: skip
    assert status == 200, said
    assert lake.identities.retire(force, keep=None) == [1]
    assert lake.identities.generations(force) == set()
    survivor = lake.filesystem(S3Key(planted, "chosen-by-the-force"))
    with pytest.raises(OSError, match=r"(?i)denied|invalid|forbidden|signature|not exist"):
        _write(survivor, lake.path(force, "reports/after-deletion.parquet"))


def test_two_lakes_on_one_store_keep_each_their_own_users(lake: Lake):
    """Two platforms (staging and production, two namespaces of the local platform) on one
    store, each with a force of the same name: neither takes over, nor removes, the other's
    users."""
    force = _force()
    other_location = LakeLocation(lake.location.bucket, f"{lake.location.prefix}-other")
    admin = S3Key(lake.access.access_key, lake.access.secret_key)
    other = LakeIdentities(iam_endpoint_of(lake.uri), admin, other_location)
    mine = lake.identities.ensure(force, 0, {})
    try:
        theirs = other.ensure(force, 0, {})
        assert theirs["lake"] != mine["lake"]
        _write(lake.filesystem(mine["lake"]), lake.path(force, "reports/one.parquet"))
        # Their key reaches their lake's folder, not ours.
        _refused(lambda: _write(lake.filesystem(theirs["lake"]), lake.path(force, "reports/x")))
        other.retire(force, keep=None)
        assert lake.identities.generations(force) == {0}
        _write(lake.filesystem(mine["lake"]), lake.path(force, "reports/two.parquet"))
    finally:
        other.retire(force, keep=None)


def test_a_reconcile_of_a_force_as_it_is_writes_nothing_to_the_store(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
):
    """Every drift reconcile ensures the users again: with nothing to change, it only
    reads (IAM writes are slow on SeaweedFS and rate-limited on AWS)."""
    force = _force()
    keys = lake.identities.ensure(force, 1, {})
    client = lake.identities._iam
    called: list[str] = []

    def counted(name: str) -> Callable[..., object]:
        real = getattr(client, name)

        def call(*args: object, **kwargs: object) -> object:
            called.append(name)
            return real(*args, **kwargs)

        return call

    for name in ("create_user", "put_user_policy", "create_access_key", "delete_access_key"):
        monkeypatch.setattr(client, name, counted(name))
    assert lake.identities.ensure(force, 1, keys) == keys
    assert called == []


def test_the_control_plane_never_reads_a_lake_on_a_store_with_its_own_keys(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Without the forces' Secrets (no Kafka and Cassandra for the force data), the API
    answers no force's statistics rather than read every force's lake with the keys its
    own environment holds."""
    force = _force()
    _write(
        lake.filesystem(S3Key(lake.access.access_key, lake.access.secret_key)),
        lake.path(force, "reports/date=2026-12-01/hour=01/x.parquet"),
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", lake.access.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", lake.access.secret_key)
    settings = ApiSettings(
        database_url="postgresql://x@127.0.0.1/x", lake_uri=lake.uri, lake_mirror_dir=tmp_path
    )
    with pytest.raises(Problem, match="no key of the analytics lake"):
        _analytics(settings, None).lake(force)


def test_a_force_whose_key_is_gone_gets_no_answer_from_an_earlier_snapshot(
    lake: Lake, tmp_path: Path
):
    force = _force()
    keys = lake.identities.ensure(force, 1, {})
    _write(
        lake.filesystem(keys["lake"]),
        lake.path(force, "reports/date=2026-12-01/hour=01/x.parquet"),
    )
    held: dict[str, S3Key | None] = {force: keys["dashboard"]}
    settings = ApiSettings(database_url="postgresql://x@127.0.0.1/x", lake_mirror_dir=tmp_path)
    analytics = Analytics(
        open_storage(lake.uri, s3_keys=("unused", "unused")), settings, force_keys=held.get
    )
    assert analytics.lake(force).list(f"{force}/reports")
    held[force] = None  # its Secret lost its key (the force deleted, the key revoked)
    with pytest.raises(Problem, match="no key"):
        analytics.lake(force)
