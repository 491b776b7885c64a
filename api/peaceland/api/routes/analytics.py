"""A force's statistics and its analysts' own SQL, answered from the analytics lake.

Each request opens a DuckDB session that sees that force's files only (``ForceLake``), and
every answer is audit-logged with who asked what and how many rows came back, refusals too,
where the force's admin reads them (``GET /v1/forces/{id}/audit``). At most
``analytics_concurrency`` queries run at once in a process; more get 429.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from sqlalchemy.orm import Session

from peaceland.analytics.lake import Storage, utc
from peaceland.analytics.sql import QueryFailedError, QueryLimits, QueryRefusedError, run_query
from peaceland.analytics.stats import STATISTICS, ForceLake, Options, Window
from peaceland.api import audit
from peaceland.api.auth import ForceCaller, force_role
from peaceland.api.db import session
from peaceland.api.models import Role
from peaceland.api.problems import Problem, responses
from peaceland.api.routes.police_data import Reader
from peaceland.api.schemas import QueryIn, QueryOut, StatisticAnswer, StatisticOut
from peaceland.api.settings import ApiSettings

router = APIRouter(prefix="/v1/forces/{force_id}", tags=["analytics"])
Db = Annotated[Session, Depends(session)]
# Ad-hoc SQL reads everything the force kept: its analysts only.
Analyst = Annotated[ForceCaller, Depends(force_role(Role.analyst, platform_admin=False))]
#: The longest window a statistic covers.
MAX_WINDOW = timedelta(days=366)


class Analytics:
    """What the routes share: the lake, the limits, the seats."""

    def __init__(self, storage: Storage | None, settings: ApiSettings) -> None:
        self.storage = storage
        self.memory = settings.analytics_memory
        self.seconds_max = settings.sql_seconds_max
        self._seats = threading.BoundedSemaphore(settings.analytics_concurrency)

    @contextmanager
    def lake(self, force_id: str) -> Iterator[ForceLake]:
        """The force's tables, in a seat of their own; 429 when every seat is taken."""
        if self.storage is None:
            raise Problem(503, "this platform has no analytics lake (PEACELAND_API_LAKE_URI)")
        if not self._seats.acquire(timeout=1.0):
            raise Problem(
                429, "analytics are busy: try again shortly", headers={"Retry-After": "5"}
            )
        try:
            try:
                opened = ForceLake(self.storage, force_id, memory_limit=self.memory)
            except (OSError, duckdb.Error) as exc:
                raise Problem(503, f"the analytics lake cannot be read now: {exc}") from None
            with opened:
                yield opened
        finally:
            self._seats.release()


def _analytics(request: Request) -> Analytics:
    analytics: Analytics = request.app.state.analytics
    return analytics


def _utc(moment: datetime) -> str:
    return moment.isoformat() + ("Z" if moment.tzinfo is None else "")


def jsonable(value: Any) -> Any:
    """A value of an answer as JSON carries it: the lake's times are UTC (said with a Z),
    bytes as hexadecimal, decimals as numbers."""
    return jsonable_encoder(value, custom_encoder={datetime: _utc, bytes: bytes.hex})


@router.get("/statistics", response_model=list[StatisticOut], responses=responses(401, 403, 404))
def statistics(caller: Reader) -> list[StatisticOut]:
    """The predefined statistics a force's people may ask for."""
    del caller  # admitted: that is all it is for
    return [StatisticOut(name=n, description=s.description) for n, s in STATISTICS.items()]


