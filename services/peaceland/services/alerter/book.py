"""The book of open alerts: which sighting raises an alert, which one updates it.

A force has at most one open alert per citizen. It is opened by a sighting (a report that
sees the citizen below the threshold) and covers every sighting whose report time falls
before ``opened_at + window``; the first sighting after that opens a new alert.

The state is one row per citizen in ``open_alerts``, changed only by Cassandra lightweight
transactions (compare-and-set), so two replicas that see the same citizen at once, in
different partitions, agree on one alert. Every decision is a pure function of the stored
state and the sighting, and the alert id is derived from the opening report: deciding the
same sighting again (a replay after a crash) gives the same answer.

Which Kafka record opened an alert is stored with it (``opened_by``): the same record read
again (its transaction was aborted by a crash) raises the alert again, to be committed this
time; another record of the same report (a drone resending it) only updates it.

Event time throughout: windows are judged on report timestamps, not on when we process
them, so a replay a day later decides exactly as the first pass did. A late report older
than the open alert's opening counts as a sighting of that alert.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from peaceland.tenants.alerts import alert_id_for
from peaceland.tenants.cassandra import to_millisecond, write_time
from peaceland.tenants.provisioning.keyspace import checked_keyspace
from peaceland.tenants.provisioning.topics import readable_for
from peaceland.tenants.reports import MAX_CLOCK_SKEW, MAX_REPORT_AGE, Citizen, Report

log = logging.getLogger(__name__)

#: Beyond the bounds below, for clocks and the time between the write and its TTL's start.
_STATE_MARGIN: Final = timedelta(hours=1)
_MAX_ATTEMPTS: Final = 10


@dataclass(frozen=True, slots=True)
class Sighting:
    """A citizen seen below the threshold in a report, read from one Kafka record."""

    report: Report
    citizen: Citizen
    #: The Kafka record the report came from, ``partition/offset``.
    source: str
    #: When the platform handles it: the ``raised_at`` of an alert it raises.
    handled_at: datetime

    @property
    def seen_at(self) -> datetime:
        """When the report was taken, to the millisecond: what Cassandra keeps of a time, so
        that an alert's ``opened_at`` reads the same in every event, whichever replica wrote
        it, and decisions compare like with like."""
        return to_millisecond(self.report.timestamp)


@dataclass(frozen=True, slots=True)
class Decision:
    event: Literal["raised", "updated"]
    alert_id: uuid.UUID
    opened_at: datetime


class ContendedError(RuntimeError):
    """Other replicas kept replacing the citizen's alert; the batch is retried."""


