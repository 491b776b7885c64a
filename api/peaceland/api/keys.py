"""Drone keys: issued, revoked, and fed to the gateways as changes after a cursor.

Every change of a key (issued, revoked) takes the next number of the ``drone_key_changes``
sequence while holding one transaction-scoped advisory lock: writers of keys take turns, so
their numbers commit in order, and a gateway that has seen change N has seen every change
before it. (Without the lock, change 6 could commit before change 5, and a gateway reading
"after 5" just then would skip 5 for ever.) Key changes are rare — a person issuing or
revoking — so the turn-taking costs nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from peaceland.api.db import now
from peaceland.api.models import KEY_CHANGES, Drone, DroneKey, Force, Plan
from peaceland.api.schemas import KeyOut
from peaceland.tenants.drone_keys import ForceLimits, KeyChanges, KeyGrant, key_digest, new_key

_KEY_LOCK: Final = 7_354_210_002
#: Live keys a drone may hold at once: the one in use and its replacement, during a rotation.
MAX_LIVE_KEYS: Final = 2
#: Most changes in one page of the feed.
FEED_PAGE: Final = 5_000


def _next_change(db: Session) -> int:
    db.execute(select(func.pg_advisory_xact_lock(_KEY_LOCK)))
    return int(db.execute(KEY_CHANGES.next_value()).scalar_one())


def is_live(key: DroneKey, at: datetime) -> bool:
    return key.revoked_at is None and (key.expires_at is None or key.expires_at > at)


def view(key: DroneKey, at: datetime | None = None) -> KeyOut:
    at = at or now()
    state: Literal["live", "expired", "revoked"]
    if key.revoked_at is not None:
        state = "revoked"
    elif key.expires_at is not None and key.expires_at <= at:
        state = "expired"
    else:
        state = "live"
    return KeyOut(
        key_id=key.id,
        drone_id=key.drone_id,
        state=state,
        created_at=key.created_at,
        created_by=key.created_by,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
    )


def live_keys(db: Session, force_id: str, drone_id: str) -> list[DroneKey]:
    at = now()
    keys = db.scalars(
        select(DroneKey).where(
            DroneKey.force_id == force_id,
            DroneKey.drone_id == drone_id,
            DroneKey.revoked_at.is_(None),
        )
    )
    return [k for k in keys if is_live(k, at)]


def issue(db: Session, drone: Drone, by: str, expires_in: timedelta | None) -> tuple[DroneKey, str]:
    """A new key for ``drone``: the row (added to ``db``) and the key, to be shown once."""
    key_id, key = new_key()
    at = now()
    row = DroneKey(
        id=key_id,
        force_id=drone.force_id,
        drone_id=drone.id,
        digest=key_digest(key),
        created_at=at,
        created_by=by,
        expires_at=at + expires_in if expires_in else None,
        changed=_next_change(db),
    )
    db.add(row)
    return row, key


def revoke(db: Session, key: DroneKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = now()
        key.changed = _next_change(db)


def revoke_all(db: Session, force_id: str, drone_id: str | None = None) -> int:
    """Revoke every key of a force (or of one of its drones); how many were live."""
    query = select(DroneKey).where(DroneKey.force_id == force_id, DroneKey.revoked_at.is_(None))
    if drone_id is not None:
        query = query.where(DroneKey.drone_id == drone_id)
    keys = list(db.scalars(query.order_by(DroneKey.id).with_for_update()))
    for key in keys:
        revoke(db, key)
    return len(keys)


def changes(db: Session, cursor: int) -> KeyChanges:
    """The key changes after ``cursor``, oldest first, one page at most."""
    found = list(
        db.execute(
            select(DroneKey, Drone.id, Drone.retired_at)
            .join(
                Drone,
                (Drone.force_id == DroneKey.force_id) & (Drone.id == DroneKey.drone_id),
                isouter=True,
            )
            .where(DroneKey.changed > cursor)
            .order_by(DroneKey.changed)
            .limit(FEED_PAGE + 1)
        )
    )
    more = len(found) > FEED_PAGE
    found = found[:FEED_PAGE]
    # A key of a retired (or unknown) drone is never granted, revoked or not: a second guard
    # behind the revocation that retiring a drone makes.
    at = now()
    live_ids = {
        k.id
        for k, drone, retired in found
        if drone is not None and retired is None and "~" not in k.force_id
    }
    rows = [k for k, _, _ in found]
    grants = [
        KeyGrant(
            key_id=r.id,
            force_id=r.force_id,
            drone_id=r.drone_id,
            digest=r.digest,
            expires_at=r.expires_at,
        )
        for r in rows
        if is_live(r, at) and r.id in live_ids
    ]
    revoked = [r.id for r in rows if not (is_live(r, at) and r.id in live_ids)]
    limits = {
        force_id: ForceLimits(max_reports_per_second=rate)
        for force_id, rate in db.execute(
            select(Force.id, Plan.max_reports_per_second)
            .join(Plan, Plan.id == Force.plan_id)
            .where(Force.deleted_at.is_(None))
        )
    }
    return KeyChanges(
        cursor=rows[-1].changed if rows else cursor,
        grants=grants,
        revoked=revoked,
        more=more,
        limits=limits,
    )
