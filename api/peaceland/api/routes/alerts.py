"""A force's alerts, for its officers and analysts: listed, read, taken through their
lifecycle, timed. Served from the force's own topics and keyspace, read as the force's own
identities (``peaceland.api.force_data``)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import select
from sqlalchemy.orm import Session

from peaceland.api import audit
from peaceland.api.alert_desk import (
    MAX_DAYS,
    AlertContendedError,
    AlertDesk,
    AlertNotFoundError,
    Desks,
    Listed,
    Recorded,
    transition_out,
)
from peaceland.api.auth import ForceCaller, principal
from peaceland.api.conventions import IdempotencyKey
from peaceland.api.db import session
from peaceland.api.drones import DroneWatches, PageDrones
from peaceland.api.feed import BadPositionError, Feed, Position, decode_position
from peaceland.api.force_data import describe
from peaceland.api.models import AuditEvent, Membership, Role, User
from peaceland.api.paging import Cursor, Page, after_str, encode
from peaceland.api.problems import Problem, responses
from peaceland.api.routes.police_data import Officer, Reader, force_data, served
from peaceland.api.schemas import (
    AlertDetail,
    AlertOut,
    AlertStateName,
    ReactionFigures,
    TransitionIn,
    TransitionOut,
)
from peaceland.tenants.kafka import Config
from peaceland.tenants.lifecycle import IllegalTransitionError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/forces/{force_id}/alerts", tags=["alerts"])
Db = Annotated[Session, Depends(session)]
AlertId = Annotated[uuid.UUID, Path(description="The alert's id.")]
Since = Annotated[
    datetime | None,
    Query(description="Alerts opened at or after (RFC 3339); 24 hours ago by default."),
]
Until = Annotated[datetime | None, Query(description="Alerts opened before; now by default.")]

#: How often an open feed checks that its caller may still read it.
_RECHECK_SECONDS: Final = 30.0
_EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)
#: Who may be assigned an alert.
_ASSIGNABLE: Final = (Role.officer, Role.force_admin)


def _desk(request: Request, force_id: str) -> AlertDesk:
    """The force's desk (made again when its identities change)."""
    force_data(request)
    desks: Desks = request.app.state.desks
    return desks.get(force_id)


