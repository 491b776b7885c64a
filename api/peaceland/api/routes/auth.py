"""Signing in and out."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from peaceland.api import audit, security
from peaceland.api.auth import Principal, person
from peaceland.api.db import now, session
from peaceland.api.models import Session as Login
from peaceland.api.models import User
from peaceland.api.problems import Problem, responses
from peaceland.api.schemas import Me, PasswordChange, Token, TokenRequest
from peaceland.api.settings import ApiSettings
from peaceland.api.throttle import SignInThrottle

router = APIRouter(prefix="/v1", tags=["sign in"])
Db = Annotated[Session, Depends(session)]
Person = Annotated[Principal, Depends(person)]


@router.post("/auth/token", response_model=Token, responses=responses(401, 422))
def sign_in(body: TokenRequest, request: Request, db: Db) -> Token:
    """Exchange an e-mail address and password for a short-lived bearer token."""
    settings: ApiSettings = request.app.state.settings
    throttle: SignInThrottle = request.app.state.sign_ins
    email = body.email.lower()
    client = audit.client_address(request) or "unknown"
    throttle.attempt(client, email)
    user = db.scalars(select(User).where(func.lower(User.email) == email)).first()
    password_hash = user.password_hash if user else None
    # The check runs outside the transaction: its connection goes back to the pool first.
    db.rollback()
    with throttle.checking():
        good = security.verify_password(password_hash, body.password)
    if not good or user is None or user.disabled:
        # A disabled account gets the same answer: no way to learn which accounts exist.
        throttle.failed(client, email)
        audit.record(db, request, email[:320], "auth.failed", "session")
        db.commit()
        raise Problem(401, "wrong e-mail address or password")
    session_id, token, digest = security.new_token()
    expires = now() + timedelta(seconds=settings.token_ttl_seconds)
    agent = request.headers.get("user-agent", "")[:100] or None
    db.add(
        Login(
            id=session_id,
            digest=digest,
            user_id=user.id,
            created_at=now(),
            expires_at=expires,
            client=agent,
        )
    )
    audit.record(db, request, user.email, "auth.signed_in", f"session/{session_id}")
    db.commit()
    return Token(access_token=token, expires_at=expires)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403))
def sign_out(request: Request, caller: Person, db: Db) -> Response:
    """End this token now: it is refused from the next request on."""
    login = db.get(Login, caller.session_id) if caller.session_id else None
    if login is not None and login.ended_at is None:
        login.ended_at = now()
        audit.record(db, request, caller, "auth.signed_out", f"session/{login.id}")
        db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=Me, responses=responses(401, 403))
def me(caller: Person, db: Db) -> Me:
    """Who the token speaks for, and their roles."""
    user = db.get(User, caller.user_id)
    if user is None:
        raise Problem(401, "this account no longer exists")
    return Me(
        user_id=user.id,
        email=user.email,
        display_name=user.display_name,
        platform_admin=user.is_platform_admin,
        roles=caller.roles,  # read with the token, a moment ago
    )


@router.post(
    "/me/password", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 422)
)
def change_password(body: PasswordChange, request: Request, caller: Person, db: Db) -> Response:
    """Change your own password; every other session of yours ends."""
    throttle: SignInThrottle = request.app.state.sign_ins
    client = audit.client_address(request) or "unknown"
    throttle.attempt(client, caller.name)
    user = db.get(User, caller.user_id)
    current = user.password_hash if user else None
    db.rollback()  # the checks run outside the transaction, like a sign-in's
    with throttle.checking():
        good = security.verify_password(current, body.current_password)
        new_hash = security.hash_password(body.new_password) if good else None
    if new_hash is None:
        throttle.failed(client, caller.name)
        raise Problem.field(422, "body.current_password", "not your current password")
    user = db.get(User, caller.user_id)
    if user is None:
        raise Problem(401, "this account no longer exists")
    user.password_hash = new_hash
    for login in db.scalars(
        select(Login).where(Login.user_id == user.id, Login.ended_at.is_(None))
    ):
        if login.id != caller.session_id:
            login.ended_at = now()
    audit.record(db, request, caller, "auth.password_changed", f"user/{user.id}")
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
