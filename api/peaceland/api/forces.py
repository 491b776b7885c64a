"""A police force as the API shows it and writes it: the PoliceForce's spec, bounded by a plan.

Plain functions over dicts and models; the routes (``routes/forces.py``) call them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from peaceland.api import keys
from peaceland.api.db import now
from peaceland.api.kube import PLAN_ANNOTATION, ForceResource, Forces, KubernetesUnavailableError
from peaceland.api.models import AuditEvent, DailyUsage, Drone, DroneKey, Force, Membership, Plan
from peaceland.api.problems import FieldProblem, Problem
from peaceland.api.schemas import AlertingIn, ConditionOut, ForceOut, ForceStatus
from peaceland.tenants.policeforce import spec_from

#: What a force's consumers are built from, when the platform says nothing else.
DEFAULT_IMAGE: Final = "peaceland/services:0.1.0"


def spec_of(
    current: dict[str, Any] | None,
    *,
    display_name: str | None = None,
    plan: Plan | None = None,
    alerting: AlertingIn | None = None,
    retention_days: int | None = None,
    deletion_policy: str | None = None,
    partitions: int | None = None,
    consumer_replicas: int | None = None,
    kafka_replication_factor: int = 3,
    cassandra_replication_factor: int = 3,
    consumer_image: str | None = None,
) -> dict[str, Any]:
    """Every field the API manages, from ``current`` (None: a new force) and the changes.

    Server-side apply removes a field its manager stops sending, so each apply sends them
    all: the ones not changed keep their current values (a force made with kubectl keeps
    its replication and image when its threshold changes).
    """
    spec = current or {}
    kafka = spec.get("kafka", {})
    cassandra = spec.get("cassandra", {})
    consumers = spec.get("consumers", {})
    old_alerting = spec.get("alerting", {})
    out: dict[str, Any] = {
        "displayName": display_name or spec.get("displayName"),
        "plan": {
            "maxDrones": plan.max_drones if plan else spec["plan"]["maxDrones"],
            "maxReportsPerSecond": (
                plan.max_reports_per_second if plan else spec["plan"]["maxReportsPerSecond"]
            ),
        },
        "alerting": {
            "scoreThreshold": (
                alerting.score_threshold if alerting else old_alerting.get("scoreThreshold", 20.0)
            ),
            "dedupWindowSeconds": (
                alerting.dedup_window_seconds
                if alerting
                else old_alerting.get("dedupWindowSeconds", 600)
            ),
        },
        "retentionDays": retention_days or spec.get("retentionDays", 30),
        "deletionPolicy": deletion_policy or spec.get("deletionPolicy", "Retain"),
        "kafka": {
            "partitions": partitions or kafka.get("partitions", 6),
            "replicationFactor": kafka.get("replicationFactor", kafka_replication_factor),
        },
        "cassandra": {
            "replicationFactor": cassandra.get("replicationFactor", cassandra_replication_factor)
        },
        "consumers": {
            "replicas": consumer_replicas or consumers.get("replicas", 1),
            "image": consumers.get("image", consumer_image or DEFAULT_IMAGE),
        },
    }
    return out


def bounds(plan: Plan, spec: dict[str, Any]) -> list[FieldProblem]:
    """What of ``spec`` the plan does not allow."""
    problems = []
    retention = spec["retentionDays"]
    if not plan.min_retention_days <= retention <= plan.max_retention_days:
        problems.append(
            FieldProblem(
                field="body.retention_days",
                reason=f"plan {plan.id} keeps reports {plan.min_retention_days} to "
                f"{plan.max_retention_days} days, not {retention}",
            )
        )
    if spec["kafka"]["partitions"] > plan.max_partitions:
        problems.append(
            FieldProblem(
                field="body.partitions",
                reason=f"plan {plan.id} allows at most {plan.max_partitions} partitions",
            )
        )
    if spec["consumers"]["replicas"] > plan.max_consumer_replicas:
        problems.append(
            FieldProblem(
                field="body.consumer_replicas",
                reason=f"plan {plan.id} allows at most {plan.max_consumer_replicas} replicas "
                "of each consumer",
            )
        )
    return problems


def valid_spec(spec: dict[str, Any]) -> list[FieldProblem]:
    """What the PoliceForce schema itself refuses (the CRD would refuse it too)."""
    try:
        spec_from(spec)
    except ValidationError as exc:
        return [
            FieldProblem(field="spec." + ".".join(str(p) for p in e["loc"]), reason=e["msg"])
            for e in exc.errors()
        ]
    return []


def view(resource: ForceResource) -> ForceOut:
    """The force as the API shows it: the resource's spec and its mirrored status."""
    spec, status = resource.spec, resource.status
    conditions = [
        ConditionOut(
            type=str(c.get("type", "")),
            status=str(c.get("status", "Unknown")),
            reason=str(c.get("reason", "")),
            message=str(c.get("message", "")),
        )
        for c in status.get("conditions", [])
    ]
    phase = str(status.get("phase", "Pending"))
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    current = status.get("observedGeneration") == resource.generation
    plan = spec.get("plan", {})
    alerting = spec.get("alerting", {})
    return ForceOut(
        id=resource.name,
        display_name=str(spec.get("displayName", resource.name)),
        plan_id=resource.annotations.get(PLAN_ANNOTATION),
        max_drones=int(plan.get("maxDrones", 0)),
        max_reports_per_second=int(plan.get("maxReportsPerSecond", 0)),
        alerting=AlertingIn(
            score_threshold=float(alerting.get("scoreThreshold", 20.0)),
            dedup_window_seconds=int(alerting.get("dedupWindowSeconds", 600)),
        ),
        retention_days=int(spec.get("retentionDays", 30)),
        deletion_policy=str(spec.get("deletionPolicy", "Retain")),
        partitions=int(spec.get("kafka", {}).get("partitions", 6)),
        consumer_replicas=int(spec.get("consumers", {}).get("replicas", 1)),
        status=ForceStatus(
            phase="Deleting" if resource.deleting else phase,
            ready=ready and current and not resource.deleting,
            current=current,
            conditions=conditions,
        ),
        deleting=resource.deleting,
        created_at=resource.created,
        version=str(resource.generation),
    )


