"""Writing reports to a force's keyspace: prepared, concurrent, idempotent."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from peaceland.tenants.provisioning.keyspace import checked_keyspace
from peaceland.tenants.reports import Report

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    written: int
    failed: list[tuple[Report, Exception]]


class ReportStore:
    """The reports tables of one keyspace."""

    def __init__(self, session: Session, keyspace: str, concurrency: int = 64) -> None:
        self._session = session
        self._concurrency = concurrency
        ks = checked_keyspace(keyspace)
        # USING TIMESTAMP: the report's own time, so a replayed write is the very same cell
        # version and the outcome never depends on which copy arrived last.
        self._insert = session.prepare(
            f"INSERT INTO {ks}.reports_by_drone_day (drone_id, day, reported_at, report_id, "
            "latitude, longitude, citizen_names, citizen_scores, words) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )

    def write(self, reports: Sequence[Report]) -> WriteOutcome:
        """Write ``reports`` concurrently; returns which ones failed (none raised)."""
        if not reports:
            return WriteOutcome(0, [])
        results = execute_concurrent_with_args(
            self._session,
            self._insert,
            [_row(r) for r in reports],
            concurrency=self._concurrency,
            raise_on_first_error=False,
        )
        failed = [
            (report, result)
            for report, (ok, result) in zip(reports, results, strict=True)
            if not ok
        ]
        return WriteOutcome(len(reports) - len(failed), failed)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _row(report: Report) -> tuple[object, ...]:
    ts = report.timestamp.astimezone(UTC)
    return (
        report.drone_id,
        ts.date(),
        ts,
        report.report_id,
        report.latitude,
        report.longitude,
        [c.name for c in report.citizens],
        [c.score for c in report.citizens],
        report.words,
        (ts - _EPOCH) // _MICROSECOND,
    )
