"""Who is asking, and what they may do: deny by default.

Every route declares what it admits through one of the dependencies below; a route without
one is refused by a test that walks the whole application. A person reaches a force's
routes only with a role in that force (or as a platform admin); a force they have no role
in answers 404, exactly as a force that does not exist, so that force ids cannot be probed.

Seam for an external identity provider (OIDC): :class:`Authenticator` turns a bearer token
into a :class:`Principal`. :class:`LocalTokens` reads our own login tokens; an OIDC one
would verify the provider's JWT (issuer, audience, signature from its JWKS), find or make
the user by its ``sub`` and map the provider's groups to memberships. ``create_app`` takes
the list to try in order (docs/api.md, "Signing in through your own provider").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Protocol

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from peaceland.api import security
from peaceland.api.db import now
from peaceland.api.models import Membership, Role, User
from peaceland.api.models import Session as Login
from peaceland.api.problems import Problem
from peaceland.tenants.forces import MAX_FORCE_ID_LENGTH

_bearer = HTTPBearer(
    auto_error=False,
    description="A login token from POST /v1/auth/token (or the gateways' service token).",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    """Who a request comes from."""

    #: The user's id; None for the gateways' service identity.
    user_id: int | None
    name: str
    platform_admin: bool = False
    roles: dict[str, Role] = field(default_factory=dict)
    session_id: str | None = None
    service: bool = False

    def role_in(self, force_id: str) -> Role | None:
        return self.roles.get(force_id)


class Authenticator(Protocol):
    def __call__(self, token: str, db: Session) -> Principal | None:
        """The principal ``token`` proves, None if it is none of this authenticator's;
        raises Problem(401) for one of its tokens that is no longer good."""


def _unauthorized(reason: str) -> Problem:
    return Problem(401, reason, headers=_CHALLENGE)


class LocalTokens:
    """Our own login tokens (``plt_…``)."""

    def __call__(self, token: str, db: Session) -> Principal | None:
        session_id = security.session_id_of(token)
        if session_id is None:
            return None
        login = db.get(Login, session_id)
        if login is None or not security.same_digest(login.digest, security.token_digest(token)):
            raise _unauthorized("unknown token")
        if login.ended_at is not None:
            raise _unauthorized("this token was ended by a logout; sign in again")
        if login.expires_at <= now():
            raise _unauthorized("this token has expired; sign in again")
        user = db.get(User, login.user_id)
        if user is None or user.disabled:
            raise _unauthorized("this account is disabled")
        roles = {
            m.force_id: m.role
            for m in db.scalars(select(Membership).where(Membership.user_id == user.id))
        }
        return Principal(
            user_id=user.id,
            name=user.email,
            platform_admin=user.is_platform_admin,
            roles=roles,
            session_id=session_id,
        )


class GatewayToken:
    """The gateways' service token, from the settings (a Secret shared with the gateways)."""

    def __init__(self, current: Callable[[], str | None]) -> None:
        self._current = current

    def __call__(self, token: str, db: Session) -> Principal | None:  # noqa: ARG002
        expected = self._current()
        if expected is None or not security.same_digest(
            security.token_digest(token), security.token_digest(expected)
        ):
            return None
        return Principal(user_id=None, name="service:gateway", service=True)


def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Who is calling, checked in a short session of its own: a long request (a live feed)
    holds no database connection for its whole life."""
    if credentials is None:
        raise _unauthorized("sign in: send 'Authorization: Bearer <token>' (POST /v1/auth/token)")
    authenticators: list[Authenticator] = request.app.state.authenticators
    with request.app.state.sessions() as db:
        for authenticate in authenticators:
            found = authenticate(credentials.credentials, db)
            if found is not None:
                request.state.principal = found
                return found
    raise _unauthorized("malformed or unknown token")


Caller = Annotated[Principal, Depends(principal)]


def person(caller: Caller) -> Principal:
    """Any signed-in person (not a service)."""
    if caller.service:
        raise Problem(403, "a service token cannot use this route")
    return caller


def platform_admin(caller: Caller) -> Principal:
    if caller.service or not caller.platform_admin:
        raise Problem(403, "only a platform admin may do this")
    return caller


def gateway_service(caller: Caller) -> Principal:
    if not caller.service:
        raise Problem(403, "only the gateways' service token may read this")
    return caller


ForceId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_FORCE_ID_LENGTH,
        pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
        description="The police force's id.",
        examples=["lyon-metropole"],
    ),
]


@dataclass(frozen=True)
class ForceCaller:
    """A caller admitted to one force's route, and the force."""

    principal: Principal
    force_id: str


def force_role(*roles: Role, platform_admin: bool = True) -> Callable[..., ForceCaller]:
    """Admit a platform admin (unless ``platform_admin`` is False: the force's own people
    only, for its police data), or a person holding one of ``roles`` in the force the path
    names. A person with no role there gets 404 (as for a force that does not exist); one
    with another role gets 403 saying which roles may."""
    admitted = frozenset(roles)
    admits_admin = platform_admin

    def check(caller: Caller, force_id: ForceId) -> ForceCaller:
        if caller.service:
            raise Problem(403, "a service token cannot use this route")
        if not (caller.platform_admin and admits_admin):
            role = caller.role_in(force_id)
            if role is None:
                raise Problem(404, f"no police force {force_id}")
            if role not in admitted:
                allowed = ", ".join(sorted(r.value for r in admitted)) or "platform_admin"
                raise Problem(403, f"your role in {force_id} is {role.value}; this needs {allowed}")
        return ForceCaller(caller, force_id)

    check.admits = sorted(r.value for r in admitted)  # type: ignore[attr-defined]
    return check


ANY_FORCE_ROLE = (Role.force_admin, Role.officer, Role.analyst)
