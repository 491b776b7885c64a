"""Who owns a police force's name: one PoliceForce, cluster-wide, at a time.

A force's topics and keyspace are named after its id alone, and Kubernetes lets two
namespaces each hold a PoliceForce of the same name. Without a claim they would share one
force's data. The claim is a row written by compare-and-set (a lightweight transaction) in
a control keyspace, so two operators, or two namespaces, can never both win it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import SimpleStatement

from peaceland.tenants.errors import NameTakenError
from peaceland.tenants.provisioning.keyspace import checked_keyspace

CONTROL_KEYSPACE: Final = "peaceland_control"


def ensure_claims_table(session: Session, replication_factor: int) -> None:
    checked_keyspace(CONTROL_KEYSPACE)
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {CONTROL_KEYSPACE} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {int(replication_factor)}}}"
    )
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {CONTROL_KEYSPACE}.force_claims ("
        "force_id text PRIMARY KEY, owner text, claimed_at timestamp)"
    )


def claim(
    session: Session,
    force_id: str,
    owner: str,
    exists: Callable[[str], bool | None] = lambda _: None,
) -> None:
    """Make ``owner`` (``namespace/name``) the owner of ``force_id``, or raise
    NameTakenError (reason NameTaken), which names the current owner to our logs only, never
    in its message: that reaches the other tenant. Idempotent for the owner.

    ``exists(holder)`` says whether the holder's PoliceForce still exists (None: cannot
    tell). A claim left by one that is gone (its finalizer removed by hand, its namespace
    force-deleted) is taken over; any doubt keeps it."""
    result = session.execute(
        f"INSERT INTO {CONTROL_KEYSPACE}.force_claims (force_id, owner, claimed_at) "
        "VALUES (%s, %s, toTimestamp(now())) IF NOT EXISTS",
        (force_id, owner),
    )
    holder = owner if result.was_applied else str(result.one().owner)
    if holder != owner and exists(holder) is False and take_over(session, force_id, holder, owner):
        return
    if holder != owner:
        raise NameTakenError(force_id, holder)


def take_over(session: Session, force_id: str, stale_owner: str, owner: str) -> bool:
    """Move the claim from ``stale_owner`` (a PoliceForce that no longer exists) to ``owner``,
    if ``stale_owner`` still holds it; returns whether ``owner`` now does."""
    result = session.execute(
        f"UPDATE {CONTROL_KEYSPACE}.force_claims SET owner = %s, claimed_at = toTimestamp(now()) "
        "WHERE force_id = %s IF owner = %s",
        (owner, force_id, stale_owner),
    )
    return bool(result.was_applied) or owner_of(session, force_id) == owner


def release(session: Session, force_id: str, owner: str) -> None:
    """Give up ``force_id`` if ``owner`` holds it (deletion of the PoliceForce)."""
    session.execute(
        f"DELETE FROM {CONTROL_KEYSPACE}.force_claims WHERE force_id = %s IF owner = %s",
        (force_id, owner),
    )


def owner_of(session: Session, force_id: str) -> str | None:
    """Who holds ``force_id`` now. Read at SERIAL consistency: it sees every claim whose
    compare-and-set has been acknowledged, even one still being applied."""
    statement = SimpleStatement(
        f"SELECT owner FROM {CONTROL_KEYSPACE}.force_claims WHERE force_id = %s",
        consistency_level=ConsistencyLevel.SERIAL,
    )
    row = session.execute(statement, (force_id,)).one()
    return None if row is None else str(row.owner)
