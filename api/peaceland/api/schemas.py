"""What the API takes and returns (pydantic), with the examples /docs shows."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from peaceland.api.models import Role
from peaceland.tenants.forces import MAX_FORCE_ID_LENGTH
from peaceland.tenants.reports import SCORE_MAX, SCORE_MIN, DroneId

_IN = ConfigDict(extra="forbid")
Slug = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_FORCE_ID_LENGTH,
        pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
    ),
]
# No control characters anywhere (PostgreSQL refuses NUL; Kubernetes refuses C0 and C1 in
# the resource), no blank at either end.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=rf"^[^\s{_CONTROL}](?:[^{_CONTROL}]*[^\s{_CONTROL}])?$",
    ),
]
Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=320,
        pattern=rf"^[^@\s{_CONTROL}]+@[^@\s{_CONTROL}]+$",
        examples=["a@b.fr"],
    ),
]
Password = Annotated[str, Field(min_length=1, max_length=1_000, pattern=r"^[^\x00]*$")]
#: An id a gateway chose (a batch's).
BatchId = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
KeyId = Annotated[str, Field(min_length=16, max_length=16, pattern=r"^[a-z0-9]+$")]
Count = Annotated[int, Field(ge=1, le=1_000_000)]
Cents = Annotated[int, Field(ge=0, le=10**12)]
Days = Annotated[int, Field(ge=1, le=3_650)]


# --------------------------------------------------------------------------- sign in


class TokenRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email": "admin@peaceland.local", "password": "…"}]},
    )

    email: Email
    password: Password


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme, not a secret
    expires_at: datetime


class Me(BaseModel):
    user_id: int
    email: str
    display_name: str
    platform_admin: bool
    #: The person's role in each force they belong to.
    roles: dict[str, Role]


# --------------------------------------------------------------------------- plans


class PlanLimits(BaseModel):
    model_config = _IN

    max_drones: Annotated[int, Field(ge=1, le=100_000)]
    max_reports_per_second: Count
    min_retention_days: Days = 1
    max_retention_days: Days = 3_650
    max_partitions: Annotated[int, Field(ge=1, le=1_000)] = 12
    max_consumer_replicas: Annotated[int, Field(ge=1, le=100)] = 3
    monthly_price_cents: Cents = 0
    price_per_million_reports_cents: Cents = 0

    @model_validator(mode="after")
    def _retention(self) -> PlanLimits:
        if self.min_retention_days > self.max_retention_days:
            raise ValueError("min_retention_days is above max_retention_days")
        return self


class PlanCreate(PlanLimits):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "city",
                    "display_name": "City",
                    "max_drones": 500,
                    "max_reports_per_second": 200,
                    "min_retention_days": 7,
                    "max_retention_days": 90,
                    "max_partitions": 12,
                    "max_consumer_replicas": 3,
                    "monthly_price_cents": 250_000,
                    "price_per_million_reports_cents": 900,
                }
            ]
        },
    )

    id: Slug
    display_name: Name


class PlanPatch(BaseModel):
    model_config = _IN

    display_name: Name | None = None
    max_drones: Annotated[int, Field(ge=1, le=100_000)] | None = None
    max_reports_per_second: Count | None = None
    min_retention_days: Days | None = None
    max_retention_days: Days | None = None
    max_partitions: Annotated[int, Field(ge=1, le=1_000)] | None = None
    max_consumer_replicas: Annotated[int, Field(ge=1, le=100)] | None = None
    monthly_price_cents: Cents | None = None
    price_per_million_reports_cents: Cents | None = None


class PlanOut(PlanLimits):
    model_config = ConfigDict(from_attributes=True)

    id: str
    display_name: str
    version: int
    created_at: datetime
    updated_at: datetime


# --------------------------------------------------------------------------- forces


class AlertingIn(BaseModel):
    model_config = _IN

    score_threshold: Annotated[float, Field(ge=SCORE_MIN, le=SCORE_MAX, allow_inf_nan=False)]
    dedup_window_seconds: Annotated[int, Field(ge=0, le=7 * 86_400)]


class ForceCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "lyon-metropole",
                    "display_name": "Police de Lyon",
                    "plan_id": "city",
                    "alerting": {"score_threshold": 20, "dedup_window_seconds": 600},
                    "retention_days": 30,
                    "deletion_policy": "Retain",
                }
            ]
        },
    )

    id: Slug
    display_name: Name
    plan_id: Slug
    alerting: AlertingIn = AlertingIn(score_threshold=20.0, dedup_window_seconds=600)
    retention_days: Days | None = None
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    partitions: Annotated[int, Field(ge=1, le=1_000)] | None = None
    consumer_replicas: Annotated[int, Field(ge=1, le=100)] | None = None


class ForcePatch(BaseModel):
    """What may change. ``plan_id`` and ``deletion_policy``: a platform admin only."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"alerting": {"score_threshold": 15, "dedup_window_seconds": 300}}]
        },
    )

    display_name: Name | None = None
    plan_id: Slug | None = None
    alerting: AlertingIn | None = None
    retention_days: Days | None = None
    deletion_policy: Literal["Retain", "Delete"] | None = None
    partitions: Annotated[int, Field(ge=1, le=1_000)] | None = None
    consumer_replicas: Annotated[int, Field(ge=1, le=100)] | None = None


