"""Provisioning a force's keyspace and schema on the real Cassandra."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from cassandra.cluster import Session

from peaceland.tenants.errors import ProvisioningError
from peaceland.tenants.provisioning.keyspace import (
    LATEST_VERSION,
    MIGRATIONS,
    RETAINED_TABLES,
    Replication,
    apply_replication,
    apply_retention,
    checked_keyspace,
    drop_keyspace,
    ensure_keyspace,
    schema_version,
)


def test_a_new_keyspace_gets_every_migration_once(cassandra: Session):
    keyspace = f"t_{uuid.uuid4().hex[:12]}"
    try:
        assert ensure_keyspace(cassandra, keyspace, Replication()) == [
            m.version for m in MIGRATIONS
        ]
        assert ensure_keyspace(cassandra, keyspace, Replication()) == []
        assert schema_version(cassandra, keyspace) == LATEST_VERSION
        tables = {
            row.table_name
            for row in cassandra.execute(
                "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
            )
        }
        assert {"reports_by_drone_day", "schema_migrations"} <= tables
    finally:
        drop_keyspace(cassandra, keyspace)


def test_two_processes_migrating_at_once_both_succeed(cassandra: Session):
    keyspace = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(
                pool.map(lambda _: ensure_keyspace(cassandra, keyspace, Replication()), range(2))
            )
        assert all(isinstance(r, list) for r in results)
        assert schema_version(cassandra, keyspace) == LATEST_VERSION
    finally:
        drop_keyspace(cassandra, keyspace)


def test_the_keyspace_gets_the_asked_replication(cassandra: Session):
    keyspace = f"t_{uuid.uuid4().hex[:12]}"
    try:
        ensure_keyspace(
            cassandra, keyspace, Replication("NetworkTopologyStrategy", 1, {"datacenter1": 1})
        )
        row = cassandra.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
            (keyspace,),
        ).one()
        assert row.replication["class"].endswith("NetworkTopologyStrategy")
        assert row.replication["datacenter1"] == "1"
    finally:
        drop_keyspace(cassandra, keyspace)


def test_a_table_dropped_by_hand_is_made_again(cassandra: Session):
    keyspace = f"t_{uuid.uuid4().hex[:12]}"
    try:
        ensure_keyspace(cassandra, keyspace, Replication(), retention_days=7)
        cassandra.execute(f"DROP TABLE {keyspace}.alerts_by_day")
        assert ensure_keyspace(cassandra, keyspace, Replication(), retention_days=7) == []
        row = cassandra.execute(
            "SELECT default_time_to_live FROM system_schema.tables "
            "WHERE keyspace_name = %s AND table_name = 'alerts_by_day'",
            (keyspace,),
        ).one()
        assert row is not None
        assert row.default_time_to_live == 7 * 86_400
    finally:
        drop_keyspace(cassandra, keyspace)


def test_a_changed_replication_is_applied_once(cassandra: Session):
    keyspace = f"t_{uuid.uuid4().hex[:12]}"
    two = Replication("NetworkTopologyStrategy", 1, {"datacenter1": 2})
    try:
        ensure_keyspace(cassandra, keyspace, Replication())
        assert apply_replication(cassandra, keyspace, Replication()) is False
        assert apply_replication(cassandra, keyspace, two) is True
        assert apply_replication(cassandra, keyspace, two) is False
        row = cassandra.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
            (keyspace,),
        ).one()
        assert dict(row.replication) == two.options()
    finally:
        drop_keyspace(cassandra, keyspace)


def test_a_data_centre_cassandra_does_not_know_is_a_provisioning_error(cassandra: Session):
    keyspace = f"t_{uuid.uuid4().hex[:12]}"
    with pytest.raises(ProvisioningError, match="nowhere") as raised:
        ensure_keyspace(
            cassandra, keyspace, Replication("NetworkTopologyStrategy", 1, {"nowhere": 1})
        )
    assert raised.value.reason == "InvalidReplication"


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a;DROP KEYSPACE x", "a" * 49])
def test_a_keyspace_name_that_could_inject_cql_is_refused(name):
    with pytest.raises(ValueError, match="is not a keyspace name"):
        checked_keyspace(name)


def test_an_unknown_replication_strategy_is_refused():
    with pytest.raises(ValueError, match="replication strategy"):
        Replication("EverywhereStrategy").cql()


def test_retention_sets_ttl_and_compaction_window_and_is_idempotent(cassandra: Session):
    keyspace = f"t_{uuid.uuid4().hex[:12]}"
    try:
        ensure_keyspace(cassandra, keyspace, Replication(), retention_days=90)
        rows = {
            row.table_name: row
            for row in cassandra.execute(
                "SELECT table_name, default_time_to_live, compaction FROM system_schema.tables "
                "WHERE keyspace_name = %s",
                (keyspace,),
            )
        }
        for table in RETAINED_TABLES:
            assert rows[table].default_time_to_live == 90 * 86_400
        assert rows["reports_by_drone_day"].compaction["compaction_window_size"] == "3"
        assert rows["alerts_by_day"].compaction["class"].endswith("SizeTieredCompactionStrategy")
        assert apply_retention(cassandra, keyspace, 90) == []
        assert sorted(apply_retention(cassandra, keyspace, 7)) == sorted(RETAINED_TABLES)
    finally:
        drop_keyspace(cassandra, keyspace)
