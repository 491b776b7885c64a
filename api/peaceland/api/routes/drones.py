"""A force's drones and their keys."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from peaceland.api import audit, keys
from peaceland.api.auth import ANY_FORCE_ROLE, ForceCaller, force_role
from peaceland.api.conventions import IdempotencyKey, remember, replay
from peaceland.api.db import now, session
from peaceland.api.forces import live_plan, lock_force
from peaceland.api.models import Drone, DroneKey, Role
from peaceland.api.paging import Cursor, Limit, Page, after_str, page_of
from peaceland.api.problems import Problem, responses
from peaceland.api.schemas import DroneCreate, DroneOut, KeyCreate, KeyIssued, KeyOut
from peaceland.tenants.reports import MAX_DRONE_ID_LENGTH

router = APIRouter(prefix="/v1/forces/{force_id}/drones", tags=["drones and keys"])
Db = Annotated[Session, Depends(session)]
Member = Annotated[ForceCaller, Depends(force_role(*ANY_FORCE_ROLE))]
ForceAdmin = Annotated[ForceCaller, Depends(force_role(Role.force_admin))]
DroneId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_DRONE_ID_LENGTH,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="The drone's id, as its reports name it.",
    ),
]
KeyId = Annotated[str, Path(min_length=16, max_length=16, pattern=r"^[a-z0-9]{16}$")]


def _drone(db: Session, force_id: str, drone_id: str) -> Drone:
    drone = db.get(Drone, (force_id, drone_id))
    if drone is None:
        raise Problem(404, f"no drone {drone_id} in {force_id}")
    return drone


@router.get("", response_model=Page[DroneOut], responses=responses(401, 403, 404))
def list_drones(
    caller: Member, db: Db, cursor: Cursor = None, limit: Limit = 50, retired: bool = False
) -> Page[DroneOut]:
    """The force's drones (``retired=true``: the retired ones too)."""
    after = after_str(cursor)
    query = select(Drone).where(Drone.force_id == caller.force_id)
    if not retired:
        query = query.where(Drone.retired_at.is_(None))
    if after is not None:
        query = query.where(Drone.id > after)
    drones = list(db.scalars(query.order_by(Drone.id).limit(limit + 1)))
    return page_of(drones, limit, DroneOut.model_validate, lambda d: d.id)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DroneOut,
    responses=responses(401, 403, 404, 409, 422),
)
def register_drone(
    body: DroneCreate, request: Request, caller: ForceAdmin, db: Db, key: IdempotencyKey = None
) -> JSONResponse:
    """Register a drone, within the plan's drone count."""
    if (answer := replay(db, caller.principal, key, request, body)) is not None:
        return answer
    lock_force(db, caller.force_id, exclusive=False)
    plan = live_plan(request.app.state.forces, caller.force_id)
    existing = db.get(Drone, (caller.force_id, body.id))
    if existing is not None and existing.retired_at is None:
        raise Problem.field(409, "body.id", f"drone {body.id} is registered already")
    # One registration at a time per force, so that two cannot both take the last place.
    db.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"drones/{caller.force_id}"))))
    flying = db.scalar(
        select(func.count())
        .select_from(Drone)
        .where(Drone.force_id == caller.force_id, Drone.retired_at.is_(None))
    )
    limit = int(plan.get("maxDrones", 0))
    if (flying or 0) >= limit:
        raise Problem(
            409, f"police force {caller.force_id} has {flying} drones, the most its plan allows"
        )
    # A retired drone registered again comes back (its old keys stay revoked).
    drone = existing or Drone(force_id=caller.force_id, id=body.id)
    drone.display_name, drone.registered_at, drone.retired_at = body.display_name, now(), None
    db.add(drone)
    db.flush()
    out = DroneOut.model_validate(drone).model_dump(mode="json")
    headers = {"Location": f"/v1/forces/{caller.force_id}/drones/{body.id}"}
    audit.record(
        db, request, caller.principal, "drone.registered", f"drone/{body.id}",
        force_id=caller.force_id,
    )  # fmt: skip
    remember(db, caller.principal, key, request, body, 201, out, headers)
    db.commit()
    return JSONResponse(out, status_code=201, headers=headers)