def _moment(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise Problem.field(422, f"query.{name}", "a time with its offset (2026-11-30T08:00:00Z)")
    if value is not None and not _EARLIEST <= value <= _LATEST:
        raise Problem.field(422, f"query.{name}", "a time between 2000 and 9000")


def _span(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    _moment("since", since)
    _moment("until", until)
    end = until.astimezone(UTC) if until else datetime.now(UTC)
    start = since.astimezone(UTC) if since else end - timedelta(hours=24)
    if start >= end:
        raise Problem.field(422, "query.since", "before until")
    if end - start > timedelta(days=MAX_DAYS):
        raise Problem.field(422, "query.since", f"at most {MAX_DAYS} days before until")
    return start, end


def _bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        west, south, east, north = (float(v) for v in value.split(","))
    except ValueError:
        raise Problem.field(422, "query.bbox", "four numbers: west,south,east,north") from None
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        raise Problem.field(422, "query.bbox", "longitudes in [-180, 180], south <= north")
    return west, south, east, north


def _inside(latitude: float, longitude: float, box: tuple[float, float, float, float]) -> bool:
    west, south, east, north = box
    across = longitude >= west or longitude <= east  # a box across the antimeridian
    within = west <= longitude <= east if west <= east else across
    return south <= latitude <= north and within


def _key(opened_at: datetime, alert_id: uuid.UUID) -> str:
    return f"{int(opened_at.timestamp() * 1000):013d}|{alert_id}"


@router.get("", response_model=Page[AlertOut], responses=responses(401, 403, 404, 409, 503))
def list_alerts(
    request: Request,
    caller: Reader,
    db: Db,
    since: Since = None,
    until: Until = None,
    state: Annotated[list[AlertStateName] | None, Query(description="Only these states.")] = None,
    citizen: Annotated[str | None, Query(max_length=200, description="Only this citizen.")] = None,
    bbox: Annotated[
        str | None,
        Query(
            max_length=100,
            description="Only alerts whose citizen was last seen in west,south,east,north.",
        ),
    ] = None,
    cursor: Cursor = None,
    limit: Annotated[
        int, Query(ge=1, le=5_000, description="Most alerts on this page (a dashboard loads many).")
    ] = 100,
) -> Page[AlertOut]:
    """The force's alerts opened in [since, until) (at most 31 days), newest first."""
    start, end = _span(since, until)
    box = _bbox(bbox)
    after = after_str(cursor)

    def keep(alert: Listed) -> bool:
        return (
            (not state or alert.state in state)
            and (citizen is None or alert.citizen == citizen)
            and (box is None or _inside(alert.latitude, alert.longitude, box))
            and (after is None or _key(alert.opened_at, alert.alert_id) < after)
        )

    with served(request, caller.force_id):
        chosen = _desk(request, caller.force_id).alerts(start, end, keep, most=limit + 1)
    shown = chosen[:limit]
    audit.record(
        db, request, caller.principal, "alerts.read", f"force/{caller.force_id}/alerts",
        force_id=caller.force_id,
        details={"since": start.isoformat(), "until": end.isoformat(), "shown": len(shown)},
    )  # fmt: skip
    db.commit()
    last = shown[-1] if shown else None
    following = (
        encode([_key(last.opened_at, last.alert_id)]) if last and len(chosen) > limit else None
    )
    return Page[AlertOut](items=shown, next_cursor=following)


def _resume(
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=20_000,
            description="The id of the last event received: the feed goes on right after it.",
        ),
    ] = None,
) -> Position | None:
    if last_event_id is None:
        return None
    try:
        return decode_position(last_event_id)
    except BadPositionError as exc:
        raise Problem.field(400, "header.Last-Event-ID", str(exc)) from None


def _feed_start(
    since: Annotated[
        datetime | None,
        Query(
            description="Events from this time on (RFC 3339); 12 hours ago by default. "
            "Ignored when resuming with Last-Event-ID."
        ),
    ] = None,
) -> datetime:
    _moment("since", since)
    return (since or datetime.now(UTC) - timedelta(hours=12)).astimezone(UTC)


def _feed_config(request: Request, caller: Reader) -> Config:
    """The feed's reader, as the force's own principal: settled before the stream starts,
    so that a force not there, not ready, or unreachable gets its status (404, 409, 503)."""
    with served(request, caller.force_id):
        return force_data(request).consumer_config(caller.force_id)