class ConditionOut(BaseModel):
    type: str
    status: str
    reason: str = ""
    message: str = ""


class ForceStatus(BaseModel):
    """Mirrored from the PoliceForce's status, as the operator wrote it."""

    phase: str
    ready: bool
    #: Whether the operator has seen the latest change (its observedGeneration).
    current: bool
    conditions: list[ConditionOut]


class ForceOut(BaseModel):
    id: str
    display_name: str
    #: The plan it was sold on; None for a force made with kubectl and not yet given one.
    plan_id: str | None
    max_drones: int
    max_reports_per_second: int
    alerting: AlertingIn
    retention_days: int
    deletion_policy: str
    partitions: int
    consumer_replicas: int
    status: ForceStatus
    deleting: bool
    created_at: str | None
    #: The spec's version (the resource's generation): what the ETag says, and what
    #: If-Match must name to change the force.
    version: str


# --------------------------------------------------------------------------- drones, keys


class DroneCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"id": "drone-0042", "display_name": "Nord 42"}]},
    )

    id: DroneId
    display_name: Name | None = None


class DroneOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    display_name: str | None
    registered_at: datetime
    retired_at: datetime | None


class DronePositionOut(BaseModel):
    """Where a drone was at its last report."""

    drone_id: str
    latitude: float
    longitude: float
    #: The report's own time (the drone's clock).
    reported_at: datetime


class DronePositions(BaseModel):
    """The last position of every drone that reported lately (the control plane reads
    the force's reports from ``lookback_seconds`` before it started reading)."""

    drones: list[DronePositionOut]
    #: False while the reader has not yet read every report there was when it started:
    #: drones may be missing or behind. Ask again.
    complete: bool
    lookback_seconds: float


class KeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"expires_in_days": 90}]}
    )

    #: Days the key lives; none: until revoked.
    expires_in_days: Annotated[int, Field(ge=1, le=3_650)] | None = 90


class KeyOut(BaseModel):
    key_id: str
    drone_id: str
    state: Literal["live", "expired", "revoked"]
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyFound(KeyOut):
    force_id: str


class KeyIssued(KeyOut):
    #: The key itself: shown this once, never again (only its digest is kept).
    key: str


# --------------------------------------------------------------------------- people


class MemberCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"email": "officer@lyon.fr", "display_name": "A. Martin", "role": "officer"}
            ]
        },
    )

    email: Email
    display_name: Name
    role: Literal[Role.force_admin, Role.officer, Role.analyst]


class MemberOut(BaseModel):
    user_id: int
    email: str
    display_name: str
    role: Role
    created_at: datetime


class MemberAdded(MemberOut):
    #: Given when the person's account was made by this request: shown this once.
    initial_password: str | None = None


class PasswordChange(BaseModel):
    model_config = _IN

    current_password: Password
    new_password: Annotated[str, Field(min_length=12, max_length=1_000, pattern=r"^[^\x00]*$")]


# --------------------------------------------------------------------------- audit, usage


class StatisticOut(BaseModel):
    name: str
    description: str


class StatisticAnswer(BaseModel):
    """A predefined statistic of the force over [since, until): one record per row."""

    name: str
    since: datetime
    until: datetime
    columns: list[str]
    rows: list[dict[str, Any]]


class QueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1,
        max_length=20_000,
        description="One read-only SELECT over the force's tables reports, sightings, "
        "alerts and lifecycle (docs/analytics.md).",
    )
    max_rows: int = Field(default=1_000, ge=1, le=100_000, description="Rows returned at most.")
    timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="Seconds before the query is stopped."
    )


class QueryOut(BaseModel):
    """What the query answered: its columns, then its rows (lists, in the columns' order)."""

    sql: str = Field(description="The query as it ran, once checked.")
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = Field(description="True when there were more rows than max_rows.")
    seconds: float


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    actor_ip: str | None
    force_id: str | None
    action: str
    target: str
    details: dict[str, Any]


