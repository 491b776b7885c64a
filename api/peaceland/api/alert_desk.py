"""A force's alerts as its officers work them: listed, read with their sightings, taken
through their lifecycle, and timed.

The alerter raises alerts (``alerts_by_day``) and writes, in ``alert_lifecycle``, the day
by which an alert is found from its id alone. A transition is one lightweight transaction
on the alert's ``alert_lifecycle`` partition: the state changes and the transition's row is
added only if no other transition came in between (``last_seq``), so two officers never both
acknowledge an alert; the loser reads the new state and is told who was first. Then the
transition is copied to ``alert_states_by_day`` (what lists and reaction times read) and
published on the force's lifecycle topic. A crash between the transaction and the
publication leaves a row in ``lifecycle_outbox`` (written before the transaction):
:meth:`AlertDesk.publish_pending` finishes such transitions. A transition may so be
published twice; readers keep one copy of each ``(alert_id, seq)``.

Everything here runs as the force's own Cassandra role and Kafka principal
(``peaceland.api.force_data``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, NamedTuple

from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement
from confluent_kafka import KafkaError, Message, Producer

from peaceland.api.force_data import ForceData
from peaceland.api.kube import Forces
from peaceland.api.schemas import (
    AlertDetail,
    AlertOut,
    ReactionFigures,
    SightingOut,
    TransitionOut,
)
from peaceland.tenants.cassandra import to_millisecond
from peaceland.tenants.forces import ForceResources, sighting_bucket
from peaceland.tenants.lifecycle import (
    Action,
    AlertState,
    IllegalTransitionError,
    Transition,
    encode_transition,
    next_state,
)
from peaceland.tenants.provisioning.keyspace import checked_keyspace

log = logging.getLogger(__name__)

#: Attempts at a transition while others keep changing the alert.
_ATTEMPTS: Final = 8
#: The one partition of the outbox (a few rows at most, each removed within a second).
_OUTBOX: Final = 0
#: Longest a request waits for Kafka to take a transition (the outbox keeps the rest).
_PUBLISH_WAIT: Final = 2.0
#: Age past which an outbox row whose transaction never applied is dropped: far beyond
#: the longest a request can be at work (its attempts and their timeouts).
_ORPHAN_AGE: Final = timedelta(minutes=10)
#: Longest span one list or reaction query covers.
MAX_DAYS: Final = 31


class AlertNotFoundError(LookupError):
    pass


class AlertContendedError(RuntimeError):
    """Others kept changing the alert while this transition was tried."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """A transition made, or found made by the same request before (``replayed``)."""

    transition: Transition
    replayed: bool
    published: bool


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier).total_seconds(), 3)


class Listed(NamedTuple):
    """What a list filters an alert by: when it was opened, who, its state, where the
    citizen was last seen."""

    opened_at: datetime
    alert_id: uuid.UUID
    citizen: str
    state: str
    latitude: float
    longitude: float


class AlertDesk:
    """One force's alerts, through its own Cassandra session and Kafka producer."""

    def __init__(
        self,
        session: Session,
        producer: Producer,
        resources: ForceResources,
        timeout: float = 10.0,
    ) -> None:
        ks = checked_keyspace(resources.keyspace)
        self._session = session
        self._producer = producer
        self._resources = resources
        self._timeout = timeout
        # A request waits this long for Kafka at most; the publisher does the rest.
        self._publish_wait = min(_PUBLISH_WAIT, timeout)
        prepare = session.prepare
        self._head: PreparedStatement = prepare(
            f"SELECT day, citizen, raised_at, state, last_seq, assignee, acknowledged_at, "
            f"acknowledged_by, resolved_at, resolved_by FROM {ks}.alert_lifecycle "
            "WHERE alert_id = ? LIMIT 1"
        )
        self._rows: PreparedStatement = prepare(
            f"SELECT seq, action, actor, at, note, request_key, published, to_state, "
            f"to_assignee, raised_at FROM {ks}.alert_lifecycle WHERE alert_id = ?"
        )
        self._row: PreparedStatement = prepare(
            f"SELECT seq, action, actor, at, note, request_key, published, to_state, "
            f"to_assignee, raised_at FROM {ks}.alert_lifecycle WHERE alert_id = ? AND seq = ?"
        )
        self._alert: PreparedStatement = prepare(
            f"SELECT * FROM {ks}.alerts_by_day WHERE day = ? AND alert_id = ?"
        )
        self._day_alerts: PreparedStatement = prepare(
            f"SELECT * FROM {ks}.alerts_by_day WHERE day = ?"
        )
        self._day_states: PreparedStatement = prepare(
            f"SELECT * FROM {ks}.alert_states_by_day WHERE day = ?"
        )
        self._sightings: PreparedStatement = prepare(
            f"SELECT reported_at, drone_id, score FROM {ks}.sightings_by_citizen "
            "WHERE day = ? AND bucket = ? AND citizen = ? AND reported_at >= ? "
            "AND reported_at <= ? LIMIT 1000"
        )
        self._outbox_add: PreparedStatement = prepare(
            f"INSERT INTO {ks}.lifecycle_outbox (bucket, alert_id, seq, written_at) "
            "VALUES (?, ?, ?, ?)"
        )
        self._outbox_list: PreparedStatement = prepare(
            f"SELECT alert_id, seq, written_at FROM {ks}.lifecycle_outbox WHERE bucket = ?"
        )
        # Serial reads: a transaction left in progress (a timeout) is finished or rolled
        # back before the publisher judges it.
        self._row_serial: PreparedStatement = prepare(
            f"SELECT seq, action, actor, at, note, request_key, published, to_state, "
            f"to_assignee, raised_at, last_seq, day FROM {ks}.alert_lifecycle "
            "WHERE alert_id = ? AND seq = ?"
        )
        self._row_serial.consistency_level = ConsistencyLevel.LOCAL_SERIAL
        self._outbox_remove: PreparedStatement = prepare(
            f"DELETE FROM {ks}.lifecycle_outbox WHERE bucket = ? AND alert_id = ? AND seq = ?"
        )
        self._move: PreparedStatement = prepare(
            f"UPDATE {ks}.alert_lifecycle SET state = ?, last_seq = ?, assignee = ?, "
            "acknowledged_at = ?, acknowledged_by = ?, resolved_at = ?, resolved_by = ? "
            "WHERE alert_id = ? IF last_seq = ?"
        )
        self._add: PreparedStatement = prepare(
            f"INSERT INTO {ks}.alert_lifecycle (alert_id, seq, action, actor, at, note, "
            "request_key, published, to_state, to_assignee) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, false, ?, ?)"
        )
        self._published: PreparedStatement = prepare(
            f"UPDATE {ks}.alert_lifecycle SET published = true WHERE alert_id = ? AND seq = ?"
        )
        # Written at a time that grows with seq: a later transition's copy always wins,
        # whichever order the copies are written in (a publisher finishing an old one).
        self._copy: PreparedStatement = prepare(
            f"UPDATE {ks}.alert_states_by_day USING TIMESTAMP ? SET state = ?, last_seq = ?, "
            "assignee = ?, acknowledged_at = ?, acknowledged_by = ?, resolved_at = ?, "
            "resolved_by = ? WHERE day = ? AND alert_id = ?"
        )

    # ------------------------------------------------------------------ transitions

    def transition(
        self,
        alert_id: uuid.UUID,
        action: Action,
        actor: str,
        *,
        note: str | None = None,
        assignee: str | None = None,
        request_key: str | None = None,
        now: datetime | None = None,
    ) -> Recorded:
        """Take the alert through ``action``; IllegalTransitionError when its state does
        not allow it, AlertNotFoundError when the force has no such alert. A request made
        again with the same ``request_key`` gets the transition it made the first time."""
        for _ in range(_ATTEMPTS):
            head = self._session.execute(self._head, (alert_id,)).one()
            if head is None or head.day is None:
                raise AlertNotFoundError(str(alert_id))
            if request_key is not None:
                made = self._made_by(alert_id, request_key)
                if made is not None:
                    published = self._finish(made, head.day)
                    return Recorded(made, replayed=True, published=published)
            state: AlertState = head.state or "open"
            try:
                after = next_state(state, action)
            except IllegalTransitionError as exc:
                raise IllegalTransitionError(f"{exc}{_by_whom(head)}") from None
            at = to_millisecond(now or datetime.now(UTC))
            seq = (head.last_seq or 0) + 1
            transition = Transition(
                force_id=self._resources.force_id,
                alert_id=alert_id,
                seq=seq,
                action=action,
                state=after,
                actor=actor,
                at=at,
                raised_at=_utc(head.raised_at),
                assignee=assignee if action == "assign" else None,
                note=note,
            )
            statics = _statics_after(head, transition)
            self._session.execute(self._outbox_add, (_OUTBOX, alert_id, seq, at))
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            batch.add(self._move, (*statics, alert_id, head.last_seq))
            batch.add(
                self._add,
                (alert_id, seq, action, actor, at, note, request_key, after, transition.assignee),
            )  # fmt: skip
            if not self._session.execute(batch).was_applied:
                continue  # another transition came first: judge this one again on its state
            published = self._finish(transition, head.day, statics)
            return Recorded(transition, replayed=False, published=published)
        raise AlertContendedError(f"alert {alert_id} kept changing; try again")

    def _made_by(self, alert_id: uuid.UUID, request_key: str) -> Transition | None:
        for row in self._session.execute(self._rows, (alert_id,)):
            if row.seq is not None and row.request_key == request_key:
                return self._transition(alert_id, row)
        return None

    def _transition(self, alert_id: uuid.UUID, row: Any) -> Transition:
        return Transition(
            force_id=self._resources.force_id,
            alert_id=alert_id,
            seq=row.seq,
            action=row.action,
            state=row.to_state,
            actor=row.actor,
            at=_utc(row.at) or datetime.now(UTC),
            raised_at=_utc(row.raised_at),
            assignee=row.to_assignee,
            note=row.note,
        )

    def _finish(
        self, transition: Transition, day: date, statics: Sequence[Any] | None = None
    ) -> bool:
        """Copy the transition to the day's states and publish it; True once published
        (False leaves it in the outbox, for :meth:`publish_pending`)."""
        if statics is None:
            head = self._session.execute(self._head, (transition.alert_id,)).one()
            if head is None or (head.last_seq or 0) != transition.seq:
                statics = None  # a later transition has copied a newer state already
            else:
                statics = _statics_of(head)
        if statics is not None:
            raised = transition.raised_at or transition.at
            stamp = int(raised.timestamp() * 1_000_000) + transition.seq
            self._session.execute(self._copy, (stamp, *statics, day, transition.alert_id))
        if not self._publish(transition):
            return False
        self._session.execute(self._published, (transition.alert_id, transition.seq))
        self._session.execute(self._outbox_remove, (_OUTBOX, transition.alert_id, transition.seq))
        return True

    def _publish(self, transition: Transition) -> bool:
        failures: list[KafkaError] = []

        def delivered(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                failures.append(error)

        try:
            self._producer.produce(
                self._resources.lifecycle_topic,
                key=str(transition.alert_id).encode(),
                value=encode_transition(transition),
                headers={"event-id": transition.event_id},
                on_delivery=delivered,
            )
            left = self._producer.flush(self._publish_wait)
        except Exception as exc:  # BufferError, KafkaException: published later
            log.warning("transition %s not published yet: %s", transition.event_id, exc)
            return False
        if left or failures:
            log.warning(
                "transition %s not published yet: %s",
                transition.event_id,
                failures[0] if failures else "Kafka did not acknowledge it in time",
            )
            return False
        return True

    def publish_pending(self, older_than: timedelta = timedelta(seconds=5)) -> int:
        """Finish the transitions a crash or an outage left unpublished; returns how many
        were published. Judged on serial reads: a transaction a timeout left in progress is
        settled first. A row whose transaction never applied is dropped only once no request
        can still be at work on it."""
        done = 0
        now = datetime.now(UTC)
        for row in list(self._session.execute(self._outbox_list, (_OUTBOX,))):
            written = _utc(row.written_at) or now
            if written > now - older_than:
                continue  # its request may still be at work
            found = self._session.execute(self._row_serial, (row.alert_id, row.seq)).one()
            if found is None or found.action is None:
                if written <= now - _ORPHAN_AGE:
                    self._session.execute(self._outbox_remove, (_OUTBOX, row.alert_id, row.seq))
                continue
            if found.published:
                self._session.execute(self._outbox_remove, (_OUTBOX, row.alert_id, row.seq))
                continue
            if self._finish(self._transition(row.alert_id, found), found.day):
                done += 1
        return done

    # ------------------------------------------------------------------ reads

    def alert(self, alert_id: uuid.UUID) -> AlertDetail:
        head = self._session.execute(self._head, (alert_id,)).one()
        if head is None or head.day is None:
            raise AlertNotFoundError(str(alert_id))
        row = self._session.execute(self._alert, (head.day, alert_id)).one()
        if row is None:
            raise AlertNotFoundError(str(alert_id))
        alert = _alert_out(row, None, head)  # the lifecycle itself: never behind
        transitions = [
            transition_out(self._transition(alert_id, r))
            for r in self._session.execute(self._rows, (alert_id,))
            if r.seq is not None
        ]
        return AlertDetail(
            **alert.model_dump(),
            transitions=transitions,
            sightings=self._sightings_of(alert),
        )

    def _sightings_of(self, alert: AlertOut) -> list[SightingOut]:
        """Every sighting of the citizen from the alert's opening to its last sighting."""
        last = alert.last_seen_at or alert.opened_at
        found: list[SightingOut] = []
        day = alert.opened_at.date()
        while day <= last.date() and len(found) < 1_000:
            rows = self._session.execute(
                self._sightings,
                (day, sighting_bucket(alert.citizen), alert.citizen, alert.opened_at, last),
            )
            found += [
                SightingOut(
                    reported_at=_utc(r.reported_at) or alert.opened_at,
                    drone_id=r.drone_id,
                    score=r.score,
                )
                for r in rows
            ]
            day += timedelta(days=1)
        return found[:1_000]

    def alerts(
        self,
        since: datetime,
        until: datetime,
        keep: Callable[[Listed], bool] | None = None,
        most: int | None = None,
    ) -> list[AlertOut]:
        """The alerts opened in [since, until), newest first: those ``keep`` keeps (all
        by default), ``most`` of them at most. Filtered on what the rows say before any is
        made an ``AlertOut``: a page of a long history costs its page, not the history."""
        found: list[tuple[Listed, Any, Any]] = []
        for day in _days(since, until):
            states = {r.alert_id: r for r in self._session.execute(self._day_states, (day,))}
            for row in self._session.execute(self._day_alerts, (day,)):
                opened = _utc(row.opened_at)
                if opened is None or not since <= opened < until:
                    continue
                state = states.get(row.alert_id)
                listed = Listed(
                    opened_at=opened,
                    alert_id=row.alert_id,
                    citizen=row.citizen,
                    state=(state.state if state is not None and state.state else "open"),
                    latitude=row.last_latitude if row.last_latitude is not None else row.latitude,
                    longitude=(
                        row.last_longitude if row.last_longitude is not None else row.longitude
                    ),
                )
                if keep is None or keep(listed):
                    found.append((listed, row, state))
        found.sort(key=lambda f: (f[0].opened_at, str(f[0].alert_id)), reverse=True)
        return [_alert_out(row, state, None) for _, row, state in found[:most]]

    def reaction(self, since: datetime, until: datetime) -> ReactionFigures:
        alerts = self.alerts(since, until)
        acknowledged = [a.reaction_seconds for a in alerts if a.reaction_seconds is not None]
        resolved = [a.resolution_seconds for a in alerts if a.resolution_seconds is not None]
        return ReactionFigures(
            since=since,
            until=until,
            raised=len(alerts),
            open=sum(1 for a in alerts if a.state == "open"),
            acknowledged=sum(1 for a in alerts if a.state == "acknowledged"),
            resolved=sum(1 for a in alerts if a.state == "resolved"),
            acknowledged_p50_seconds=_percentile(acknowledged, 50),
            acknowledged_p90_seconds=_percentile(acknowledged, 90),
            resolved_p50_seconds=_percentile(resolved, 50),
            resolved_p90_seconds=_percentile(resolved, 90),
        )


class Desks:
    """Each force's desk, made again when the force's identities change (a rotation, a
    force made again under its name): its statements prepared once per session."""

    def __init__(self, data: ForceData, timeout: float = 10.0) -> None:
        self._data = data
        self._timeout = timeout
        self._lock = threading.Lock()
        self._desks: dict[str, tuple[str, AlertDesk]] = {}

    def get(self, force_id: str) -> AlertDesk:
        fingerprint = self._data.fingerprint_of(force_id)
        with self._lock:
            known = self._desks.get(force_id)
        if known is not None and known[0] == fingerprint:
            return known[1]
        desk = AlertDesk(
            self._data.session(force_id),
            self._data.producer(force_id),
            self._data.resources(force_id),
            timeout=self._timeout,
        )
        with self._lock:
            self._desks[force_id] = (fingerprint, desk)
        return desk

    def clear(self) -> None:
        """Let go of every desk (their sessions and producers), before the data closes."""
        with self._lock:
            self._desks.clear()


class LifecyclePublisher:
    """Every ``interval``, publishes what each provisioned force's outbox holds (the
    transitions a crash or a Kafka outage kept off its lifecycle topic)."""

    def __init__(
        self,
        forces: Forces,
        desks: Desks,
        interval: float,
        older_than: timedelta = timedelta(seconds=5),
    ) -> None:
        self._forces = forces
        self._desks = desks
        self._interval = interval
        self._older_than = older_than
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lifecycle-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.publish_all()

    def publish_all(self) -> int:
        published = 0
        try:
            resources = self._forces.list()
        except Exception as exc:
            log.warning("lifecycle outboxes not read this time: %s", exc)
            return 0
        for resource in resources:
            if resource.deleting or not resource.status.get("keyspace"):
                continue
            try:
                desk = self._desks.get(resource.name)
                published += desk.publish_pending(self._older_than)
            except Exception as exc:
                log.warning("the lifecycle outbox of %s not read this time: %s",
                            resource.name, exc)  # fmt: skip
        return published


def _days(since: datetime, until: datetime) -> Iterable[date]:
    day = since.astimezone(UTC).date()
    last = (until - timedelta(microseconds=1)).astimezone(UTC).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def _percentile(values: list[float], percent: int) -> float | None:
    """The nearest-rank percentile (None without values): a time some alert really took."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-percent * len(ordered) // 100))
    return ordered[rank - 1]


def _by_whom(head: Any) -> str:
    if head.state == "resolved" and head.resolved_by:
        return f" (by {head.resolved_by} at {_utc(head.resolved_at):%Y-%m-%dT%H:%M:%SZ})"
    if head.state == "acknowledged" and head.acknowledged_by:
        return f" (by {head.acknowledged_by} at {_utc(head.acknowledged_at):%Y-%m-%dT%H:%M:%SZ})"
    return ""


def _statics_of(head: Any) -> tuple[Any, ...]:
    return (
        head.state or "open",
        head.last_seq,
        head.assignee,
        head.acknowledged_at,
        head.acknowledged_by,
        head.resolved_at,
        head.resolved_by,
    )


def _statics_after(head: Any, transition: Transition) -> tuple[Any, ...]:
    """The alert's state columns once ``transition`` is made."""
    _, _, assignee, acked_at, acked_by, resolved_at, resolved_by = _statics_of(head)
    if transition.action == "assign":
        assignee = transition.assignee
    if transition.action == "acknowledge":
        acked_at, acked_by = transition.at, transition.actor
    if transition.action == "resolve":
        resolved_at, resolved_by = transition.at, transition.actor
    return (
        transition.state,
        transition.seq,
        assignee,
        acked_at,
        acked_by,
        resolved_at,
        resolved_by,
    )


def _alert_out(row: Any, state: Any, head: Any) -> AlertOut:
    source = state if state is not None else head
    raised = _utc(row.raised_at) or _utc(row.opened_at)
    acknowledged_at = _utc(source.acknowledged_at) if source is not None else None
    resolved_at = _utc(source.resolved_at) if source is not None else None
    assert raised is not None
    return AlertOut(
        alert_id=row.alert_id,
        citizen=row.citizen,
        score=row.score,
        drone_id=row.drone_id,
        report_id=row.report_id,
        latitude=row.latitude,
        longitude=row.longitude,
        opened_at=_utc(row.opened_at) or raised,
        raised_at=raised,
        last_seen_at=_utc(row.last_seen_at),
        last_drone_id=row.last_drone_id,
        last_latitude=row.last_latitude,
        last_longitude=row.last_longitude,
        last_score=row.last_score,
        state=(source.state if source is not None and source.state else "open"),
        assignee=source.assignee if source is not None else None,
        acknowledged_at=acknowledged_at,
        acknowledged_by=source.acknowledged_by if source is not None else None,
        resolved_at=resolved_at,
        resolved_by=source.resolved_by if source is not None else None,
        reaction_seconds=_seconds(acknowledged_at, raised),
        resolution_seconds=_seconds(resolved_at, raised),
    )


def transition_out(transition: Transition) -> TransitionOut:
    return TransitionOut(
        seq=transition.seq,
        action=transition.action,
        state=transition.state,
        actor=transition.actor,
        at=transition.at,
        assignee=transition.assignee,
        note=transition.note,
    )


__all__ = [
    "MAX_DAYS",
    "AlertContendedError",
    "AlertDesk",
    "AlertNotFoundError",
    "Desks",
    "LifecyclePublisher",
    "Recorded",
    "transition_out",
]
