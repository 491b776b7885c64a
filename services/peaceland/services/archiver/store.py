"""Writing reports to a force's keyspace: prepared, concurrent, idempotent."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from peaceland.tenants.cassandra import write_time
from peaceland.tenants.forces import sighting_bucket
from peaceland.tenants.provisioning.keyspace import checked_keyspace
from peaceland.tenants.reports import Report

log = logging.getLogger(__name__)


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
            f"INSERT INTO {ks}.sightings_by_citizen (day, bucket, citizen, reported_at, "
            "drone_id, score) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )

    def write(self, reports: Sequence[Report]) -> WriteOutcome:
        """Write ``reports`` concurrently; returns which ones failed (none raised).

        Each report's row and its sightings go as one unlogged batch: one request instead of
        one per face, which is what the Python driver's CPU cost is counted in. Unlogged,
        because every statement is an idempotent upsert: a half-applied batch is simply
        written again whole.
        """
        if not reports:
            return WriteOutcome(0, [])
        results = execute_concurrent(
            self._session,
            [(self._batch(report), ()) for report in reports],
            concurrency=self._concurrency,
            raise_on_first_error=False,
        )
        failed = [
            (report, result)
            for report, (ok, result) in zip(reports, results, strict=True)
            if not ok
        ]
        return WriteOutcome(len(reports) - len(failed), failed)

    def _batch(self, report: Report) -> BatchStatement:
        ts = report.timestamp.astimezone(UTC)
        day, micros = ts.date(), write_time(ts)
        batch = BatchStatement(BatchType.UNLOGGED)
        batch.add(
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
        for citizen in report.citizens:
            batch.add(
                self._sighting,
                (
                    day,
                    sighting_bucket(citizen.name),
                    citizen.name,
                    ts,
                    report.drone_id,
                    citizen.score,
                    micros,
                ),
            )
        return batch
