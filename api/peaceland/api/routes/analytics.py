"""A force's statistics and its analysts' own SQL, answered from the analytics lake.

Each question runs in a process of its own (``peaceland.analytics.isolated``: the kernel
holds it to its memory, a deadline kills it) on a DuckDB session that sees that force's
files only (``ForceLake``). Every answer is audit-logged with who asked what and how many
rows came back, refusals too, where the force's admin reads them
(``GET /v1/forces/{id}/audit``). At most ``analytics_concurrency`` questions run at once in
a process and ``analytics_per_force`` per force, and a person asks at most
``analytics_per_minute`` a minute: more get 429 at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.orm import Session

from peaceland.analytics.isolated import IsolatedFailureError
from peaceland.analytics.lake import Storage, open_storage, utc
from peaceland.analytics.mirror import LocalLake, readable
from peaceland.analytics.sql import (
    QueryFailedError,
    QueryLimits,
    QueryRefusedError,
    ask,
    check_query,
)
from peaceland.analytics.stats import STATISTICS, Options, Window, answer_isolated
from peaceland.api import audit
from peaceland.api.auth import ForceCaller, force_role
from peaceland.api.db import session
from peaceland.api.force_data import ForceDataUnavailableError
from peaceland.api.models import Role
from peaceland.api.problems import Problem, responses
from peaceland.api.routes.police_data import Reader
from peaceland.api.schemas import QueryIn, QueryOut, StatisticAnswer, StatisticOut
from peaceland.api.settings import ApiSettings
from peaceland.tenants.provisioning.lake_identities import S3Key

router = APIRouter(prefix="/v1/forces/{force_id}", tags=["analytics"])
log = logging.getLogger(__name__)

Db = Annotated[Session, Depends(session)]
# Ad-hoc SQL reads everything the force kept: its analysts only.
Analyst = Annotated[ForceCaller, Depends(force_role(Role.analyst, platform_admin=False))]
#: The longest window a statistic covers.
MAX_WINDOW = timedelta(days=366)
#: How long a snapshot of an object store's lake answers a force's questions (well within
#: the 15 minutes a copy stays after the store stops listing it).
SNAPSHOT_REUSE_SECONDS = 30.0


#: A force's own key of the lake's object store (None: it has none yet).
ForceKeys = Callable[[str], S3Key | None]


class Analytics:
    """What the routes share: the lake, the limits, the seats, each person's pace.

    ``force_keys``: the lake is on an object store, where each force's questions read it
    under the force's own key (its dashboard user, refused by the store outside the force's
    folder): a bug of ours asking for another force's files gets the store's refusal."""

    def __init__(
        self, storage: Storage | None, settings: ApiSettings, force_keys: ForceKeys | None = None
    ) -> None:
        self.storage = storage
        self._force_keys = force_keys
        #: Each force's lake under its own key, and that key's id (a new key: opened anew).
        self._stores: dict[str, tuple[str, Storage]] = {}
        self.mirror_dir = settings.lake_mirror_dir
        self.memory_bytes = settings.analytics_memory_mb * 1024 * 1024
        self.seconds_max = settings.sql_seconds_max
        self.statistic_seconds = settings.statistic_seconds
        self._concurrency = settings.analytics_concurrency
        self._per_force = settings.analytics_per_force
        self._per_minute = settings.analytics_per_minute
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}
        self._asked: dict[str, deque[float]] = {}
        #: Each force's last snapshot of an object store's lake, when it was taken, and the
        #: lake it was taken from (under which key): the panel's questions, asked one after
        #: another, share one while the force's key stays the same.
        self._snapshots: dict[str, tuple[float, LocalLake, Storage]] = {}

    def lake_configured(self) -> Storage:
        """The lake; 503 when this platform has none."""
        if self.storage is None:
            raise Problem(503, "this platform has no analytics lake (PEACELAND_API_LAKE_URI)")
        return self.storage

    def lake(self, force_id: str) -> LocalLake:
        """The force's lake as its engines read it (an object store's: a snapshot copied
        on this machine's disk first, under the force's seat); 503 when there is none, or
        the store fails."""
        storage = self.lake_configured()
        if self._force_keys is not None:
            # Asked every time (its Secret is read again every half minute): a force whose
            # key went gets nothing more, not even an earlier snapshot.
            storage = self._force_storage(storage, force_id, self._force_keys)
        now = time.monotonic()
        with self._lock:
            taken = self._snapshots.get(force_id)
        if taken is not None and taken[2] is storage and now - taken[0] < SNAPSHOT_REUSE_SECONDS:
            return taken[1]
        try:
            lake = readable(storage, force_id, self.mirror_dir)
        except OSError as exc:
            # The store's own words name buckets, endpoints and paths: for the logs only.
            log.warning("the lake of %s could not be read: %s", force_id, exc)
            raise Problem(
                503, "the analytics lake cannot be read now: try again later (logged)"
            ) from None
        if lake is not storage:
            with self._lock:
                self._snapshots[force_id] = (now, lake, storage)
        return lake

    def _force_storage(self, storage: Storage, force_id: str, force_keys: ForceKeys) -> Storage:
        """The lake under the force's own key of the store; 503 when it has none (yet)."""
        try:
            key = force_keys(force_id)
        except ForceDataUnavailableError as exc:
            log.warning("the lake key of %s could not be read: %s", force_id, exc)
            raise Problem(503, "the force's key of the analytics lake cannot be read now") from None
        if key is None:
            raise Problem(
                503, "the force has no key of the analytics lake yet: its operator issues one"
            )
        with self._lock:
            held = self._stores.get(force_id)
        if held is not None and held[0] == key.access_key_id:
            return held[1]
        uri = getattr(storage, "uri", None)
        if not isinstance(uri, str):
            raise TypeError("a lake read under each force's key is an object store's")
        own = open_storage(uri, s3_keys=(key.access_key_id, key.secret_access_key))
        with self._lock:
            self._stores[force_id] = (key.access_key_id, own)
        return own

    def hidden(self, message: str) -> str:
        """``message`` without this machine's folders (an engine's error names its files)."""
        for folder in {str(self.mirror_dir), getattr(self.storage, "root", None)}:
            if folder:
                message = message.replace(str(folder), "<lake>")
        return message

    def pace(self, who: str) -> None:
        """429 past ``analytics_per_minute`` questions of one person in the last minute."""
        now = time.monotonic()
        with self._lock:
            asked = self._asked.setdefault(who, deque())
            while asked and now - asked[0] > 60:
                asked.popleft()
            if len(asked) >= self._per_minute:
                raise Problem(
                    429, f"at most {self._per_minute} questions a minute",
                    headers={"Retry-After": str(int(61 - (now - asked[0])))},
                )  # fmt: skip
            asked.append(now)
            if len(self._asked) > 10_000:  # forget the idle
                for person in [p for p, q in self._asked.items() if not q or now - q[-1] > 60]:
                    del self._asked[person]

    @contextmanager
    def seat(self, force_id: str) -> Iterator[None]:
        """One of the process's seats, and one of the force's; 429 at once when none is
        free (a waiting request would hold one of the threads every route needs)."""
        with self._lock:
            running = sum(self._running.values())
            if running >= self._concurrency or self._running.get(force_id, 0) >= self._per_force:
                raise Problem(
                    429, "analytics are busy: try again shortly", headers={"Retry-After": "5"}
                )
            self._running[force_id] = self._running.get(force_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._running[force_id] -= 1
                if not self._running[force_id]:
                    del self._running[force_id]


def _analytics(request: Request) -> Analytics:
    analytics: Analytics = request.app.state.analytics
    return analytics


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
    analytics = _analytics(request)
    analytics.lake_configured()
    analytics.pace(caller.principal.name)
    with analytics.seat(caller.force_id):
        storage = analytics.lake(caller.force_id)
        try:
            answer = answer_isolated(
                storage, caller.force_id, name, window, Options(zone_degrees, top),
                seconds=analytics.statistic_seconds, memory_bytes=analytics.memory_bytes,
            )  # fmt: skip
        except IsolatedFailureError as exc:
            status = 503 if exc.kind == "crash" else 400
            raise Problem(
                status, f"the statistic could not be answered: {analytics.hidden(str(exc))}"
            ) from None
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
        rows=answer.records(),
    )


