"""The control plane's tables (SQLAlchemy 2, typed).

What Kubernetes holds (a force's desired state and its status) is not copied here: the
PoliceForce resource stays the truth, and ``forces`` only records what the platform sold
(which plan, when, by whom). Everything else a force has that Kubernetes does not — its
people, drones, keys, audit trail and usage — lives here, keyed by the force's id.

Changing a table means a new Alembic revision (``migrations/versions``); a test compares
these models with the migrated database.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Sequence,
    String,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint names fixed by convention, so that migrations name them the same everywhere.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Json = JSON().with_variant(JSONB(), "postgresql")
#: A force's id in the tables that hold a force's data: the id itself (40 characters at
#: most), or, once the force is deleted, its archived name ``<id>~<seconds>``, so that a force
#: sold again under the same id starts empty (``peaceland.api.forces.forget``).
ForceKey = String(64)
Moment = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Role(enum.StrEnum):
    """What a person may do. ``platform_admin`` is platform-wide; the others are per force."""

    platform_admin = "platform_admin"
    force_admin = "force_admin"
    officer = "officer"
    analyst = "analyst"


FORCE_ROLES = (Role.force_admin, Role.officer, Role.analyst)


class Plan(Base):
    """What a force buys: its ceilings and its prices."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100))
    max_drones: Mapped[int] = mapped_column(Integer)
    max_reports_per_second: Mapped[int] = mapped_column(Integer)
    min_retention_days: Mapped[int] = mapped_column(Integer)
    max_retention_days: Mapped[int] = mapped_column(Integer)
    max_partitions: Mapped[int] = mapped_column(Integer)
    max_consumer_replicas: Mapped[int] = mapped_column(Integer)
    #: Prices in euro cents, so that an invoice adds up exactly.
    monthly_price_cents: Mapped[int] = mapped_column(BigInteger)
    price_per_million_reports_cents: Mapped[int] = mapped_column(BigInteger)
    #: Bumped at each change: the plan's ETag.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(Moment)
    updated_at: Mapped[datetime] = mapped_column(Moment)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's own API


class Force(Base):
    """A force the platform sold (a force made with kubectl has no row until it is adopted)."""

    __tablename__ = "forces"

    id: Mapped[str] = mapped_column(ForceKey, primary_key=True)
    plan_id: Mapped[str | None] = mapped_column(ForeignKey("plans.id"))
    created_at: Mapped[datetime] = mapped_column(Moment)
    created_by: Mapped[str | None] = mapped_column(String(320))
    #: Set when the force is deleted: its row stays for the audit trail and the last invoice.
    deleted_at: Mapped[datetime | None] = mapped_column(Moment)


class User(Base):
    """A person (or, with ``oidc_subject``, one an external provider vouches for)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    #: argon2id; None for a person who signs in through an external provider only.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Moment)


class Membership(Base):
    """A person's role in one force."""

    __tablename__ = "memberships"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    force_id: Mapped[str] = mapped_column(ForceKey, primary_key=True)
    role: Mapped[Role] = mapped_column(Enum(Role, name="role", native_enum=False, length=20))
    created_at: Mapped[datetime] = mapped_column(Moment)


class Session(Base):
    """A login: a short-lived bearer token, kept as its digest, ended by logout."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(Moment)
    expires_at: Mapped[datetime] = mapped_column(Moment)
    ended_at: Mapped[datetime | None] = mapped_column(Moment)
    client: Mapped[str | None] = mapped_column(String(100))


class Drone(Base):
    __tablename__ = "drones"

    force_id: Mapped[str] = mapped_column(ForceKey, primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    registered_at: Mapped[datetime] = mapped_column(Moment)
    retired_at: Mapped[datetime | None] = mapped_column(Moment)


#: Every change of a drone key takes the next number of this sequence, under one lock, so
#: that numbers are committed in order and the gateways' feed (changes after a cursor)
#: never skips one (``keys.py``).
KEY_CHANGES = Sequence("drone_key_changes", metadata=Base.metadata)


class DroneKey(Base):
    __tablename__ = "drone_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    force_id: Mapped[str] = mapped_column(ForceKey)
    drone_id: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(Moment)
    created_by: Mapped[str | None] = mapped_column(String(320))
    expires_at: Mapped[datetime | None] = mapped_column(Moment)
    revoked_at: Mapped[datetime | None] = mapped_column(Moment)
    last_used_at: Mapped[datetime | None] = mapped_column(Moment)
    #: The number of this key's last change (made, revoked): the gateways' feed cursor.
    changed: Mapped[int] = mapped_column(BigInteger, index=True)

    __table_args__ = (Index("ix_drone_keys_drone", "force_id", "drone_id"),)


class AuditEvent(Base):
    """Who did what, when, from where: every change, and every read of personal data."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(Moment)
    actor: Mapped[str] = mapped_column(String(320))
    actor_ip: Mapped[str | None] = mapped_column(String(64))
    force_id: Mapped[str | None] = mapped_column(ForceKey)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)

    __table_args__ = (
        Index("ix_audit_events_force", "force_id", "id"),
        # "Was this force forgotten since": the usage recorder asks it of every measure.
        Index("ix_audit_events_target", "target", "at"),
    )


class IdempotentRequest(Base):
    """A create's answer, kept so that the same ``Idempotency-Key`` gets it again."""

    __tablename__ = "idempotent_requests"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_digest: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[Any] = mapped_column(Json)
    headers: Mapped[dict[str, str]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(Moment)


class DailyUsage(Base):
    """What a force used on one day (UTC): what its invoice is made of."""

    __tablename__ = "daily_usage"

    force_id: Mapped[str] = mapped_column(ForceKey, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    reports_accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Alerts raised (opened) that day, as the operator last counted them.
    alerts_raised: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The most bytes the force's keyspace took on disk that day (None: never measured).
    storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    #: The plan and its prices on that day, as the day was first counted: an invoice is
    #: priced from what was sold then, not from a plan changed since.
    plan_id: Mapped[str | None] = mapped_column(String(40))
    monthly_price_cents: Mapped[int | None] = mapped_column(BigInteger)
    price_per_million_reports_cents: Mapped[int | None] = mapped_column(BigInteger)


class AlertMeterPosition(Base):
    """Where the alert meter goes on reading a force's alerts topic (one row a partition),
    with the topic's id: new topics under the same name start from their beginning."""

    __tablename__ = "alert_meter_positions"

    force_id: Mapped[str] = mapped_column(ForceKey, primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_id: Mapped[str] = mapped_column(String(64))
    next_offset: Mapped[int] = mapped_column(BigInteger)


class UsageBatch(Base):
    """A batch of usage a gateway posted, by its id: posting it again counts nothing twice."""

    __tablename__ = "usage_batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(Moment)


__all__ = [
    "KEY_CHANGES",
    "AlertMeterPosition",
    "AuditEvent",
    "Base",
    "DailyUsage",
    "Drone",
    "DroneKey",
    "Force",
    "IdempotentRequest",
    "Membership",
    "Plan",
    "Role",
    "Session",
    "UsageBatch",
    "User",
]
