"""The gateway's HTTP API: ``POST /v1/reports`` and the probes.

The route is thin: it authenticates the drone's force, splits the body into reports with
:func:`parse_reports`, hands the valid ones to Kafka and says what became of each.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at run
time, and they name dependencies local to ``create_app``.
"""

import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import make_asgi_app
from pydantic import BaseModel

from peaceland.services import metrics
from peaceland.services.gateway.sender import KafkaSender
from peaceland.services.gateway.settings import GatewaySettings, key_digest
from peaceland.tenants.errors import FieldError, InvalidRecordError
from peaceland.tenants.forces import resources_for
from peaceland.tenants.reports import Report, decode_report, encode_report, utc_now

log = logging.getLogger(__name__)


class FieldProblem(BaseModel):
    field: str
    reason: str


class ReportOutcome(BaseModel):
    """What became of one report of the request, by its position in it."""

    index: int
    report_id: str | None = None
    status: Literal["accepted", "rejected", "failed"]
    reason: str | None = None
    errors: list[FieldProblem] = []


class IngestResponse(BaseModel):
    """``accepted`` reports are durable in Kafka; ``rejected`` ones break the data contract
    and must not be sent again as they are; ``failed`` ones may be sent again later."""

    accepted: int
    rejected: int
    failed: int
    results: list[ReportOutcome]


class BodyError(ValueError):
    """The body as a whole cannot be read as one report or a batch of them."""


@dataclass(frozen=True, slots=True)
class Parsed:
    index: int
    report: Report | None
    error: InvalidRecordError | None


def parse_reports(body: bytes, *, received_at: datetime, max_batch: int) -> list[Parsed]:
    """One report (a JSON object) or a batch (a JSON array of them), each judged alone."""
    stripped = body.lstrip()
    if stripped.startswith(b"{"):
        return [_parse_one(0, body, received_at)]
    if not stripped.startswith(b"["):
        raise BodyError("the body must be one report (a JSON object) or a JSON array of them")
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(f"the body is not valid JSON: {exc}") from None
    if not items:
        raise BodyError("the batch is empty")
    if len(items) > max_batch:
        raise BodyError(f"a batch holds at most {max_batch} reports, this one {len(items)}")
    return [_parse_one(i, json.dumps(item), received_at) for i, item in enumerate(items)]


def _parse_one(index: int, raw: bytes | str, received_at: datetime) -> Parsed:
    try:
        return Parsed(index, decode_report(raw, received_at=received_at), None)
    except InvalidRecordError as exc:
        return Parsed(index, None, exc)


def create_app(settings: GatewaySettings, sender: KafkaSender | None = None) -> FastAPI:
    """The gateway application; ``sender`` defaults to one on the settings' Kafka."""
    forces = settings.force_by_key_digest()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = sender is None
        app.state.sender = sender or KafkaSender(
            settings.kafka_bootstrap_servers, settings.delivery_timeout_seconds
        )
        yield
        if own:
            app.state.sender.close()

    app = FastAPI(
        title="PeaceLand ingest gateway",
        version="1",
        summary="Where drones send their reports.",
        lifespan=lifespan,
    )
    app.mount("/metrics", make_asgi_app())
    bearer = HTTPBearer(auto_error=False, description="The drone key of a police force.")

    def force_of(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "send the force's drone key as 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        digest = key_digest(credentials.credentials)
        for known, force_id in forces.items():
            if hmac.compare_digest(known, digest):
                return force_id
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown drone key",
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.post(
        "/v1/reports",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=IngestResponse,
        responses={
            400: {"description": "The body is neither a report nor a batch of reports."},
            401: {"description": "No drone key, or an unknown one."},
            413: {"description": "The body is too large."},
            422: {
                "model": IngestResponse,
                "description": "Some reports break the data contract; the others were "
                "accepted. Each rejected one is named with its reasons.",
            },
            503: {
                "model": IngestResponse,
                "description": "Kafka did not acknowledge some reports: send those again.",
            },
        },
    )
    async def post_reports(
        request: Request, force_id: Annotated[str, Depends(force_of)]
    ) -> Response:
        """Accept one report (a JSON object) or a batch (a JSON array).

        202 only once Kafka has every accepted report on all its in-sync replicas."""
        began = time.perf_counter()
        body = await _read_body(request, settings.max_body_bytes)
        try:
            parsed = parse_reports(body, received_at=utc_now(), max_batch=settings.max_batch)
        except BodyError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
        valid = [p for p in parsed if p.report is not None]
        errors = await request.app.state.sender.send(
            resources_for(force_id).reports_topic,
            [
                (p.report.drone_id.encode(), encode_report(p.report))
                for p in valid
                if p.report is not None
            ],
        )
        outcome = _outcome(parsed, dict(zip((p.index for p in valid), errors, strict=True)))
        _count(force_id, outcome, time.perf_counter() - began)
        if outcome.failed:
            log.error(
                "force %s: Kafka did not take %d reports: %s",
                force_id,
                outcome.failed,
                next(r.reason for r in outcome.results if r.status == "failed"),
            )
            code, headers = status.HTTP_503_SERVICE_UNAVAILABLE, {"Retry-After": "5"}
        elif outcome.rejected:
            code, headers = status.HTTP_422_UNPROCESSABLE_CONTENT, {}
        else:
            code, headers = status.HTTP_202_ACCEPTED, {}
        return JSONResponse(
            outcome.model_dump(exclude_defaults=False), status_code=code, headers=headers
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        if request.app.state.sender.reachable():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "Kafka unreachable"}, status_code=503)

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE, f"the body exceeds {limit} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _outcome(parsed: list[Parsed], delivery: dict[int, Any]) -> IngestResponse:
    results = []
    for p in parsed:
        if p.error is not None:
            results.append(
                ReportOutcome(
                    index=p.index,
                    status="rejected",
                    reason=p.error.reason,
                    errors=[_problem(e) for e in p.error.errors],
                )
            )
            continue
        assert p.report is not None
        error = delivery[p.index]
        results.append(
            ReportOutcome(
                index=p.index,
                report_id=str(p.report.report_id),
                status="accepted" if error is None else "failed",
                reason=None if error is None else f"Kafka did not acknowledge it: {error.str()}",
            )
        )
    return IngestResponse(
        accepted=sum(r.status == "accepted" for r in results),
        rejected=sum(r.status == "rejected" for r in results),
        failed=sum(r.status == "failed" for r in results),
        results=results,
    )


def _problem(error: FieldError) -> FieldProblem:
    return FieldProblem(field=error.field, reason=error.reason)


def _count(force_id: str, outcome: IngestResponse, seconds: float) -> None:
    for name in ("accepted", "rejected", "failed"):
        count = getattr(outcome, name)
        if count:
            metrics.GATEWAY_REPORTS.labels(force_id, name).inc(count)
    metrics.GATEWAY_SECONDS.labels(force_id).observe(seconds)
