"""The audit log: a force's admin reads their force's; a platform admin reads all."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from peaceland.api import audit
from peaceland.api.auth import ForceCaller, Principal, force_role, platform_admin
from peaceland.api.db import session
from peaceland.api.models import AuditEvent, Role
from peaceland.api.paging import Cursor, Limit, Page, after_int, page_of
from peaceland.api.problems import responses
from peaceland.api.schemas import AuditOut

router = APIRouter(prefix="/v1", tags=["audit"])
Db = Annotated[Session, Depends(session)]
Admin = Annotated[Principal, Depends(platform_admin)]
ForceAdmin = Annotated[ForceCaller, Depends(force_role(Role.force_admin))]
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Action = Annotated[
    str | None, Query(max_length=64, pattern=_PRINTABLE, description="Only this action.")
]
Actor = Annotated[
    str | None, Query(max_length=320, pattern=_PRINTABLE, description="Only this actor.")
]


def _page(db: Session, query: Select[AuditEvent], cursor: str | None, limit: int) -> Page[AuditOut]:
    after = after_int(cursor)
    if after is not None:
        query = query.where(AuditEvent.id < after)
    rows = list(db.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    return page_of(rows, limit, AuditOut.model_validate, lambda e: e.id)


def _filtered(
    query: Select[AuditEvent], action: str | None, actor: str | None
) -> Select[AuditEvent]:
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    return query


@router.get(
    "/forces/{force_id}/audit", response_model=Page[AuditOut], responses=responses(401, 403, 404)
)
def force_audit(
    request: Request,
    caller: ForceAdmin,
    db: Db,
    cursor: Cursor = None,
    limit: Limit = 50,
    action: Action = None,
    actor: Actor = None,
) -> Page[AuditOut]:
    """What was done in the force, newest first."""
    query = _filtered(
        select(AuditEvent).where(AuditEvent.force_id == caller.force_id), action, actor
    )
    page = _page(db, query, cursor, limit)
    audit.record(
        db, request, caller.principal, "audit.read", f"force/{caller.force_id}/audit",
        force_id=caller.force_id,
    )  # fmt: skip
    db.commit()
    return page


@router.get("/audit", response_model=Page[AuditOut], responses=responses(401, 403))
def platform_audit(
    request: Request,
    caller: Admin,
    db: Db,
    cursor: Cursor = None,
    limit: Limit = 50,
    action: Action = None,
    actor: Actor = None,
    force_id: Annotated[
        str | None, Query(max_length=40, pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
    ] = None,
) -> Page[AuditOut]:
    """What was done anywhere on the platform, newest first."""
    query = _filtered(select(AuditEvent), action, actor)
    if force_id is not None:
        query = query.where(AuditEvent.force_id == force_id)
    page = _page(db, query, cursor, limit)
    audit.record(db, request, caller, "audit.read", "platform/audit")
    db.commit()
    return page