@router.post("/sql", response_model=QueryOut, responses=responses(400, 401, 403, 404, 429, 503))
def sql(request: Request, caller: Analyst, db: Db, body: QueryIn) -> QueryOut:
    """Run one read-only SQL query over the force's tables (``reports``, ``sightings``,
    ``alerts``, ``lifecycle``): parsed and checked first, then run in a session that can
    read that force's files and nothing else, within limits of time, memory and rows.
    Audit-logged, refusals included, with its text and the rows it returned."""
    analytics = _analytics(request)
    analytics.lake_configured()
    if body.timeout_seconds > analytics.seconds_max:
        raise Problem(400, f"timeout_seconds is at most {analytics.seconds_max:g} here")
    analytics.pace(caller.principal.name)
    limits = QueryLimits(seconds=body.timeout_seconds, rows=body.max_rows)
    target = f"force/{caller.force_id}/sql"
    # The text, as audited: what a JSON column of PostgreSQL can hold (no NUL).
    text = body.query.replace("\x00", "\ufffd")
    try:
        check_query(body.query)  # refused before it costs a seat
        with analytics.seat(caller.force_id):
            result = ask(
                analytics.lake(caller.force_id), caller.force_id, body.query, limits,
                memory_bytes=analytics.memory_bytes,
            )  # fmt: skip
    except (QueryRefusedError, QueryFailedError) as exc:
        refused = isinstance(exc, QueryRefusedError)
        audit.record(
            db, request, caller.principal, "sql.refused" if refused else "sql.failed", target,
            force_id=caller.force_id, details={"query": text, "reason": str(exc)},
        )  # fmt: skip
        db.commit()
        raise Problem(400, analytics.hidden(str(exc))) from None
    audit.record(
        db, request, caller.principal, "sql.query", target, force_id=caller.force_id,
        details={"query": text, "rows": len(result.rows), "truncated": result.truncated,
                 "seconds": result.seconds},
    )  # fmt: skip
    db.commit()
    return QueryOut(
        sql=result.sql,
        columns=list(result.columns),
        rows=[list(row) for row in result.rows],
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
