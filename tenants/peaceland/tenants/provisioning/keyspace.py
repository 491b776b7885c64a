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

from cassandra import InvalidRequest
from cassandra.cluster import Session
from cassandra.protocol import ConfigurationException

from peaceland.tenants.errors import ProvisioningError
from peaceland.tenants.reports import utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Replication:
    """How many copies of each row, where. ``SimpleStrategy`` suits one data centre only."""

    strategy: str = "SimpleStrategy"
    factor: int = 1
    data_centers: dict[str, int] = field(default_factory=dict)

    def options(self) -> dict[str, str]:
        """The replication map as Cassandra reports it in ``system_schema.keyspaces``."""
        if self.strategy == "SimpleStrategy":
            return {
                "class": "org.apache.cassandra.locator.SimpleStrategy",
                "replication_factor": str(self.factor),
            }
        return {
            "class": "org.apache.cassandra.locator.NetworkTopologyStrategy",
            **{dc: str(n) for dc, n in self.data_centers.items()},
        }

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
              AND compression = {{'class': 'ZstdCompressor', 'chunk_length_in_kb': 64}}
            """,
        ),
    ),
    Migration(
        2,
        "sightings by citizen, open alerts, alerts by day",
        (
            # "Where was citizen C seen on day D": one row per face in every report, pointing to
            # the report's row by drone and time (the position is there). Partitioned by day
            # and a bucket of the citizen's name (forces.sighting_bucket), citizen first in
            # the clustering: a query is one partition slice, partitions stay large enough to
            # amortise their overhead and bounded (first wave: ~6 MB a bucket a day), and one
            # citizen's rows sit together, where compression folds the repeated name away.
            """
            CREATE TABLE IF NOT EXISTS {ks}.sightings_by_citizen (
                day date,
                bucket smallint,
                citizen text,
                reported_at timestamp,
                drone_id text,
                score double,
                PRIMARY KEY ((day, bucket), citizen, reported_at, drone_id)
            ) WITH compaction = {{'class': 'TimeWindowCompactionStrategy',
                                 'compaction_window_unit': 'DAYS',
                                 'compaction_window_size': 1}}
              AND compression = {{'class': 'ZstdCompressor', 'chunk_length_in_kb': 64}}
            """,
            # The alerting consumer's dedup state: the one open alert of each citizen. Written
            # only with lightweight transactions, so replicas reading different partitions
            # agree on a single alert; rows expire with a TTL once the window is over.
            # opened_by: the Kafka record (partition/offset) whose sighting opened the alert.
            """
            CREATE TABLE IF NOT EXISTS {ks}.open_alerts (
                citizen text PRIMARY KEY,
                alert_id uuid,
                opened_at timestamp,
                opened_by text
            )
            """,
            # "Which alerts on day D, in which state": one partition per day of opening.
            """
            CREATE TABLE IF NOT EXISTS {ks}.alerts_by_day (
                day date,
                alert_id uuid,
                citizen text,
                score double,
                drone_id text,
                report_id uuid,
                latitude double,
                longitude double,
                opened_at timestamp,
                raised_at timestamp,
                last_seen_at timestamp,
                last_drone_id text,
                last_latitude double,
                last_longitude double,
                last_score double,
                state text,
                opened_by text,
                PRIMARY KEY ((day), alert_id)
            ) WITH compression = {{'class': 'ZstdCompressor'}}
            """,
        ),
    ),
    Migration(
        3,
        "the first content of each report id",
        (
            # A drone may send a report again (a retry after a timeout): the same id and the
            # same content, stored once. Another content under an id already stored would be
            # merged cell by cell into the first; the archiver reads the digest of the first
            # content here, keeps it, and dead-letters the other. Eight bytes of digest: two
            # contents under one id colliding is a 2^-64 chance.
            """
            CREATE TABLE IF NOT EXISTS {ks}.report_ids (
                report_id uuid PRIMARY KEY,
                digest blob
            ) WITH compaction = {{'class': 'TimeWindowCompactionStrategy',
                                 'compaction_window_unit': 'DAYS',
                                 'compaction_window_size': 1}}
              AND compression = {{'class': 'ZstdCompressor', 'chunk_length_in_kb': 16}}
            """,
        ),
    ),
    Migration(
        4,
        "alerter slots",
        (
            # Each running alerter replica holds one slot, a lease renewed by lightweight
            # transactions; its Kafka transactional id is named after the slot, so that the
            # replica replacing a dead one takes its slot, and its id fences the dead one's
            # open transaction at once instead of letting it hold readers until it times out.
            """
            CREATE TABLE IF NOT EXISTS {ks}.alerter_slots (
                slot int PRIMARY KEY,
                holder text,
                claimed_at timestamp
            )
            """,
        ),
    ),
    Migration(
        5,
        "alert lifecycle",
        (
            # Each alert's lifecycle, one partition per alert: its current state in static
            # columns, each transition a row numbered from 1. A transition is one
            # lightweight transaction on the partition (the state changes only if no other
            # transition came in between), so two officers never both acknowledge it. The
            # alerter writes the statics the control plane needs to find the alert (its
            # day in alerts_by_day) when it raises it; the state is null until a transition.
            # published: the transition has reached the lifecycle topic.
            """
            CREATE TABLE IF NOT EXISTS {ks}.alert_lifecycle (
                alert_id uuid,
                seq int,
                day date static,
                citizen text static,
                raised_at timestamp static,
                state text static,
                last_seq int static,
                assignee text static,
                acknowledged_at timestamp static,
                acknowledged_by text static,
                resolved_at timestamp static,
                resolved_by text static,
                action text,
                actor text,
                at timestamp,
                note text,
                to_state text,
                to_assignee text,
                request_key text,
                published boolean,
                PRIMARY KEY ((alert_id), seq)
            ) WITH compression = {{'class': 'ZstdCompressor'}}
            """,
            # Transitions not yet on the lifecycle topic, written before each transition
            # and removed once it is published: what a crash in between leaves is found here
            # and published again (readers keep one copy of each alert_id and seq). Rows
            # live minutes: tombstones are purged after an hour (a replica down longer may
            # bring one back: a transition published again, which readers drop), and
            # nothing stays beyond a week.
            """
            CREATE TABLE IF NOT EXISTS {ks}.lifecycle_outbox (
                bucket smallint,
                alert_id uuid,
                seq int,
                written_at timestamp,
                PRIMARY KEY ((bucket), alert_id, seq)
            ) WITH gc_grace_seconds = 3600 AND default_time_to_live = 604800
            """,
            # The lifecycle beside alerts_by_day, by the same day: what lists of alerts and
            # reaction times read, a partition per day (copied from alert_lifecycle after
            # each transition; no row while an alert is open and untouched).
            """
            CREATE TABLE IF NOT EXISTS {ks}.alert_states_by_day (
                day date,
                alert_id uuid,
                state text,
                last_seq int,
                assignee text,
                acknowledged_at timestamp,
                acknowledged_by text,
                resolved_at timestamp,
                resolved_by text,
                PRIMARY KEY ((day), alert_id)
            ) WITH compression = {{'class': 'ZstdCompressor'}}
            """,
        ),
    ),
)

#: Tables whose rows expire after the force's retention.
RETAINED_TABLES: Final = (
    "reports_by_drone_day",
    "sightings_by_citizen",
    "alerts_by_day",
    "report_ids",
    "alert_lifecycle",
    "alert_states_by_day",
)
#: Of those, the append-only time series, compacted by time window (alerts are updated for
#: as long as they are open, which time windows handle badly).
_TIME_SERIES_TABLES: Final = ("reports_by_drone_day", "sightings_by_citizen", "report_ids")
#: Time-window compaction works best with fewer than ~50 windows over a row's life.
_MAX_WINDOWS: Final = 30

LATEST_VERSION: Final = MIGRATIONS[-1].version
#: Every table the migrations create.
_TABLES: Final = frozenset(
    match
    for migration in MIGRATIONS
    for statement in migration.statements
    for match in re.findall(r"CREATE TABLE IF NOT EXISTS \{ks\}\.(\w+)", statement)
)

# CQL cannot bind identifiers, so a keyspace name is checked before it enters a statement.
_KEYSPACE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


def checked_keyspace(keyspace: str) -> str:
    """``keyspace`` if it is a valid unquoted CQL keyspace name, else ValueError."""
    if not _KEYSPACE.match(keyspace):
        raise ValueError(
            f"{keyspace!r} is not a keyspace name (a letter, then up to 47 letters, digits or '_')"
        )
    return keyspace


def ensure_keyspace(
    session: Session, keyspace: str, replication: Replication, retention_days: int | None = None
) -> list[int]:
    """Create ``keyspace`` if missing, bring its schema to the latest version and, when
    ``retention_days`` is given, make rows expire after it.

    Returns the migration versions applied by this call (empty when already up to date).
    An existing keyspace keeps its replication: changing it needs a repair, which is a
    deliberate operation, not something a reconcile loop should do behind an operator's back.
    """
    checked_keyspace(keyspace)
    try:
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication.cql()}"
        )
    except (ConfigurationException, InvalidRequest) as exc:
        raise ProvisioningError(
            "InvalidReplication", f"Cassandra refused {keyspace}: {exc}"
        ) from exc
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
    _restore_missing_tables(session, keyspace)
    if retention_days is not None:
        apply_retention(session, keyspace, retention_days)
    return done


def _restore_missing_tables(session: Session, keyspace: str) -> None:
    """Make again any table the migrations create that is missing (dropped by hand): every
    migration statement is safe to run again, so running them all restores it."""
    rows = session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
    )
    missing = _TABLES - {row.table_name for row in rows}
    if not missing:
        return
    log.warning("keyspace %s: tables %s are missing; making them again", keyspace, sorted(missing))
    for migration in MIGRATIONS:
        for statement in migration.statements:
            session.execute(statement.format(ks=keyspace))


def apply_replication(session: Session, keyspace: str, replication: Replication) -> bool:
    """Give an existing keyspace ``replication``; returns whether it changed.

    Only the keyspace's metadata changes: rows already written reach their new replicas by a
    repair (``nodetool repair``), which the caller must say is needed.
    """
    checked_keyspace(keyspace)
    row = session.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
    ).one()
    if row is None or dict(row.replication) == replication.options():
        return False
    try:
        session.execute(f"ALTER KEYSPACE {keyspace} WITH replication = {replication.cql()}")
    except (ConfigurationException, InvalidRequest) as exc:
        raise ProvisioningError(
            "InvalidReplication", f"Cassandra refused {keyspace}: {exc}"
        ) from exc
    log.info("keyspace %s: replication set to %s", keyspace, replication.cql())
    return True


def apply_retention(session: Session, keyspace: str, retention_days: int) -> list[str]:
    """Set each retained table's TTL and compaction window from ``retention_days``.

    Only tables whose settings differ are altered; returns their names. New rows get the new
    TTL; rows already written keep the one they were written with.
    """
    checked_keyspace(keyspace)
    ttl = retention_days * 86_400
    window_days = max(1, -(-retention_days // _MAX_WINDOWS))
    rows = session.execute(
        "SELECT table_name, default_time_to_live, compaction FROM system_schema.tables "
        "WHERE keyspace_name = %s",
        (keyspace,),
    )
    current = {row.table_name: row for row in rows}
    altered = []
    for table in RETAINED_TABLES:
        row = current[table]
        compaction = row.compaction or {}
        windowed = table in _TIME_SERIES_TABLES
        if row.default_time_to_live == ttl and (
            not windowed or compaction.get("compaction_window_size") == str(window_days)
        ):
            continue
        statement = f"ALTER TABLE {keyspace}.{table} WITH default_time_to_live = {ttl}"
        if windowed:
            statement += (
                " AND compaction = {'class': 'TimeWindowCompactionStrategy', "
                f"'compaction_window_unit': 'DAYS', 'compaction_window_size': {window_days}}}"
            )
        session.execute(statement)
        altered.append(table)
    if altered:
        log.info("keyspace %s: retention %d days set on %s", keyspace, retention_days, altered)
    return altered


def schema_version(session: Session, keyspace: str) -> int:
    """The highest migration applied to ``keyspace``; 0 for a keyspace with none."""
    checked_keyspace(keyspace)
    rows = session.execute(f"SELECT version FROM {keyspace}.schema_migrations")
    return max((row.version for row in rows), default=0)


def drop_keyspace(session: Session, keyspace: str) -> None:
    """Delete a keyspace and all its data (the ``Delete`` deletion policy, and tests)."""
    checked_keyspace(keyspace)
    session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
