"""Plans: what forces buy. A platform admin manages them."""

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from peaceland.api import audit
from peaceland.api.auth import Principal, platform_admin
from peaceland.api.conventions import (
    IdempotencyKey,
    IfMatch,
    etag,
    expected_version,
    remember,
    replay,
)
from peaceland.api.db import now, session
from peaceland.api.forces import spec_of
from peaceland.api.kube import PLAN_ANNOTATION, ConflictError, Forces, KubernetesUnavailableError
from peaceland.api.models import DailyUsage, Force, Plan
from peaceland.api.paging import Cursor, Limit, Page, after_str, page_of
from peaceland.api.problems import Problem, responses
from peaceland.api.schemas import PlanCreate, PlanLimits, PlanOut, PlanPatch

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/plans", tags=["plans"])
PlanId = Annotated[
    str, Path(min_length=1, max_length=40, pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
]
Db = Annotated[Session, Depends(session)]
Admin = Annotated[Principal, Depends(platform_admin)]


def _found(db: Session, plan_id: str) -> Plan:
    plan = db.get(Plan, plan_id)
    if plan is None:
        raise Problem(404, f"no plan {plan_id}")
    return plan


@router.get("", response_model=Page[PlanOut], responses=responses(401, 403))
def list_plans(_: Admin, db: Db, cursor: Cursor = None, limit: Limit = 50) -> Page[PlanOut]:
    after = after_str(cursor)
    query = select(Plan).order_by(Plan.id).limit(limit + 1)
    if after is not None:
        query = query.where(Plan.id > after)
    return page_of(list(db.scalars(query)), limit, PlanOut.model_validate, lambda p: p.id)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PlanOut,
    responses=responses(401, 403, 409, 422),
)
def create_plan(
    body: PlanCreate, request: Request, caller: Admin, db: Db, key: IdempotencyKey = None
) -> JSONResponse:
    if (answer := replay(db, caller, key, request, body)) is not None:
        return answer
    if db.get(Plan, body.id) is not None:
        raise Problem.field(409, "body.id", f"plan {body.id} exists already")
    at = now()
    plan = Plan(**body.model_dump(), created_at=at, updated_at=at)
    db.add(plan)
    db.flush()
    out = PlanOut.model_validate(plan)
    headers = {"ETag": etag(plan.version), "Location": f"/v1/plans/{plan.id}"}
    audit.record(db, request, caller, "plan.created", f"plan/{plan.id}", details=body.model_dump())
    remember(db, caller, key, request, body, 201, out.model_dump(mode="json"), headers)
    db.commit()
    return JSONResponse(out.model_dump(mode="json"), status_code=201, headers=headers)


@router.get("/{plan_id}", response_model=PlanOut, responses=responses(401, 403, 404))
def get_plan(plan_id: PlanId, _: Admin, db: Db, response: Response) -> PlanOut:
    plan = _found(db, plan_id)
    response.headers["ETag"] = etag(plan.version)
    return PlanOut.model_validate(plan)


@router.patch(
    "/{plan_id}", response_model=PlanOut, responses=responses(400, 401, 403, 404, 412, 422, 428)
)
def change_plan(
    plan_id: PlanId,
    body: PlanPatch,
    request: Request,
    caller: Admin,
    db: Db,
    response: Response,
    if_match: IfMatch = None,
) -> PlanOut:
    """Change a plan. Forces already on it keep their limits until their next change."""
    expected = expected_version(if_match)
    plan = _found(db, plan_id)
    if str(plan.version) != expected:
        raise Problem(412, f"plan {plan_id} changed since (now at {etag(plan.version)})")
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    limits = {k: v for k, v in changes.items() if k != "display_name"}
    merged = {**PlanLimits.model_validate(plan, from_attributes=True).model_dump(), **limits}
    try:
        PlanLimits.model_validate(merged)
    except ValueError as exc:
        raise Problem(422, str(exc).splitlines()[-1].strip()) from None
    for name, value in changes.items():
        setattr(plan, name, value)
    plan.updated_at = now()
    audit.record(db, request, caller, "plan.changed", f"plan/{plan_id}", details=changes)
    try:
        db.commit()
    except StaleDataError:
        raise Problem(412, f"plan {plan_id} changed since you read it") from None
    if {"max_drones", "max_reports_per_second"} & changes.keys():
        _follow(request, db, plan)
    response.headers["ETag"] = etag(plan.version)
    return PlanOut.model_validate(plan)


def _follow(request: Request, db: Session, plan: Plan) -> None:
    """The forces on ``plan`` take its new ceilings at once (their PoliceForces: drones,
    Kafka quota), as the gateways do (their feed). A force that cannot be written now (being
    deleted, Kubernetes unreachable) is logged and takes them at its next change."""
    forces: Forces = request.app.state.forces
    on_plan = list(
        db.scalars(select(Force.id).where(Force.plan_id == plan.id, Force.deleted_at.is_(None)))
    )
    for force_id in on_plan:
        for _ in range(3):
            try:
                current = forces.get(force_id)
                if current is None or current.deleting:
                    break
                spec = spec_of(current.spec, plan=plan)
                forces.apply(
                    force_id,
                    spec,
                    {PLAN_ANNOTATION: plan.id},
                    resource_version=current.resource_version,
                )
                break
            except ConflictError:
                continue
            except (KubernetesUnavailableError, ValueError) as exc:
                log.error(
                    "force %s keeps plan %s's old ceilings for now: %s", force_id, plan.id, exc
                )
                break


@router.delete(
    "/{plan_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 404, 409)
)
def delete_plan(plan_id: PlanId, request: Request, caller: Admin, db: Db) -> Response:
    """Delete a plan no force was ever sold on."""
    plan = _found(db, plan_id)
    # A deleted force keeps its plan too: its last invoices are priced from it.
    in_use = db.scalars(select(Force.id).where(Force.plan_id == plan_id).limit(1)).first()
    if in_use is not None:
        raise Problem(409, f"plan {plan_id} is the plan of force {in_use}")
    billed = db.scalars(select(DailyUsage.force_id).where(DailyUsage.plan_id == plan_id).limit(1))
    if billed.first() is not None:
        raise Problem(409, f"plan {plan_id} priced days of usage: their invoices need it")
    db.delete(plan)
    audit.record(db, request, caller, "plan.deleted", f"plan/{plan_id}")
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
