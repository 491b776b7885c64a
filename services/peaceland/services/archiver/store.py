"""Writing reports to a force's keyspace: prepared, concurrent, idempotent, first copy kept.

Each report becomes a handful of upserts: its row in ``reports_by_drone_day``, its id and
content digest in ``report_ids``, and one row per citizen in ``sightings_by_citizen``. They
travel as unlogged batches cut to a size Cassandra takes: a multi-partition batch over
``batch_size_fail_threshold`` (50 KiB by default) is refused whole, and the largest valid
report holds over a megabyte. A statement too large for any batch goes alone: one partition,
which Cassandra bounds only by its mutation size (half a commit-log segment, 16 MiB by
default, far above the largest valid report).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Final, Literal, TypeAlias

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType, BoundStatement, PreparedStatement

from peaceland.tenants.cassandra import is_transient, write_time
from peaceland.tenants.forces import sighting_bucket
from peaceland.tenants.provisioning.keyspace import checked_keyspace
from peaceland.tenants.reports import Report, encode_report

log = logging.getLogger(__name__)

#: Ids looked up per request when checking which reports are already stored.
_LOOKUP_CHUNK: Final = 100
#: What a statement costs in a batch beyond its values (keys, cell headers), in bytes: a
#: generous guess, so that the estimate stays above what Cassandra counts.
_STATEMENT_OVERHEAD: Final = 96
_CELL_OVERHEAD: Final = 16


Refusal = Literal["conflict", "refused"]
Request: TypeAlias = "BatchStatement | BoundStatement"


def content_digest(report: Report) -> bytes:
    """What identifies a report's content: two copies with the same digest are one report."""
    return hashlib.blake2b(encode_report(report), digest_size=8).digest()


