"""The gateway's routes: thin translations between HTTP and the parser, the admission
budgets and Kafka.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at
run time.
"""

import asyncio
import logging
import time
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from peaceland.services import metrics
from peaceland.services.gateway.admission import Admission, Refused
from peaceland.services.gateway.auth import DroneKeys, Holder
from peaceland.services.gateway.models import FieldProblem, IngestResponse, ReportOutcome
from peaceland.services.gateway.parsing import BodyError, BodyParser, Parsed
from peaceland.services.gateway.quotas import OverQuota, ReportQuotas
from peaceland.services.gateway.sender import KafkaSender
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.services.gateway.usage import UsageMeter
from peaceland.tenants.cassandra import to_millisecond, write_time
from peaceland.tenants.errors import FieldError, InvalidRecordError
from peaceland.tenants.forces import resources_for
from peaceland.tenants.reports import encode_report

log = logging.getLogger(__name__)

router = APIRouter()
_bearer = HTTPBearer(auto_error=False, description="The drone key of a police force.")


def _settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def _sender(request: Request) -> KafkaSender:
    sender: KafkaSender = request.app.state.sender
    return sender


def _holder(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Holder:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "send the force's drone key as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    keys: DroneKeys = request.app.state.drone_keys
    holder = keys.holder(credentials.credentials)
    if holder is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown, revoked or expired drone key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return holder


SettingsDep = Annotated[GatewaySettings, Depends(_settings)]
SenderDep = Annotated[KafkaSender, Depends(_sender)]
HolderDep = Annotated[Holder, Depends(_holder)]


@router.post(
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
        429: {
            "description": "The force has its share of reports in flight already, or sends "
            "faster than its plan allows: send again after Retry-After seconds. Nothing of "
            "this request was sent."
        },
        503: {
            "model": IngestResponse,
            "description": "Kafka did not acknowledge some reports: send those again.",
        },
    },
)
async def post_reports(
    request: Request, holder: HolderDep, settings: SettingsDep, sender: SenderDep
) -> Response:
    """Accept one report (a JSON object) or a batch (a JSON array).

    202 only once Kafka has every accepted report on all its in-sync replicas. A drone's
    key sends that drone's reports only: another drone's are rejected, each with why."""
    began = time.perf_counter()
    force_id = holder.force_id
    admission: Admission = request.app.state.admission
    size = _declared_size(request, settings.max_body_bytes)
    try:
        with admission.hold(force_id, size):
            outcome = await _ingest(request, holder, settings, sender)
    except Refused as exc:
        metrics.GATEWAY_REFUSED.labels(force_id).inc()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": "1"}
        ) from None
    _count(force_id, outcome, time.perf_counter() - began)
    usage: UsageMeter = request.app.state.usage
    usage.count(force_id, request.app.state.clock(), outcome.accepted, holder.key_id)
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


async def _ingest(
    request: Request, holder: Holder, settings: GatewaySettings, sender: KafkaSender
) -> IngestResponse:
    force_id = holder.force_id
    body = await _read_body(request, settings.max_body_bytes)
    parser: BodyParser = request.app.state.parser
    # The reports are judged at this moment, to the millisecond, and their records carry it
    # as their time: the consumers judge each report against its record's time, so a
    # report accepted here a hair inside the age bound is inside it there too.
    received_at = to_millisecond(request.app.state.clock())
    try:
        # Parsing a large batch takes tens of milliseconds of CPU: off the event loop, so
        # that other forces' small requests go on between.
        parsed, values = await asyncio.to_thread(
            _parse_and_encode, parser, body, received_at, holder.drone_id
        )
    except BodyError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    del body
    quotas: ReportQuotas = request.app.state.quotas
    try:
        quotas.take(force_id, len(values))
    except OverQuota as exc:
        metrics.GATEWAY_REFUSED.labels(force_id).inc()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            str(exc),
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    errors = await sender.send(
        force_id,
        resources_for(force_id).reports_topic,
        [value for _, value in values],
        timestamp_ms=write_time(received_at) // 1000,
    )
    return _outcome(parsed, dict(zip((index for index, _ in values), errors, strict=True)))


def _parse_and_encode(
    parser: BodyParser, body: bytes, received_at: datetime, drone_id: str | None
) -> tuple[list[Parsed], list[tuple[int, tuple[bytes, bytes]]]]:
    parsed = parser.parse(body, received_at=received_at)
    if drone_id is not None:
        parsed = [_own_drone(p, drone_id) for p in parsed]
    values = [
        (p.index, (p.report.drone_id.encode(), encode_report(p.report)))
        for p in parsed
        if p.report is not None
    ]
    return parsed, values


def _own_drone(parsed: Parsed, drone_id: str) -> Parsed:
    """A report of another drone than the key's, rejected with the reason."""
    if parsed.report is None or parsed.report.drone_id == drone_id:
        return parsed
    error = InvalidRecordError(
        "report",
        [
            FieldError(
                "drone_id",
                f"this key is drone {drone_id}'s; it cannot send drone "
                f"{parsed.report.drone_id}'s reports",
            )
        ],
    )
    return Parsed(parsed.index, None, error)


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request, sender: SenderDep, settings: SettingsDep) -> Response:
    keys: DroneKeys = request.app.state.drone_keys
    if settings.control_plane_url is not None and keys.synced_at is None:
        return JSONResponse(
            {"status": "drone keys not read from the control plane yet"}, status_code=503
        )
    # Asking Kafka blocks for up to its timeout: never on the event loop.
    if await asyncio.to_thread(sender.reachable):
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "Kafka unreachable"}, status_code=503)


#: What a request costs at least, whatever its size: a flood of tiny requests costs the
#: event loop per request, not per byte.
_MIN_CHARGE: Final = 16 * 1024


def _declared_size(request: Request, limit: int) -> int:
    """What the request holds us to: its declared size, at least ``_MIN_CHARGE``; a body of
    unknown length may be up to ``limit``."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        return limit
    if int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"the body exceeds {limit} bytes")
    return max(int(declared), _MIN_CHARGE)


async def _read_body(request: Request, limit: int) -> bytes:
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
                    errors=[FieldProblem(field=e.field, reason=e.reason) for e in p.error.errors],
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


def _count(force_id: str, outcome: IngestResponse, seconds: float) -> None:
    for name in ("accepted", "rejected", "failed"):
        count = getattr(outcome, name)
        if count:
            metrics.GATEWAY_REPORTS.labels(force_id, name).inc(count)
    metrics.GATEWAY_SECONDS.labels(force_id).observe(seconds)
