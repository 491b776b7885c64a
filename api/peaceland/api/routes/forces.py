"""Police forces: sold on a plan, written to Kubernetes as PoliceForce resources."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from peaceland.api import audit
from peaceland.api.auth import (
    ANY_FORCE_ROLE,
    ForceCaller,
    Principal,
    force_role,
    person,
    platform_admin,
)
from peaceland.api.conventions import (
    IdempotencyKey,
    IfMatch,
    etag,
    expected_version,
    remember,
    replay,
)
from peaceland.api.db import now, session
from peaceland.api.forces import (
    bounds,
    forget,
    lock_force,
    spec_of,
    unavailable,
    valid_spec,
    view,
)
from peaceland.api.kube import (
    PLAN_ANNOTATION,
    ConflictError,
    ForceResource,
    Forces,
    KubernetesUnavailableError,
)
from peaceland.api.models import Force, Plan, Role
from peaceland.api.paging import Cursor, Limit, Page, after_str, page_of
from peaceland.api.problems import Problem, responses
from peaceland.api.schemas import ForceCreate, ForceOut, ForcePatch
from peaceland.api.settings import ApiSettings

router = APIRouter(prefix="/v1/forces", tags=["police forces"])
Db = Annotated[Session, Depends(session)]
Admin = Annotated[Principal, Depends(platform_admin)]
Person = Annotated[Principal, Depends(person)]
Member = Annotated[ForceCaller, Depends(force_role(*ANY_FORCE_ROLE))]
ForceAdmin = Annotated[ForceCaller, Depends(force_role(Role.force_admin))]
PlatformOnly = Annotated[ForceCaller, Depends(force_role())]


def _forces(request: Request) -> Forces:
    forces: Forces = request.app.state.forces
    return forces


def _plan(db: Session, plan_id: str, field: str = "body.plan_id") -> Plan:
    plan = db.get(Plan, plan_id)
    if plan is None:
        raise Problem.field(422, field, f"no plan {plan_id}")
    return plan


def _check(plan: Plan | None, spec: dict[str, object]) -> None:
    problems = (bounds(plan, spec) if plan else []) + valid_spec(spec)
    if problems:
        raise Problem(422, "; ".join(p.reason for p in problems), errors=problems)


@router.get("", response_model=Page[ForceOut], responses=responses(401, 403, 503))
def list_forces(
    request: Request, caller: Person, cursor: Cursor = None, limit: Limit = 50
) -> Page[ForceOut]:
    """Every force (a platform admin), or the forces you have a role in. Forces made with
    kubectl are listed too."""
    after = after_str(cursor)
    try:
        resources = sorted(_forces(request).list(), key=lambda r: r.name)
    except KubernetesUnavailableError as exc:
        raise unavailable(exc) from None
    seen = [
        r
        for r in resources
        if (caller.platform_admin or caller.role_in(r.name) is not None)
        and (after is None or r.name > after)
    ]
    return page_of(seen, limit, view, lambda r: r.name)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ForceOut,
    responses=responses(401, 403, 409, 422, 503),
)
def create_force(
    body: ForceCreate, request: Request, caller: Admin, db: Db, key: IdempotencyKey = None
) -> JSONResponse:
    """Sell a force on a plan: its PoliceForce is applied, and the operator makes its topics,
    keyspace, credentials and consumers. 202: poll the force until ``status.ready``."""
    if (answer := replay(db, caller, key, request, body)) is not None:
        return answer
    settings: ApiSettings = request.app.state.settings
    plan = _plan(db, body.plan_id)
    retention = body.retention_days or min(
        max(30, plan.min_retention_days), plan.max_retention_days
    )
    spec = spec_of(
        None,
        display_name=body.display_name,
        plan=plan,
        alerting=body.alerting,
        retention_days=retention,
        deletion_policy=body.deletion_policy,
        partitions=body.partitions or min(6, plan.max_partitions),
        consumer_replicas=body.consumer_replicas,
        kafka_replication_factor=settings.kafka_replication_factor,
        cassandra_replication_factor=settings.cassandra_replication_factor,
        consumer_image=settings.consumer_image,
    )
    _check(plan, spec)
    forces = _forces(request)
    # One sale of an id at a time: the second waits here, then finds the first's resource.
    lock_force(db, body.id, exclusive=True)
    try:
        if forces.get(body.id) is not None:
            raise Problem.field(409, "body.id", f"police force {body.id} exists already")
        resource = forces.apply(body.id, spec, {PLAN_ANNOTATION: plan.id})
        # Whatever the API still holds under this id belongs to a force that is gone (deleted
        # with kubectl, or made with kubectl and deleted so): archived, the new sale empty.
        # After the apply: the key lock that forgetting may take is never held across a call
        # to Kubernetes.
        forget(db, body.id)
        db.add(Force(id=body.id, plan_id=plan.id, created_at=now(), created_by=caller.name))
        db.flush()
    except KubernetesUnavailableError as exc:
        raise unavailable(exc) from None
    except ValueError as exc:
        raise Problem(422, f"the Kubernetes API refused the force: {exc}") from None
    out = view(resource)
    headers = {"Location": f"/v1/forces/{body.id}", "ETag": etag(resource.generation)}
    audit.record(
        db, request, caller, "force.created", f"force/{body.id}", force_id=body.id,
        details=body.model_dump(mode="json"),
    )  # fmt: skip
    remember(db, caller, key, request, body, 202, out.model_dump(mode="json"), headers)
    db.commit()
    return JSONResponse(out.model_dump(mode="json"), status_code=202, headers=headers)


@router.get("/{force_id}", response_model=ForceOut, responses=responses(401, 403, 404, 503))
def get_force(request: Request, caller: Member, response: Response) -> ForceOut:
    """The force, its status mirrored from the operator's."""
    try:
        resource = _forces(request).get(caller.force_id)
    except KubernetesUnavailableError as exc:
        raise unavailable(exc) from None
    if resource is None:
        raise Problem(404, f"no police force {caller.force_id}")
    response.headers["ETag"] = etag(resource.generation)
    return view(resource)