def lock_force(db: Session, force_id: str, *, exclusive: bool) -> None:
    """The force's lock, until ``db``'s transaction ends. Exclusive: what makes or forgets
    the force (a sale, a deletion, the reconciler); shared: what writes into it (people,
    drones, keys), which may run together but never while the force is made or forgotten,
    so nothing is written into a force half archived."""
    lock = func.pg_advisory_xact_lock if exclusive else func.pg_advisory_xact_lock_shared
    db.execute(select(lock(func.hashtext(f"force/{force_id}"))))


def archived_name(force_id: str, at: datetime) -> str:
    return f"{force_id}~{int(at.timestamp() * 1000)}"


def forget(db: Session, force_id: str) -> tuple[int, str]:
    """Everything the API keeps of a force that goes, in ``db``'s transaction: its drones
    retired (their rows locked first, so that no key is issued to them meanwhile), then every
    key revoked (the gateways drop them), its people's roles removed; its drones, keys, audit
    trail, usage and row then kept under an archived name, so that the id sold again starts
    empty while the platform admin still reads the old force's history. Returns the keys
    revoked and the archived name."""
    lock_force(db, force_id, exclusive=True)
    at = now()
    # Drones, then keys, then usage: the order every other writer of them takes them in.
    db.execute(
        update(Drone)
        .where(Drone.force_id == force_id, Drone.retired_at.is_(None))
        .values(retired_at=at)
    )
    revoked = keys.revoke_all(db, force_id)
    db.execute(delete(Membership).where(Membership.force_id == force_id))
    archived = archived_name(force_id, at)
    row = db.get(Force, force_id)
    if row is not None and row.deleted_at is None:
        row.deleted_at = at
    db.flush()
    for model, column in (
        (Drone, Drone.force_id),
        (DroneKey, DroneKey.force_id),
        (AuditEvent, AuditEvent.force_id),
        (DailyUsage, DailyUsage.force_id),
        (Force, Force.id),
    ):
        db.execute(update(model).where(column == force_id).values({column.key: archived}))
    db.expire_all()
    return revoked, archived


#: The audit actions of a force forgotten: deleted through the API, or gone from Kubernetes.
FORGOTTEN_ACTIONS: Final = ("force.deleted", "force.gone")


def forgotten(db: Session, force_id: str, uid: str) -> bool:
    """Whether the API forgot the force whose resource has ``uid`` (the resource may linger
    while it is deleted); a force sold again under the same name has another UID."""
    query = select(AuditEvent.id).where(
        AuditEvent.target == f"force/{force_id}",
        AuditEvent.action.in_(FORGOTTEN_ACTIONS),
        AuditEvent.details["uid"].as_string() == uid,
    )
    return db.scalars(query.limit(1)).first() is not None


def unavailable(exc: KubernetesUnavailableError) -> Problem:
    """A Kubernetes API that did not answer, as the answer to the request that needed it."""
    return Problem(503, f"the Kubernetes API did not answer: {exc}", headers={"Retry-After": "5"})


def live_plan(forces: Forces, force_id: str) -> dict[str, int]:
    """The plan limits of a force that exists and is not being deleted (what writes to its
    people, drones and keys need); 404 once it is gone, 409 while it goes."""
    try:
        resource = forces.get(force_id)
    except KubernetesUnavailableError as exc:
        raise unavailable(exc) from None
    if resource is None:
        raise Problem(404, f"no police force {force_id}")
    if resource.deleting:
        raise Problem(409, f"police force {force_id} is being deleted")
    plan: dict[str, int] = resource.spec.get("plan", {})
    return plan