@router.get(
    "/feed",
    response_class=EventSourceResponse,
    responses={
        **responses(400, 401, 403, 404, 409, 503),
        200: {
            "description": "Server-Sent Events: `alert` (an alert raised or seen again) and "
            "`transition` (acknowledged, assigned, resolved, noted), each with its JSON "
            "and an id to resume from; `error` when the feed must stop (the browser "
            "reconnects by itself with Last-Event-ID); a comment every 15 s keeps it open.",
            "content": {"text/event-stream": {}},
        },
    },
)
async def live_feed(
    request: Request,
    caller: Reader,
    resume: Annotated[Position | None, Depends(_resume)],
    config: Annotated[Config, Depends(_feed_config)],
    start: Annotated[datetime, Depends(_feed_start)],
    drones: Annotated[
        bool,
        Query(
            description="Also `drones` events, about once a second: the drones that moved "
            "since the last one (the first: every drone that reported lately)."
        ),
    ] = False,
) -> AsyncIterator[ServerSentEvent]:
    """The force's alerts and transitions as they happen, read committed from its topics.
    A page reconnecting with Last-Event-ID misses nothing and gets nothing twice."""
    data = force_data(request)
    watches: DroneWatches = request.app.state.drones
    page_drones: PageDrones | None = None
    feeds: FeedCount = request.app.state.live_feeds
    if not feeds.take():
        yield ServerSentEvent(
            event="error", data={"detail": "too many live feeds open here; trying again"},
            retry=10_000,
        )  # fmt: skip
        return
    try:
        await run_in_threadpool(_audit_feed, request, caller, start, resume is not None)
        feed = Feed(
            config,
            data.resources(caller.force_id),
            request.app.state.closing_feeds,
            timeout=request.app.state.settings.data_timeout_seconds,
        )
        if drones:
            page_drones = await _page_drones(watches, caller.force_id)
        # Closed as soon as the page leaves: its Kafka client with it, not at the next GC.
        checked = time.monotonic()
        async with aclosing(feed.start(start, resume)) as events:
            async for event in events:
                if time.monotonic() - checked >= _RECHECK_SECONDS:
                    # The stream outlives the check made when it opened: a logout, an
                    # expired token or a role taken away ends it (the page signs in again).
                    checked = time.monotonic()
                    reason = await run_in_threadpool(_no_longer_admitted, request, caller)
                    if reason is not None:
                        yield ServerSentEvent(event="error", data={"detail": reason})
                        return
                if event is not None:
                    event_id, name, body = event
                    yield ServerSentEvent(id=event_id, event=name, data=body)
                # No id: a drones event is never a position to resume from.
                for chunk in await page_drones.due() if page_drones is not None else []:
                    yield ServerSentEvent(event="drones", raw_data=chunk)
    except BadPositionError as exc:
        # An empty id: the browser forgets the position and comes back from ``since``.
        yield ServerSentEvent(id="", event="error", data={"detail": str(exc)})
    except Exception as exc:  # a server lost: said, and the browser comes back
        log.warning("the feed of %s stopped: %s", caller.force_id, exc)
        yield ServerSentEvent(
            event="error", data={"detail": f"the feed stopped: {describe(exc)}"}, retry=2_000
        )
    finally:
        feeds.give_back()
        if page_drones is not None:
            page_drones.close()  # never blocks: fine while a leaving page unwinds


async def _page_drones(watches: DroneWatches, force_id: str) -> PageDrones | None:
    """The page's drones; none when they cannot be read now (the alerts go on without)."""
    try:
        return PageDrones(watches, await run_in_threadpool(watches.attach, force_id))
    except Exception as exc:
        log.warning("a feed of %s goes without drones: %s", force_id, exc)
        return None


class FeedCount:
    """Live feeds open in this process, up to a bound (each holds a thread and a Kafka
    client)."""

    def __init__(self, most: int) -> None:
        self._most = most
        self._open = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._open >= self._most:
                return False
            self._open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self._open -= 1

    @property
    def open(self) -> int:
        with self._lock:
            return self._open


def _no_longer_admitted(request: Request, caller: ForceCaller) -> str | None:
    """Why the caller may no longer read the feed (None: they still may)."""
    try:
        again = principal(request, _bearer_of(request))
    except Problem as exc:
        return exc.detail
    if again.role_in(caller.force_id) not in (Role.officer, Role.analyst):
        return f"you are no longer an officer or analyst of {caller.force_id}"
    return None


def _bearer_of(request: Request) -> HTTPAuthorizationCredentials | None:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token.strip())


def _audit_feed(request: Request, caller: ForceCaller, since: datetime, resumed: bool) -> None:
    with request.app.state.sessions() as db:
        audit.record(
            db, request, caller.principal, "alerts.feed", f"force/{caller.force_id}/alerts",
            force_id=caller.force_id,
            details={"since": since.isoformat(), "resumed": resumed},
        )  # fmt: skip
        db.commit()


@router.get(
    "/reaction", response_model=ReactionFigures, responses=responses(401, 403, 404, 409, 503)
)
def reaction(
    request: Request, caller: Reader, since: Since = None, until: Until = None
) -> ReactionFigures:
    """How fast the force's officers acknowledged and resolved the alerts opened in
    [since, until): counts by state and nearest-rank p50/p90 in seconds."""
    start, end = _span(since, until)
    with served(request, caller.force_id):
        return _desk(request, caller.force_id).reaction(start, end)


