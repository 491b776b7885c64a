"""A force's people: its admins, officers and analysts."""

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from peaceland.api import audit, security
from peaceland.api.auth import ForceCaller, force_role
from peaceland.api.conventions import IdempotencyKey, remember, replay
from peaceland.api.db import now, session
from peaceland.api.forces import live_plan, lock_force
from peaceland.api.models import Membership, Role, User
from peaceland.api.models import Session as Login
from peaceland.api.paging import Cursor, Limit, Page, after_int, page_of
from peaceland.api.problems import Problem, responses
from peaceland.api.schemas import MemberAdded, MemberCreate, MemberOut

router = APIRouter(prefix="/v1/forces/{force_id}/members", tags=["people"])
Db = Annotated[Session, Depends(session)]
ForceAdmin = Annotated[ForceCaller, Depends(force_role(Role.force_admin))]
UserId = Annotated[int, Path(ge=1, le=2**62)]


def _out(user: User, membership: Membership) -> MemberOut:
    return MemberOut(
        user_id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=membership.role,
        created_at=membership.created_at,
    )


@router.get("", response_model=Page[MemberOut], responses=responses(401, 403, 404))
def list_members(
    request: Request, caller: ForceAdmin, db: Db, cursor: Cursor = None, limit: Limit = 50
) -> Page[MemberOut]:
    """The force's people (personal data: the read is audited)."""
    after = after_int(cursor)
    query = (
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.force_id == caller.force_id)
    )
    if after is not None:
        query = query.where(User.id > after)
    rows = list(db.execute(query.order_by(User.id).limit(limit + 1)))
    page = page_of(rows, limit, lambda row: _out(*row), lambda row: row[0].id)
    audit.record(
        db, request, caller.principal, "members.read", f"force/{caller.force_id}/members",
        force_id=caller.force_id, details={"count": len(page.items)},
    )  # fmt: skip
    db.commit()
    return page


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberAdded,
    responses=responses(401, 403, 404, 409, 422),
)
def add_member(
    body: MemberCreate, request: Request, caller: ForceAdmin, db: Db, key: IdempotencyKey = None
) -> JSONResponse:
    """Give a person a role in the force. A person new to the platform gets an account and
    a first password, shown in this answer only."""
    if (answer := replay(db, caller.principal, key, request, body)) is not None:
        return answer
    lock_force(db, caller.force_id, exclusive=False)
    live_plan(request.app.state.forces, caller.force_id)
    email = body.email.lower()
    user = db.scalars(select(User).where(func.lower(User.email) == email)).first()
    initial = None
    if user is not None and not caller.principal.platform_admin:
        # An account is the person's across forces: one force's admin never attaches an
        # account another may control (or made to pre-claim it), nor learns who has one.
        raise Problem.field(
            409,
            "body.email",
            "this e-mail address cannot be given an account here; a platform admin adds "
            "people who have one already",
        )
    if user is None:
        initial = secrets.token_urlsafe(15)
        user = User(
            email=email,
            display_name=body.display_name,
            password_hash=security.hash_password(initial),
            created_at=now(),
        )
        db.add(user)
        db.flush()
    elif db.get(Membership, (user.id, caller.force_id)) is not None:
        raise Problem.field(409, "body.email", f"{email} has a role in {caller.force_id} already")
    elif not user.is_platform_admin:
        # Attaching an account that exists (a platform admin does): whoever made it or knew
        # its password loses it here. It gets a new first password, shown once, for the
        # person, and every session of it ends: an account made to pre-claim someone's
        # address in one force is worth nothing once it is attached to another.
        initial = secrets.token_urlsafe(15)
        user.password_hash = security.hash_password(initial)
        db.execute(
            update(Login)
            .where(Login.user_id == user.id, Login.ended_at.is_(None))
            .values(ended_at=now())
        )
    membership = Membership(
        user_id=user.id, force_id=caller.force_id, role=Role(body.role), created_at=now()
    )
    db.add(membership)
    db.flush()
    out = MemberAdded(**_out(user, membership).model_dump(), initial_password=initial)
    headers = {"Location": f"/v1/forces/{caller.force_id}/members/{user.id}"}
    audit.record(
        db, request, caller.principal, "member.added", f"user/{user.id}",
        force_id=caller.force_id,
        details={"role": body.role.value, "new_account": initial is not None},
    )  # fmt: skip
    # The replayed answer never holds the password: it was shown once.
    remember(
        db, caller.principal, key, request, body, 201,
        out.model_copy(update={"initial_password": None}).model_dump(mode="json"), headers,
    )  # fmt: skip
    db.commit()
    return JSONResponse(out.model_dump(mode="json"), status_code=201, headers=headers)


@router.delete(
    "/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 404, 409)
)
def remove_member(user_id: UserId, request: Request, caller: ForceAdmin, db: Db) -> Response:
    """Take a person's role in the force away (their account stays)."""
    membership = db.get(Membership, (user_id, caller.force_id))
    if membership is None:
        raise Problem(404, f"user {user_id} has no role in {caller.force_id}")
    if user_id == caller.principal.user_id and membership.role is Role.force_admin:
        raise Problem(409, "you cannot remove yourself as the force's admin")
    db.delete(membership)
    audit.record(
        db, request, caller.principal, "member.removed", f"user/{user_id}",
        force_id=caller.force_id,
    )  # fmt: skip
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