@dataclass(slots=True)
class WriteOutcome:
    """What became of each report of a ``write``, by its index in the list written."""

    written: int = 0
    #: Reports no retry can store, with the kind (``conflict``: the id is stored with other
    #: content; ``refused``: Cassandra refused the report itself) and the reason.
    refused: list[tuple[int, Refusal, str]] = field(default_factory=list)
    #: Reports to write again later (Cassandra away, slow, overloaded), with the error.
    failed: list[tuple[int, Exception]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Statement:
    prepared: PreparedStatement
    values: tuple[Any, ...]
    size: int


class ReportStore:
    """The report tables of one keyspace: reports by drone and day, sightings by citizen,
    and the first content of each report id.

    Every statement is an upsert keyed by the report id and written ``USING TIMESTAMP`` of
    the report's own time, so a replayed write is the very same cell version and the outcome
    never depends on which copy arrived last. Rows expire with the table's TTL (retention).
    """

    def __init__(
        self,
        session: Session,
        keyspace: str,
        concurrency: int = 64,
        *,
        batch_max_bytes: int = 32 * 1024,
        batch_max_statements: int = 16,
    ) -> None:
        self._session = session
        self._concurrency = concurrency
        #: Called after each chunk of requests (the archiver ticks its watchdog).
        self.progress: Callable[[], None] = lambda: None
        self._batch_max_bytes = batch_max_bytes
        self._batch_max_statements = batch_max_statements
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
        self._first: PreparedStatement = session.prepare(
            f"INSERT INTO {ks}.report_ids (report_id, digest) VALUES (?, ?) USING TIMESTAMP ?"
        )
        self._lookup: PreparedStatement = session.prepare(
            f"SELECT report_id, digest FROM {ks}.report_ids WHERE report_id IN ?"
        )

    def write(self, reports: Sequence[Report]) -> WriteOutcome:
        """Write ``reports`` concurrently; says what became of each (never raises for a
        report: a transient failure of the lookup fails them all, to be written again).

        A report whose id is already stored with other content (or comes earlier in
        ``reports`` with other content) is refused: the first copy is kept whole.
        """
        outcome = WriteOutcome()
        if not reports:
            return outcome
        try:
            first = self._stored_firsts([r.report_id for r in reports])
        except Exception as exc:
            if not is_transient(exc):
                raise
            outcome.failed = [(i, exc) for i in range(len(reports))]
            return outcome
        plans = self._plan(reports, first, outcome)
        # Round one: the request that holds each report's row. Round two: the rest of the
        # reports whose row is stored. A refused row so leaves nothing behind: Cassandra
        # validates a batch whole before applying any of it.
        heads = self._execute({i: plan[:1] for i, plan in plans.items()})
        tails = self._execute({i: plans[i][1:] for i, error in heads.items() if error is None})
        for index in plans:
            error = heads[index] or tails.get(index)
            if error is None:
                outcome.written += 1
            elif is_transient(error):
                outcome.failed.append((index, error))
            else:
                log.error("Cassandra refused report %s: %s", reports[index].report_id, error)
                stored = " (its row is stored)" if heads[index] is None else ""
                outcome.refused.append(
                    (index, "refused", f"Cassandra refused to store it{stored}: {error}")
                )
        return outcome

    def _execute(self, requests: dict[int, list[Request]]) -> dict[int, Exception | None]:
        """Send every report's requests concurrently; the first error of each report.

        In chunks of a few waves of ``concurrency`` requests, telling ``progress`` after
        each: a batch of large reports is thousands of requests, and while Cassandra times
        them out the caller must still show it is alive (its watchdog)."""
        flat = [(index, request) for index, mine in requests.items() for request in mine]
        errors: dict[int, Exception | None] = dict.fromkeys(requests)
        chunk = self._concurrency * 4
        for start in range(0, len(flat), chunk):
            part = flat[start : start + chunk]
            results = execute_concurrent(
                self._session,
                [(request, ()) for _, request in part],
                concurrency=self._concurrency,
                raise_on_first_error=False,
            )
            for (index, _), (ok, result) in zip(part, results, strict=True):
                if not ok and errors[index] is None:
                    errors[index] = result
            self.progress()
        return errors

    def _plan(
        self, reports: Sequence[Report], first: dict[Any, bytes], outcome: WriteOutcome
    ) -> dict[int, list[Request]]:
        """The requests that store each report, by its index, the one holding its row
        first; a report whose id is known (``first``) with other content is refused."""
        plans: dict[int, list[Request]] = {}
        for index, report in enumerate(reports):
            digest = content_digest(report)
            known = first.get(report.report_id)
            if known is not None and known != digest:
                outcome.refused.append((index, "conflict", _conflict(report, known)))
                continue
            first[report.report_id] = digest
            plans[index] = self._requests(report, digest)
        return plans

    def _stored_firsts(self, ids: list[Any]) -> dict[Any, bytes]:
        """The digest of the first content stored under each of ``ids`` that has one."""
        unique = list(dict.fromkeys(ids))
        chunks = [unique[i : i + _LOOKUP_CHUNK] for i in range(0, len(unique), _LOOKUP_CHUNK)]
        results = execute_concurrent(
            self._session,
            [(self._lookup, (chunk,)) for chunk in chunks],
            concurrency=self._concurrency,
            raise_on_first_error=True,
        )
        return {row.report_id: row.digest for _, rows in results for row in rows}

    def _statements(self, report: Report, digest: bytes) -> list[_Statement]:
        ts = report.timestamp.astimezone(UTC)
        day, micros = ts.date(), write_time(ts)
        names = [c.name for c in report.citizens]
        row = _Statement(
            self._report,
            (
                report.drone_id,
                day,
                ts,
                report.report_id,
                report.latitude,
                report.longitude,
                names,
                [c.score for c in report.citizens],
                report.words,
                micros,
            ),
            _STATEMENT_OVERHEAD
            + len(report.drone_id)
            + sum(len(n.encode()) + 8 + 2 * _CELL_OVERHEAD for n in names)
            + sum(len(w.encode()) + _CELL_OVERHEAD for w in report.words),
        )
        first = _Statement(
            self._first, (report.report_id, digest, micros), _STATEMENT_OVERHEAD + len(digest)
        )
        sightings = [
            _Statement(
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
                _STATEMENT_OVERHEAD + 2 * len(citizen.name.encode()) + len(report.drone_id),
            )
            for citizen in report.sightings()
        ]
        return [row, first, *sightings]

    def _requests(self, report: Report, digest: bytes) -> list[Request]:
        """The report's statements as few requests as Cassandra takes, the one holding its
        row first: unlogged batches of at most ``batch_max_bytes`` and
        ``batch_max_statements``, and any statement larger than a batch on its own.
        Unlogged, because every statement is an idempotent upsert: a half-applied batch is
        simply written again whole."""
        requests: list[Request] = []
        batch: BatchStatement | None = None
        size = count = 0
        for statement in self._statements(report, digest):
            if statement.size > self._batch_max_bytes:
                requests.append(statement.prepared.bind(statement.values))
                continue
            if (
                batch is None
                or size + statement.size > self._batch_max_bytes
                or count >= self._batch_max_statements
            ):
                batch = BatchStatement(BatchType.UNLOGGED)
                requests.append(batch)
                size = count = 0
            batch.add(statement.prepared, statement.values)
            size += statement.size
            count += 1
        return requests


def _conflict(report: Report, first: bytes) -> str:
    return (
        f"report {report.report_id} was first accepted with other content (digest "
        f"{first.hex()}); this copy (digest {content_digest(report).hex()}) differs and is "
        "not stored: a report id names one report"
    )