@router.get("/{alert_id}", response_model=AlertDetail, responses=responses(401, 403, 404, 409, 503))
def get_alert(request: Request, caller: Reader, db: Db, alert_id: AlertId) -> AlertDetail:
    """One alert, with every transition and every sighting of its citizen while it was
    open."""
    with served(request, caller.force_id):
        try:
            detail = _desk(request, caller.force_id).alert(alert_id)
        except AlertNotFoundError:
            raise Problem(404, f"no alert {alert_id} in {caller.force_id}") from None
    audit.record(
        db, request, caller.principal, "alert.read", f"alert/{alert_id}", force_id=caller.force_id
    )
    db.commit()
    return detail


@router.post(
    "/{alert_id}/transitions",
    status_code=status.HTTP_201_CREATED,
    response_model=TransitionOut,
    responses={
        **responses(401, 403, 404, 409, 503),
        200: {"description": "The same request made before (its Idempotency-Key): its answer."},
    },
)
def transition(
    request: Request,
    response: Response,
    body: TransitionIn,
    caller: Officer,
    db: Db,
    alert_id: AlertId,
    idempotency_key: IdempotencyKey = None,
) -> TransitionOut:
    """Acknowledge, assign, resolve an alert, or add a note to it. 409 when its state does
    not allow it (resolve a resolved alert), naming who changed it last. Send an
    ``Idempotency-Key``: after a timeout, the same request sent again gets the transition
    it made, never a second one."""
    if body.assignee is not None:
        _check_assignee(db, caller.force_id, body.assignee)
    actor = caller.principal.name
    key = None if idempotency_key is None else f"{actor}\x1f{idempotency_key}"
    with served(request, caller.force_id):
        try:
            recorded = _desk(request, caller.force_id).transition(
                alert_id,
                body.action,
                actor,
                note=body.note,
                assignee=body.assignee,
                request_key=key,
            )
        except AlertNotFoundError:
            raise Problem(404, f"no alert {alert_id} in {caller.force_id}") from None
        except IllegalTransitionError as exc:
            raise Problem(409, str(exc)) from None
        except AlertContendedError as exc:
            raise Problem(409, str(exc)) from None
    made = recorded.transition
    if recorded.replayed:
        if (made.action, made.note, made.assignee) != (body.action, body.note, body.assignee):
            raise Problem.field(
                422, "header.Idempotency-Key", "already used for a different request"
            )
        response.status_code = status.HTTP_200_OK
        if _audited(db, alert_id, made.action, made.seq):
            return _out(recorded)
        # Made by a first attempt whose answer was lost before it was audited: audit now.
    audit.record(
        db, request, caller.principal, f"alert.{made.action}", f"alert/{alert_id}",
        force_id=caller.force_id,
        details={"seq": made.seq, "state": made.state, "assignee": made.assignee,
                 "note": made.note, "at": made.at.isoformat()},
    )  # fmt: skip
    db.commit()
    return _out(recorded)


def _out(recorded: Recorded) -> TransitionOut:
    return transition_out(recorded.transition)


def _audited(db: Session, alert_id: uuid.UUID, action: str, seq: int) -> bool:
    found = db.scalar(
        select(AuditEvent.id)
        .where(
            AuditEvent.target == f"alert/{alert_id}",
            AuditEvent.action == f"alert.{action}",
            AuditEvent.details["seq"].as_integer() == seq,
        )
        .limit(1)
    )
    return found is not None


def _check_assignee(db: Session, force_id: str, email: str) -> None:
    role = db.scalar(
        select(Membership.role)
        .join(User, User.id == Membership.user_id)
        .where(Membership.force_id == force_id, User.email == email.lower())
    )
    if role not in _ASSIGNABLE:
        raise Problem.field(422, "body.assignee", f"not an officer or force admin of {force_id}")
