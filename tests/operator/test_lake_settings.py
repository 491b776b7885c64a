"""The operator's settings of an analytics lake on an object store, without a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from peaceland.operator.servers import Servers
from peaceland.operator.settings import OperatorSettings
from peaceland.tenants.provisioning.lake_identities import S3Key


def _operator(**fields: Any) -> OperatorSettings:
    return OperatorSettings(
        kafka_bootstrap_servers="k:9092", cassandra_contact_points="c", **fields
    )


def test_an_s3_lake_without_its_stores_administrator_is_refused_at_start(tmp_path: Path):
    uri = "s3://peaceland-lake/prod?endpoint_override=store:8333&scheme=http"
    with pytest.raises(ValueError, match="LAKE_ADMIN_ACCESS_KEY_ID"):
        _operator(lake_uri=uri)
    (tmp_path / "secret").write_text("s3cr3t")
    settings = _operator(
        lake_uri=uri,
        lake_admin_access_key_id="admin",
        lake_admin_secret_access_key_file=tmp_path / "secret",
    )
    assert settings.lake_admin_key().secret_access_key == "s3cr3t"
    assert settings.lake_on_object_store
    with pytest.raises(ValueError, match="cannot be read"):
        _operator(
            lake_uri=uri,
            lake_admin_access_key_id="admin",
            lake_admin_secret_access_key_file=tmp_path / "missing",
        )
    # Without an endpoint in the URI (AWS itself), IAM's endpoint is to be given.
    with pytest.raises(ValueError, match="endpoint_override"):
        _operator(
            lake_uri="s3://peaceland-lake/prod",
            lake_admin_access_key_id="admin",
            lake_admin_secret_access_key="s3cr3t",
        )
    assert not _operator(lake_uri="/var/lib/lake").lake_on_object_store


def test_the_operator_takes_up_a_rotated_store_administrator_without_a_restart(tmp_path: Path):
    secret = tmp_path / "secret"
    secret.write_text("first")
    servers = Servers(
        _operator(
            lake_uri="s3://peaceland-lake/prod?endpoint_override=store:8333&scheme=http",
            lake_admin_access_key_id="admin",
            lake_admin_secret_access_key_file=secret,
        )
    )
    first = servers.lake()
    assert first is servers.lake()  # one client while the key stays
    secret.write_text("second")
    second = servers.lake()
    assert second is not None
    assert second is not first
    assert servers._lake_admin == S3Key("admin", "second")