@router.get("/{drone_id}", response_model=DroneOut, responses=responses(401, 403, 404))
def get_drone(drone_id: DroneId, caller: Member, db: Db) -> DroneOut:
    return DroneOut.model_validate(_drone(db, caller.force_id, drone_id))


@router.delete(
    "/{drone_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 404)
)
def retire_drone(drone_id: DroneId, request: Request, caller: ForceAdmin, db: Db) -> Response:
    """Retire a drone: its keys stop working (within seconds at every gateway)."""
    drone = _drone(db, caller.force_id, drone_id)
    if drone.retired_at is None:
        drone.retired_at = now()
        revoked = keys.revoke_all(db, caller.force_id, drone_id)
        audit.record(
            db, request, caller.principal, "drone.retired", f"drone/{drone_id}",
            force_id=caller.force_id, details={"keys_revoked": revoked},
        )  # fmt: skip
        db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{drone_id}/keys", response_model=list[KeyOut], responses=responses(401, 403, 404))
def list_keys(drone_id: DroneId, caller: ForceAdmin, db: Db) -> list[KeyOut]:
    """The drone's keys, newest first (never the keys themselves)."""
    _drone(db, caller.force_id, drone_id)
    rows = db.scalars(
        select(DroneKey)
        .where(DroneKey.force_id == caller.force_id, DroneKey.drone_id == drone_id)
        .order_by(DroneKey.created_at.desc())
    )
    at = now()
    return [keys.view(k, at) for k in rows]


@router.post(
    "/{drone_id}/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyIssued,
    responses=responses(401, 403, 404, 409, 422),
)
def issue_key(
    drone_id: DroneId,
    request: Request,
    caller: ForceAdmin,
    db: Db,
    body: KeyCreate | None = None,
) -> KeyIssued:
    """Issue a key for the drone: shown in this answer only. A drone holds two live keys at
    most (the one in use and its replacement): revoke one before issuing a third."""
    body = body or KeyCreate()
    lock_force(db, caller.force_id, exclusive=False)
    live_plan(request.app.state.forces, caller.force_id)
    # The drone's row locked, and read again under the lock: a retirement or a force's
    # deletion either finished before (and is seen) or waits for this key (and revokes it).
    drone = db.get(Drone, (caller.force_id, drone_id), with_for_update=True, populate_existing=True)
    if drone is None:
        raise Problem(404, f"no drone {drone_id} in {caller.force_id}")
    if drone.retired_at is not None:
        raise Problem(409, f"drone {drone_id} is retired")
    live = keys.live_keys(db, caller.force_id, drone_id)
    if len(live) >= keys.MAX_LIVE_KEYS:
        raise Problem(
            409,
            f"drone {drone_id} has {len(live)} live keys already "
            f"({', '.join(k.id for k in live)}): revoke one first",
        )
    expires = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row, key = keys.issue(db, drone, caller.principal.name, expires)
    db.flush()
    expires_at = row.expires_at.isoformat() if row.expires_at else None
    audit.record(
        db, request, caller.principal, "key.issued", f"key/{row.id}", force_id=caller.force_id,
        details={"drone_id": drone_id, "expires_at": expires_at},
    )  # fmt: skip
    db.commit()
    return KeyIssued(**keys.view(row).model_dump(), key=key)


@router.delete(
    "/{drone_id}/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404),
)
def revoke_key(
    drone_id: DroneId, key_id: KeyId, request: Request, caller: ForceAdmin, db: Db
) -> Response:
    """Revoke a key: every gateway refuses it within seconds."""
    row = db.get(DroneKey, key_id, with_for_update=True)
    if row is None or row.force_id != caller.force_id or row.drone_id != drone_id:
        raise Problem(404, f"no key {key_id} for drone {drone_id}")
    if row.revoked_at is None:
        keys.revoke(db, row)
        audit.record(
            db, request, caller.principal, "key.revoked", f"key/{key_id}",
            force_id=caller.force_id, details={"drone_id": drone_id},
        )  # fmt: skip
        db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
