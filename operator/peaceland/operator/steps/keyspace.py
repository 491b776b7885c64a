"""KeyspaceReady: the force's Cassandra keyspace exists, migrated and replicated as its spec
says."""

from __future__ import annotations

from cassandra import AuthenticationFailed, DriverException, Unauthorized
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException

from peaceland.operator.results import Event, Force, Step
from peaceland.operator.servers import Servers
from peaceland.tenants.cassandra import is_transient
from peaceland.tenants.errors import ProvisioningError
from peaceland.tenants.forces import resources_for
from peaceland.tenants.provisioning.keyspace import (
    apply_replication,
    ensure_keyspace,
    schema_version,
)


def keyspace_step(force: Force, servers: Servers, events: list[Event]) -> Step:
    keyspace = resources_for(force.name).keyspace
    replication = force.spec.replication()
    where = f"Cassandra ({servers.settings.cassandra_contact_points})"
    try:
        session = servers.cassandra()
    except Exception as exc:  # the driver raises several types; every one means "not now"
        return Step("KeyspaceReady", False, "CassandraUnavailable", f"{where}: {exc}", retry=True)
    try:
        applied = ensure_keyspace(session, keyspace, replication, force.spec.retention_days)
        changed = apply_replication(session, keyspace, replication)
        version = schema_version(session, keyspace)
    except ProvisioningError as exc:
        return Step("KeyspaceReady", False, exc.reason, str(exc))
    except (DriverException, NoHostAvailable, ConnectionException) as exc:
        # Down, overloaded or not yet agreed on its schema (heals by itself), or refusing
        # what we asked, a permission say (said as it is, for a person to act on); retried
        # either way.
        refused = isinstance(exc, (Unauthorized, AuthenticationFailed))
        reason = "CassandraUnavailable" if is_transient(exc) and not refused else "CassandraError"
        return Step("KeyspaceReady", False, reason, f"{where}: {exc}", retry=True)
    if applied:
        events.append(
            Event(
                "Normal",
                "SchemaMigrated",
                f"keyspace {keyspace}: applied schema migrations {applied}",
            )
        )
    if changed:
        events.append(
            Event(
                "Warning",
                "RepairNeeded",
                f"keyspace {keyspace}: replication is now {replication.cql()}; run "
                f"`nodetool repair {keyspace}` on every node so existing rows reach their replicas",
            )
        )
    return Step(
        "KeyspaceReady",
        True,
        "SchemaMigrated" if applied else "KeyspaceUpToDate",
        f"keyspace {keyspace} at schema version {version}, replication {replication.cql()}, "
        f"rows kept {force.spec.retention_days} days",
    )
