"""One error body everywhere: ``application/problem+json`` (RFC 9457).

Every refusal names its reason in ``detail`` and, where a field is at fault, the field and
why in ``errors`` — the request body's validation errors included. A route raises
:class:`Problem`; FastAPI's own errors (validation, unknown route, wrong method) are turned
into the same body here.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

MEDIA_TYPE: Final = "application/problem+json"


class FieldProblem(BaseModel):
    #: Where: a dotted path, ``body.plan.max_drones`` or ``query.limit``.
    field: str
    reason: str


class ProblemBody(BaseModel):
    """An error, as RFC 9457 describes it."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] = []


class Problem(Exception):  # noqa: N818 - an answer, named as RFC 9457 names it
    """Raised by a route to answer with an error."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[FieldProblem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}

    @classmethod
    def field(cls, status: int, field: str, reason: str) -> Problem:
        return cls(status, f"{field}: {reason}", errors=[FieldProblem(field=field, reason=reason)])


def problem_response(
    request: Request,
    status: int,
    detail: str,
    errors: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ProblemBody(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors or [],
    )
    return JSONResponse(
        body.model_dump(), status_code=status, headers=headers, media_type=MEDIA_TYPE
    )


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as a problem."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.detail, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            FieldProblem(field=_location(tuple(e.get("loc", ()))), reason=str(e.get("msg", "")))
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e.field}: {e.reason}" for e in errors) or "invalid request"
        return problem_response(request, 422, detail, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(request, exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, exc: StaleDataError) -> JSONResponse:
        log.info("a concurrent change won on %s: %s", request.url.path, exc)
        return problem_response(
            request, 409, "a concurrent request changed or removed it; read it again"
        )

    @app.exception_handler(IntegrityError)
    async def _conflict(request: Request, exc: IntegrityError) -> JSONResponse:
        # Two requests made the same thing at once; this one lost the race.
        log.info("a concurrent change won on %s: %s", request.url.path, exc.orig)
        return problem_response(
            request, 409, "a concurrent request made or changed the same thing; read it again"
        )

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        # A value the database refuses (out of its range, a character it cannot keep) that
        # the request models let through: the request's fault, said as such.
        log.warning("a value PostgreSQL refused on %s: %s", request.url.path, exc.orig)
        return problem_response(request, 422, "a value is out of the range this API stores")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(
            request, 500, "an unexpected error; it is logged with this request's path"
        )


#: How routes document their errors in OpenAPI.
def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Every route may answer 400 (a body that is not UTF-8 JSON, a bad cursor) and 422 (a
    parameter or body that breaks the rules), besides its own."""
    return {
        status: {
            "model": ProblemBody,
            "description": HTTPStatus(status).phrase,
            "content": {MEDIA_TYPE: {}},
        }
        for status in sorted({400, 422, *statuses})
    }