class AlertBook:
    """Open alerts of one force, in its keyspace."""

    def __init__(self, session: Session, keyspace: str, force_id: str) -> None:
        ks = checked_keyspace(keyspace)
        self.session = session
        self._session = session
        self._force_id = force_id
        self._open: PreparedStatement = session.prepare(
            f"INSERT INTO {ks}.open_alerts (citizen, alert_id, opened_at, opened_by) "
            "VALUES (?, ?, ?, ?) IF NOT EXISTS USING TTL ?"
        )
        self._replace: PreparedStatement = session.prepare(
            f"UPDATE {ks}.open_alerts USING TTL ? SET alert_id = ?, opened_at = ?, opened_by = ? "
            "WHERE citizen = ? IF alert_id = ?"
        )
        self._opening: PreparedStatement = session.prepare(
            f"SELECT opened_by FROM {ks}.alerts_by_day WHERE day = ? AND alert_id = ?"
        )
        self._record: PreparedStatement = session.prepare(
            f"INSERT INTO {ks}.alerts_by_day (day, alert_id, citizen, score, drone_id, "
            "report_id, latitude, longitude, opened_at, raised_at, last_seen_at, "
            "last_drone_id, last_latitude, last_longitude, last_score, state, opened_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?) USING TIMESTAMP ?"
        )
        # Where the control plane finds the alert by its id alone (its day), for its
        # lifecycle; the state stays null (open) until an officer's first transition.
        self._lifecycle: PreparedStatement = session.prepare(
            f"INSERT INTO {ks}.alert_lifecycle (alert_id, day, citizen, raised_at) "
            "VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._seen: PreparedStatement = session.prepare(
            f"UPDATE {ks}.alerts_by_day USING TIMESTAMP ? SET last_seen_at = ?, "
            "last_drone_id = ?, last_latitude = ?, last_longitude = ?, last_score = ? "
            "WHERE day = ? AND alert_id = ?"
        )

    def decide(self, sighting: Sighting, window_seconds: int, replay_hours: int = 168) -> Decision:
        """Raise or update the citizen's alert for this sighting, and record it.

        ``replay_hours`` is how long Kafka keeps the force's reports (its topics' retention):
        the dedup state lives until no sighting inside the alert's window can still arrive.
        """
        name = sighting.citizen.name
        candidate = alert_id_for(self._force_id, name, sighting.report.report_id)
        window = timedelta(seconds=window_seconds)
        ttl = state_seconds(window, replay_hours)
        for _ in range(_MAX_ATTEMPTS):
            opened = self._session.execute(
                self._open, (name, candidate, sighting.seen_at, sighting.source, ttl)
            )
            if opened.was_applied:
                return self._raise(candidate, sighting)
            current = opened.one()
            settled = self._against(current, candidate, window, sighting)
            if settled is not None:
                return settled
            replaced = self._session.execute(
                self._replace,
                (ttl, candidate, sighting.seen_at, sighting.source, name, current.alert_id),
            )
            if replaced.was_applied:
                return self._raise(candidate, sighting)
        raise ContendedError(f"could not settle the alert of {name!r}")

    def _against(
        self, current: Any, candidate: uuid.UUID, window: timedelta, sighting: Sighting
    ) -> Decision | None:
        """Judge a sighting against the citizen's open alert; None when that alert's window
        is over, so the sighting must open a new one."""
        opened_at = _aware(current.opened_at)
        if current.alert_id == candidate:
            if current.opened_by == sighting.source:
                # This very record, read again after a crash aborted its transaction.
                return self._raise(candidate, sighting)
            # The same report in another record (resent by its drone): a sighting.
            return self._update(candidate, opened_at, sighting)
        if sighting.seen_at < opened_at:
            earlier = self._opened_by(candidate, sighting.seen_at.date())
            if earlier == sighting.source:
                # This record opened an alert that another has since succeeded: a replay.
                return self._raise(candidate, sighting)
            if earlier is not None:
                return self._update(candidate, sighting.seen_at, sighting)
        if sighting.seen_at < opened_at + window:
            return self._update(current.alert_id, opened_at, sighting)
        return None

    def _opened_by(self, alert_id: uuid.UUID, day: date) -> str | None:
        row = self._session.execute(self._opening, (day, alert_id)).one()
        return None if row is None else str(row.opened_by)

    def _raise(self, alert_id: uuid.UUID, sighting: Sighting) -> Decision:
        report, citizen, seen_at = sighting.report, sighting.citizen, sighting.seen_at
        self._session.execute(
            self._record,
            (
                seen_at.date(),
                alert_id,
                citizen.name,
                citizen.score,
                report.drone_id,
                report.report_id,
                report.latitude,
                report.longitude,
                seen_at,
                sighting.handled_at,
                seen_at,
                report.drone_id,
                report.latitude,
                report.longitude,
                citizen.score,
                sighting.source,
                write_time(seen_at),
            ),
        )
        self._session.execute(
            self._lifecycle,
            (alert_id, seen_at.date(), citizen.name, sighting.handled_at, write_time(seen_at)),
        )
        return Decision("raised", alert_id, seen_at)

    def _update(self, alert_id: uuid.UUID, opened_at: datetime, sighting: Sighting) -> Decision:
        report, seen_at = sighting.report, sighting.seen_at
        # Written at the sighting's own time: the latest sighting wins whatever the order.
        self._session.execute(
            self._seen,
            (
                write_time(seen_at),
                seen_at,
                report.drone_id,
                report.latitude,
                report.longitude,
                sighting.citizen.score,
                opened_at.date(),
                alert_id,
            ),
        )
        return Decision("updated", alert_id, opened_at)


def state_seconds(window: timedelta, replay_hours: int) -> int:
    """How long a citizen's open-alert row must live after it is written (its TTL).

    Judged in processing time, as Cassandra counts a TTL, for a decision made in event time:
    the last sighting the row must still answer for was taken before ``opened_at + window``,
    received by the platform at most ``MAX_REPORT_AGE`` later (a drone out of range keeps
    its reports; a later one is refused), and read from Kafka at most the topic's retention
    after that (an alerter down, then catching up). The row is written no earlier than
    ``MAX_CLOCK_SKEW`` before ``opened_at``. Past that, no sighting of the window can come,
    and Cassandra may drop the row.
    """
    lifetime = (
        window
        + MAX_REPORT_AGE
        + MAX_CLOCK_SKEW
        + readable_for(replay_hours * 3_600_000)
        + _STATE_MARGIN
    )
    return int(lifetime.total_seconds())


def _aware(moment: datetime) -> datetime:
    # The driver returns naive UTC datetimes.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
