"""How the shared Cassandra helpers judge the real server's errors."""

from __future__ import annotations

import uuid

import pytest
from cassandra import InvalidRequest
from cassandra.cluster import Session

from peaceland.tenants.cassandra import is_transient
from peaceland.tenants.provisioning.keyspace import Replication, drop_keyspace, ensure_keyspace


def test_a_write_to_a_dropped_table_is_transient_and_an_invalid_value_is_not(cassandra: Session):
    keyspace = f"t_{uuid.uuid4().hex[:12]}"
    try:
        ensure_keyspace(cassandra, keyspace, Replication())
        cassandra.execute(f"DROP TABLE {keyspace}.alerts_by_day")
        with pytest.raises(InvalidRequest) as missing_table:
            cassandra.execute(f"SELECT * FROM {keyspace}.alerts_by_day LIMIT 1")
        # The operator makes a dropped table again: a write to it heals, so it is retried.
        assert is_transient(missing_table.value), str(missing_table.value)

        with pytest.raises(InvalidRequest) as missing_keyspace:
            cassandra.execute(f"SELECT * FROM t_{uuid.uuid4().hex[:12]}.reports LIMIT 1")
        assert is_transient(missing_keyspace.value), str(missing_keyspace.value)

        # A coordinator that has not yet heard of a keyspace just created elsewhere in the
        # ring says so in other words ("doesn't exist"): that heals too.
        with pytest.raises(InvalidRequest) as not_yet_known:
            cassandra.execute(f"CREATE TABLE t_{uuid.uuid4().hex[:12]}.x (k int PRIMARY KEY)")
        assert is_transient(not_yet_known.value), str(not_yet_known.value)

        with pytest.raises(InvalidRequest) as bad_value:
            cassandra.execute(
                f"SELECT * FROM {keyspace}.reports_by_drone_day WHERE drone_id = %s LIMIT 1", (12,)
            )
        # A value of the wrong type fails again however often it is sent.
        assert not is_transient(bad_value.value), str(bad_value.value)
    finally:
        drop_keyspace(cassandra, keyspace)
