"""A force's Cassandra keyspace and its versioned schema.

The schema is a list of numbered migrations. Each one is applied once per keyspace and
recorded in the keyspace's ``schema_migrations`` table; every statement is written to be
safe to run again (``IF NOT EXISTS``), so two processes migrating at once both succeed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Final

from cassandra.cluster import Session

from peaceland.tenants.reports import utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Replication:
    """How many copies of each row, where. ``SimpleStrategy`` suits one data centre only."""

    strategy: str = "SimpleStrategy"
    factor: int = 1
    data_centers: dict[str, int] = field(default_factory=dict)

    def cql(self) -> str:
        if self.strategy == "SimpleStrategy":
            return f"{{'class': 'SimpleStrategy', 'replication_factor': {self.factor}}}"
        if self.strategy == "NetworkTopologyStrategy" and self.data_centers:
            dcs = ", ".join(f"'{dc}': {n}" for dc, n in sorted(self.data_centers.items()))
            return f"{{'class': 'NetworkTopologyStrategy', {dcs}}}"
        raise ValueError(
            f"replication strategy {self.strategy!r} is not SimpleStrategy, nor "
            "NetworkTopologyStrategy with at least one data centre"
        )


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


# Statements use {ks} for the keyspace name. Append only: never edit an applied migration.
MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "reports by drone and day",
        (
            # One partition per drone and day keeps partitions bounded (1,440 reports a day)
            # and serves "what did drone X report on day D" in one read. The primary key holds
            # the report id, so a redelivered report rewrites its own row instead of adding one.
            # Time-window compaction: rows arrive in time order and expire together.
            """
            CREATE TABLE IF NOT EXISTS {ks}.reports_by_drone_day (
                drone_id text,
                day date,
                reported_at timestamp,
                report_id uuid,
                latitude double,
                longitude double,
                citizen_names frozen<list<text>>,
                citizen_scores frozen<list<double>>,
                words frozen<list<text>>,
                PRIMARY KEY ((drone_id, day), reported_at, report_id)
            ) WITH CLUSTERING ORDER BY (reported_at DESC, report_id ASC)
              AND compaction = {{'class': 'TimeWindowCompactionStrategy',
                                 'compaction_window_unit': 'DAYS',
                                 'compaction_window_size': 1}}
              AND compression = {{'class': 'ZstdCompressor'}}
            """,
        ),
    ),
)

LATEST_VERSION: Final = MIGRATIONS[-1].version

# CQL cannot bind identifiers, so a keyspace name is checked before it enters a statement.
_KEYSPACE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


def checked_keyspace(keyspace: str) -> str:
    """``keyspace`` if it is a valid unquoted CQL keyspace name, else ValueError."""
    if not _KEYSPACE.match(keyspace):
        raise ValueError(
            f"{keyspace!r} is not a keyspace name (a letter, then up to 47 letters, digits or '_')"
        )
    return keyspace


def ensure_keyspace(session: Session, keyspace: str, replication: Replication) -> list[int]:
    """Create ``keyspace`` if missing and bring its schema to the latest version.

    Returns the migration versions applied by this call (empty when already up to date).
    An existing keyspace keeps its replication: changing it needs a repair, which is a
    deliberate operation, not something a reconcile loop should do behind an operator's back.
    """
    checked_keyspace(keyspace)
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication.cql()}"
    )
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations ("
        "version int PRIMARY KEY, description text, applied_at timestamp)"
    )
    applied = {
        row.version for row in session.execute(f"SELECT version FROM {keyspace}.schema_migrations")
    }
    done: list[int] = []
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        log.info(
            "keyspace %s: applying migration %d (%s)",
            keyspace,
            migration.version,
            migration.description,
        )
        for statement in migration.statements:
            session.execute(statement.format(ks=keyspace))
        session.execute(
            f"INSERT INTO {keyspace}.schema_migrations (version, description, applied_at) "
            "VALUES (%s, %s, %s)",
            (migration.version, migration.description, utc_now()),
        )
        done.append(migration.version)
    return done


def schema_version(session: Session, keyspace: str) -> int:
    """The highest migration applied to ``keyspace``; 0 for a keyspace with none."""
    checked_keyspace(keyspace)
    rows = session.execute(f"SELECT version FROM {keyspace}.schema_migrations")
    return max((row.version for row in rows), default=0)


def drop_keyspace(session: Session, keyspace: str) -> None:
    """Delete a keyspace and all its data (the ``Delete`` deletion policy, and tests)."""
    checked_keyspace(keyspace)
    session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
