"""Writing reports to a force's keyspace: prepared, concurrent, idempotent."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent
from cassandra.query import PreparedStatement

from peaceland.tenants.provisioning.keyspace import checked_keyspace
from peaceland.tenants.reports import Report

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    written: int
    failed: list[tuple[Report, Exception]]


class ReportStore:
    """The report tables of one keyspace: reports by drone and day, sightings by citizen.

    Every statement is an upsert keyed by the report id and written ``USING TIMESTAMP`` of
    the report's own time, so a replayed write is the very same cell version and the outcome
    never depends on which copy arrived last. Rows expire with the table's TTL (retention).
    """

    def __init__(self, session: Session, keyspace: str, concurrency: int = 64) -> None:
        self._session = session
        self._concurrency = concurrency
        ks = checked_keyspace(keyspace)
        self._report: PreparedStatement = session.prepare(
            f"INSERT INTO {ks}.reports_by_drone_day (drone_id, day, reported_at, report_id, "
            "latitude, longitude, citizen_names, citizen_scores, words) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._sighting: PreparedStatement = session.prepare(
            f"INSERT INTO {ks}.sightings_by_citizen (citizen, day, reported_at, report_id, "
            "drone_id, latitude, longitude, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "USING TIMESTAMP ?"
        )

    def write(self, reports: Sequence[Report]) -> WriteOutcome:
        """Write ``reports`` concurrently; returns which ones failed (none raised).

        A report counts as written only when its row and all its sightings are.
        """
        if not reports:
            return WriteOutcome(0, [])
        statements: list[tuple[PreparedStatement, tuple[object, ...]]] = []
        owners: list[int] = []
        for index, report in enumerate(reports):
            ts = report.timestamp.astimezone(UTC)
            day, micros = ts.date(), (ts - _EPOCH) // _MICROSECOND
            statements.append(
                (
                    self._report,
                    (
                        report.drone_id,
                        day,
                        ts,
                        report.report_id,
                        report.latitude,
                        report.longitude,
                        [c.name for c in report.citizens],
                        [c.score for c in report.citizens],
                        report.words,
                        micros,
                    ),
                )
            )
            owners.append(index)
            for citizen in report.citizens:
                statements.append(
                    (
                        self._sighting,
                        (
                            citizen.name,
                            day,
                            ts,
                            report.report_id,
                            report.drone_id,
                            report.latitude,
                            report.longitude,
                            citizen.score,
                            micros,
                        ),
                    )
                )
                owners.append(index)
        results = execute_concurrent(
            self._session, statements, concurrency=self._concurrency, raise_on_first_error=False
        )
        failures: dict[int, Exception] = {}
        for owner, (ok, result) in zip(owners, results, strict=True):
            if not ok:
                failures.setdefault(owner, result)
        failed = [(reports[i], exc) for i, exc in sorted(failures.items())]
        return WriteOutcome(len(reports) - len(failed), failed)