class UsageDay(BaseModel):
    day: date
    #: Reports the gateways accepted (202) for the force that day, UTC.
    reports_accepted: int
    #: Alerts raised (opened) that day, as the operator counted them in the force's store.
    alerts_raised: int = 0
    #: The most bytes the force's data took on disk that day, every replica counted (None:
    #: not measured that day).
    storage_bytes: int | None = None


class Invoice(BaseModel):
    force_id: str
    plan_id: str | None
    month: str
    days: list[UsageDay]
    reports_accepted: int
    alerts_raised: int
    #: The most bytes stored on any day of the month.
    peak_storage_bytes: int
    monthly_price_cents: int
    reports_price_cents: int
    total_cents: int


class UsagePost(BaseModel):
    """What a gateway counted since its last post (its id makes a re-post harmless)."""

    model_config = _IN

    batch_id: BatchId
    #: Reports accepted by force and UTC day (a gateway posts every few seconds: far fewer
    #: than a trillion a day).
    reports: dict[Slug, dict[date, Annotated[int, Field(ge=0, le=10**12)]]] = {}
    #: When each key was last seen.
    keys_used: dict[KeyId, datetime] = {}


# --------------------------------------------------------------------------- alerts

AlertStateName = Literal["open", "acknowledged", "resolved"]
#: A note: any text but control characters (line breaks and tabs allowed).
NoteText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2_000,
        pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*\S[^\x00-\x08\x0b-\x1f\x7f]*$",
    ),
]


class AlertOut(BaseModel):
    """An alert: who was seen, where and when it was raised, where the citizen was last
    seen, and where the force's officers are with it."""

    alert_id: uuid.UUID
    citizen: str
    #: The score of the sighting that raised it.
    score: float
    drone_id: str
    report_id: uuid.UUID
    latitude: float
    longitude: float
    #: When the report that raised it was taken.
    opened_at: datetime
    #: When the platform raised it.
    raised_at: datetime
    last_seen_at: datetime | None = None
    last_drone_id: str | None = None
    last_latitude: float | None = None
    last_longitude: float | None = None
    last_score: float | None = None
    state: AlertStateName
    assignee: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    #: acknowledged_at - raised_at, in seconds: the officers' reaction time.
    reaction_seconds: float | None = None
    #: resolved_at - raised_at, in seconds.
    resolution_seconds: float | None = None


class TransitionOut(BaseModel):
    seq: int
    action: Literal["acknowledge", "assign", "resolve", "note"]
    #: The state the transition left the alert in.
    state: AlertStateName
    actor: str
    at: datetime
    assignee: str | None = None
    note: str | None = None


class SightingOut(BaseModel):
    reported_at: datetime
    drone_id: str
    score: float


class AlertDetail(AlertOut):
    #: Every transition, in order.
    transitions: list[TransitionOut]
    #: Every sighting of the citizen from the alert's opening to its last (at most 1,000).
    sightings: list[SightingOut]


class _Transition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Why, for the record (optional).
    note: NoteText | None = None

    @property
    def assignee(self) -> str | None:
        return None


class Acknowledge(_Transition):
    """Take an open alert: the reaction time stops."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"action": "acknowledge"}]}
    )
    action: Literal["acknowledge"]


class Resolve(_Transition):
    """Close an open or acknowledged alert."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"action": "resolve", "note": "false match, checked"}]},
    )
    action: Literal["resolve"]


class Assign(BaseModel):
    """Give an alert not resolved to an officer or force admin of the force."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"action": "assign", "assignee": "officer@lyon.fr"}]},
    )
    action: Literal["assign"]
    assignee: Email
    note: NoteText | None = None


class AddNote(BaseModel):
    """Add a note to an alert, whatever its state."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"action": "note", "note": "patrol 12 on its way"}]},
    )
    action: Literal["note"]
    note: NoteText

    @property
    def assignee(self) -> str | None:
        return None


#: One transition of an alert, by its ``action``.
TransitionIn = Annotated[Acknowledge | Resolve | Assign | AddNote, Field(discriminator="action")]


class ReactionFigures(BaseModel):
    """How the force reacted to the alerts opened in [since, until)."""

    since: datetime
    until: datetime
    raised: int
    open: int
    acknowledged: int
    resolved: int
    #: Reaction time (acknowledged - raised) of the alerts acknowledged, nearest-rank
    #: percentiles, in seconds; None when none was.
    acknowledged_p50_seconds: float | None
    acknowledged_p90_seconds: float | None
    #: Resolution time (resolved - raised), likewise.
    resolved_p50_seconds: float | None
    resolved_p90_seconds: float | None