@router.get(
    "/statistics/{name}",
    response_model=StatisticAnswer,
    responses=responses(400, 401, 403, 404, 429, 503),
)
def statistic(
    request: Request,
    caller: Reader,
    db: Db,
    name: Annotated[str, Path(max_length=64, description="One of GET …/statistics.")],
    since: Annotated[
        datetime | None, Query(description="Start (default: 24 hours before until).")
    ] = None,
    until: Annotated[datetime | None, Query(description="End, excluded (default: now).")] = None,
    zone_degrees: Annotated[
        float, Query(ge=0.0001, le=10, description="Side of a zone of the grid, in degrees.")
    ] = 0.01,
    top: Annotated[int, Query(ge=1, le=10_000, description="Length of top lists.")] = 20,
) -> StatisticAnswer:
    """A predefined statistic of the force over [since, until) (at most 366 days)."""
    if name not in STATISTICS:
        raise Problem(404, f"no statistic called {name}; there are: {', '.join(STATISTICS)}")
    window = _window(since, until)
    start, end = window.start, window.end
    with _analytics(request).lake(caller.force_id) as lake:
        try:
            answer = lake.answer(name, window, Options(zone_degrees, top))
        except duckdb.Error as exc:
            raise Problem(503, f"the analytics lake could not answer: {exc}") from None
    audit.record(
        db, request, caller.principal, "statistics.read",
        f"force/{caller.force_id}/statistics/{name}", force_id=caller.force_id,
        details={"since": start.isoformat(), "until": end.isoformat(), "rows": len(answer.rows)},
    )  # fmt: skip
    db.commit()
    return StatisticAnswer(
        name=name,
        since=start,
        until=end,
        columns=list(answer.columns),
        rows=[{k: jsonable(v) for k, v in r.items()} for r in answer.records()],
    )


@router.post("/sql", response_model=QueryOut, responses=responses(400, 401, 403, 404, 429, 503))
def sql(request: Request, caller: Analyst, db: Db, body: QueryIn) -> QueryOut:
    """Run one read-only SQL query over the force's tables (``reports``, ``sightings``,
    ``alerts``, ``lifecycle``): parsed and checked first, then run in a session that can
    read that force's files and nothing else, within limits of time, memory and rows.
    Audit-logged, refusals included, with its text and the rows it returned."""
    analytics = _analytics(request)
    if body.timeout_seconds > analytics.seconds_max:
        raise Problem(400, f"timeout_seconds is at most {analytics.seconds_max:g} here")
    limits = QueryLimits(seconds=body.timeout_seconds, rows=body.max_rows)
    target = f"force/{caller.force_id}/sql"
    try:
        with analytics.lake(caller.force_id) as lake:
            result = run_query(lake, body.query, limits)
    except (QueryRefusedError, QueryFailedError) as exc:
        refused = isinstance(exc, QueryRefusedError)
        audit.record(
            db, request, caller.principal, "sql.refused" if refused else "sql.failed", target,
            force_id=caller.force_id, details={"query": body.query, "reason": str(exc)},
        )  # fmt: skip
        db.commit()
        raise Problem(400, str(exc)) from None
    audit.record(
        db, request, caller.principal, "sql.query", target, force_id=caller.force_id,
        details={"query": body.query, "rows": len(result.rows), "truncated": result.truncated,
                 "seconds": result.seconds},
    )  # fmt: skip
    db.commit()
    return QueryOut(
        sql=result.sql,
        columns=list(result.columns),
        rows=[[jsonable(v) for v in row] for row in result.rows],
        truncated=result.truncated,
        seconds=result.seconds,
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _window(since: datetime | None, until: datetime | None) -> Window:
    """[since, until) in UTC, checked: 400 with the reason when it cannot be asked."""
    try:
        end = utc(_aware(until) if until else datetime.now(UTC)).replace(tzinfo=UTC)
        start = utc(_aware(since)).replace(tzinfo=UTC) if since else end - timedelta(days=1)
    except (ValueError, OverflowError) as exc:
        raise Problem(400, f"since and until must be plain times: {exc}") from None
    if end <= start:
        raise Problem(400, f"until ({end.isoformat()}) is not after since ({start.isoformat()})")
    if end - start > MAX_WINDOW:
        raise Problem(400, "a statistic covers 366 days at most: narrow since and until")
    return Window(start, end)