@router.patch(
    "/{force_id}",
    response_model=ForceOut,
    responses=responses(400, 401, 403, 404, 412, 422, 428, 503),
)
def change_force(
    body: ForcePatch,
    request: Request,
    caller: ForceAdmin,
    db: Db,
    response: Response,
    if_match: IfMatch = None,
) -> ForceOut:
    """Change a force's settings within its plan. Its consumers take the new alerting
    settings without a restart. A platform admin alone changes its plan or deletion policy."""
    expected = expected_version(if_match)
    who = caller.principal
    if not who.platform_admin:
        for name in ("plan_id", "deletion_policy"):
            if getattr(body, name) is not None:
                raise Problem.field(403, f"body.{name}", "only a platform admin may change it")
    forces = _forces(request)
    try:
        # The ETag is the spec's generation: the operator writing the status (it does, all
        # the time) does not make a reader's version stale. The apply itself carries the
        # resourceVersion just read, and is tried again if only the status moved meanwhile.
        for _ in range(5):
            current = _current(forces, caller.force_id, expected)
            spec, plan = _changed_spec(db, body, current, platform=who.platform_admin)
            annotations = {PLAN_ANNOTATION: plan.id} if plan else {}
            try:
                resource = forces.apply(
                    caller.force_id, spec, annotations, resource_version=current.resource_version
                )
                break
            except ConflictError:
                continue
        else:
            raise Problem(
                409, f"police force {caller.force_id} keeps changing; send the change again"
            )
        if body.plan_id:
            row = db.get(Force, caller.force_id) or Force(
                id=caller.force_id, created_at=now(), created_by=who.name
            )
            row.plan_id = body.plan_id
            db.add(row)
    except KubernetesUnavailableError as exc:
        raise unavailable(exc) from None
    except ValueError as exc:
        raise Problem(422, f"the Kubernetes API refused the change: {exc}") from None
    audit.record(
        db, request, who, "force.changed", f"force/{caller.force_id}", force_id=caller.force_id,
        details=body.model_dump(mode="json", exclude_unset=True),
    )  # fmt: skip
    db.commit()
    response.headers["ETag"] = etag(resource.generation)
    return view(resource)


def _current(forces: Forces, force_id: str, expected: str) -> ForceResource:
    current = forces.get(force_id)
    if current is None:
        raise Problem(404, f"no police force {force_id}")
    if current.deleting:
        raise Problem(409, f"police force {force_id} is being deleted")
    if str(current.generation) != expected:
        raise Problem(
            412,
            f"police force {force_id} changed since you read it (now at "
            f"{etag(current.generation)})",
        )
    return current


def _changed_spec(
    db: Session, body: ForcePatch, current: ForceResource, *, platform: bool
) -> tuple[dict[str, Any], Plan | None]:
    """The whole spec the API manages after ``body``, and the plan that bounds it."""
    plan_id = body.plan_id or current.annotations.get(PLAN_ANNOTATION)
    plan = _plan(db, plan_id) if plan_id else None
    if plan is None and not platform:
        raise Problem(
            409,
            f"police force {current.name} has no plan yet (it was made with kubectl): a "
            "platform admin gives it one before its admin changes it",
        )
    spec = spec_of(
        current.spec,
        display_name=body.display_name,
        # The plan's ceilings as they are now, whatever this change is: a plan change that
        # could not reach the force at the time reaches it with its next change.
        plan=plan,
        alerting=body.alerting,
        retention_days=body.retention_days,
        deletion_policy=body.deletion_policy,
        partitions=body.partitions,
        consumer_replicas=body.consumer_replicas,
    )
    if spec["kafka"]["partitions"] < current.spec.get("kafka", {}).get("partitions", 0):
        raise Problem.field(422, "body.partitions", "partitions may grow, never shrink")
    problems = bounds(plan, spec) if plan else []
    if not body.plan_id:
        # Only what this change sets is held to the plan: a plan lowered since does not
        # block a force's other changes (its threshold, at 3 a.m.).
        changed = {f"body.{name}" for name in body.model_fields_set}
        problems = [p for p in problems if p.field in changed]
    problems += valid_spec(spec)
    if problems:
        raise Problem(422, "; ".join(p.reason for p in problems), errors=problems)
    return spec, plan


@router.delete(
    "/{force_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses={**responses(401, 403, 404, 503), 202: {"description": "Deletion under way."}},
)
def delete_force(request: Request, caller: PlatformOnly, db: Db) -> Response:
    """Delete a force: its drones' keys stop working at once, and the operator removes or
    keeps its data as its deletion policy says. 202: the deletion is under way."""
    forces = _forces(request)
    try:
        resource = forces.get(caller.force_id)
    except KubernetesUnavailableError as exc:
        raise unavailable(exc) from None
    if resource is None:
        raise Problem(404, f"no police force {caller.force_id}")
    # Keys first, committed before the resource goes: a deletion that fails half way
    # leaves a force that takes no reports, never a deleted force whose keys still work.
    revoked, archived = forget(db, caller.force_id)
    audit.record(
        db, request, caller.principal, "force.deleted", f"force/{caller.force_id}",
        force_id=archived, details={"keys_revoked": revoked, "uid": resource.uid},
    )  # fmt: skip
    db.commit()
    try:
        forces.delete(caller.force_id)
    except KubernetesUnavailableError as exc:
        raise unavailable(exc) from None
    return Response(status_code=status.HTTP_202_ACCEPTED)
