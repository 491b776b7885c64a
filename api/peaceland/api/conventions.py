"""The API's conventions that cut across routes: ETags and idempotent creates."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from peaceland.api.auth import Principal
from peaceland.api.db import now
from peaceland.api.models import IdempotentRequest
from peaceland.api.problems import Problem

IfMatch = Annotated[
    str | None,
    Header(
        max_length=200,
        description="The ETag of the version you read: the change applies only if the "
        "resource is still at it (412 otherwise). Required.",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Send a create again with the same key and get the first answer again, "
        "instead of a second resource.",
    ),
]


def etag(version: str | int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None) -> str:
    """The version an If-Match names; 428 without one."""
    if if_match is None:
        raise Problem(
            428, "send If-Match with the ETag you read, so that you do not undo another change"
        )
    value = if_match.strip()
    if value.startswith("W/"):
        value = value[2:]
    if len(value) < 2 or not (value.startswith('"') and value.endswith('"')):
        raise Problem.field(400, "header.If-Match", "an ETag, in double quotes")
    return value[1:-1]


def _digest(request: Request, body: Any) -> str:
    payload = json.dumps([request.method, request.url.path, jsonable_encoder(body)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def replay(
    db: Session, caller: Principal, key: str | None, request: Request, body: Any
) -> JSONResponse | None:
    """The stored answer to an earlier request with this key, if there was one."""
    if key is None or caller.user_id is None:
        return None
    found = db.get(IdempotentRequest, (caller.user_id, key))
    if found is None:
        return None
    if found.request_digest != _digest(request, body):
        raise Problem.field(422, "header.Idempotency-Key", "already used for a different request")
    return JSONResponse(found.body, status_code=found.status_code, headers=found.headers)


def remember(
    db: Session,
    caller: Principal,
    key: str | None,
    request: Request,
    body: Any,
    status_code: int,
    answer: Any,
    headers: dict[str, str] | None = None,
) -> None:
    """Keep the answer in the create's own transaction; two requests racing with one key:
    the second gets 409 and may send again (to get the first's answer)."""
    if key is None or caller.user_id is None:
        return
    db.add(
        IdempotentRequest(
            user_id=caller.user_id,
            key=key,
            request_digest=_digest(request, body),
            status_code=status_code,
            body=jsonable_encoder(answer),
            headers=headers or {},
            created_at=now(),
        )
    )
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise Problem(
            409, "a request with this Idempotency-Key is being handled; send it again shortly"
        ) from None
