"""A force's lake kept lean: one file per settled hour, nothing kept past its retention.

The lake consumer writes a file per Kafka partition and table at every flush (every minute
or so): a week of a small force is thousands of files of a few hundred rows, each with its
own footer and dictionaries, bigger and slower to read than one file per hour. Compaction
rewrites a settled hour's files of a table as one (``c-<token>.parquet``), sorted by drone
and time, a report the drone sent twice kept once (the first written), every alert event
and transition kept once.

Readers and crashes never see a row twice or miss one:

1. a journal (``<force>/_lake/compaction/<table>-<hour>-<token>.json``) names the files
   compacted (the sources) and the file replacing them (the target) before anything else;
2. the target is written under a temporary name, then renamed into place: from then on,
   readers (``live_files``, which every engine session's file list comes from) take the
   target and leave the sources the journal names;
3. the journal is stamped; the sources stay ``linger`` longer for the queries under way
   that listed them before (a query reads its files as it goes), then are deleted, and the
   journal last.

A crash before 2 leaves the sources as they were: the next runs drop the target-less
journal once ``linger`` has passed. A crash after 2 is finished by the next run from the
journal. An hour is compacted once it ended ``settle`` ago and none of its files was written
in the last ``settle`` (a late report's file is merged by a later run), when no file of it
is in a flush under way (its writer's state lists it) and no journal of it is pending.

One compactor per force: the holder of the reports stream's partition 0 (one lake consumer,
whatever the replicas), fenced like a writer (``LakeWriter.fence``) before each step.
Compaction reads its sources with DuckDB, which spills to disk past its memory limit, so
the lake must be on this machine's disks (as querying it must, today).

Retention: the files of an hour that ended more than ``retention`` ago are deleted, as the
force's ``retentionDays`` promises for its reports, sightings and alerts. A query under way
over those hours may then fail: nothing older is meant to be read.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import posixpath
import shutil
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from peaceland.analytics.isolated import Budget, IsolatedFailureError, run_isolated
from peaceland.analytics.lake import (
    SCHEMAS,
    TABLES,
    ArrowStorage,
    Listed,
    LocalStorage,
    Storage,
    Table,
    hour_of,
    table_dir,
    unfinished_flushes,
)
from peaceland.analytics.mirror import lake_file, own_folder
from peaceland.analytics.rollups import (
    COMPACTED,
    KINDS,
    Reading,
    alert_hours,
    by_hour,
    expected_keys,
    reading,
    roll_up_hour,
    rollup_dir,
    sort_rollups,
    split_compacted,
)
from peaceland.tenants.forces import validate_force_id

log = logging.getLogger(__name__)

_HOUR = timedelta(hours=1)
#: What a failure is kept by: a table's name and its hour, or a rollup's key and its hour.
_Failed = TypeVar("_Failed", tuple[Table, datetime], tuple[str, datetime])
_ROW_GROUP: Final = 262_144

#: How each table's rows are kept once and ordered, over ``sources`` (its files, read with
#: their file names and row numbers). Sorted by drone and time, a drone's successive
#: positions and times sit side by side and compress better.
_REWRITES: Final[Mapping[Table, str]] = {
    "reports": """
        SELECT * EXCLUDE (filename, file_row_number) FROM sources
        QUALIFY row_number() OVER (
            PARTITION BY report_id ORDER BY filename, file_row_number) = 1
        ORDER BY drone_id, "timestamp", report_id""",
    # A report's citizens are kept from the file its report row is kept from.
    "sightings": """
        SELECT s.* EXCLUDE (filename, file_row_number) FROM sources s
        JOIN (SELECT report_id, min(filename) AS filename FROM sources GROUP BY report_id)
            USING (report_id, filename)
        ORDER BY drone_id, "timestamp", report_id, file_row_number""",
    "alerts": """
        SELECT DISTINCT * EXCLUDE (filename, file_row_number) FROM sources
        ORDER BY raised_at, alert_id, event, reported_at, opened_at""",
    "lifecycle": """
        SELECT DISTINCT * EXCLUDE (filename, file_row_number) FROM sources
        ORDER BY "at", alert_id, seq""",
}


@dataclass(frozen=True, slots=True)
class Journal:
    """A compaction: the files it replaces, the file replacing them, when that file was
    published (None: not yet, or never) and when the files it replaced were deleted."""

    target: str
    sources: tuple[str, ...]
    compacted_at: float | None = None
    #: When the files it replaced were deleted (the journal goes ``linger`` later).
    released_at: float | None = None

    def encode(self) -> bytes:
        fields = {"target": self.target, "sources": list(self.sources)}
        times = {"compacted_at": self.compacted_at, "released_at": self.released_at}
        return json.dumps(fields | times).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Journal:
        fields = json.loads(raw)
        return cls(
            fields["target"],
            tuple(fields["sources"]),
            fields["compacted_at"],
            fields.get("released_at"),
        )


def _journal_dir(force_id: str) -> str:
    return f"{validate_force_id(force_id)}/_lake/compaction"


def journals(storage: Storage, force_id: str) -> dict[str, tuple[Journal, float]]:
    """The pending compactions of a force, by journal path, with when each was written."""
    found: dict[str, tuple[Journal, float]] = {}
    for listed in storage.list(_journal_dir(force_id)):
        raw = storage.get(listed.path)
        if raw is not None and listed.path.endswith(".json"):
            found[listed.path] = (Journal.decode(raw), listed.mtime)
    return found


def live_files(storage: Storage, force_id: str, table: Table) -> list[str]:
    """A table's files as a reader must take them (paths relative to the lake's root):
    every file of its hours, less those a published compaction replaced."""
    return live_tables(storage, force_id, (table,))[table]


def live_tables(
    storage: Storage, force_id: str, tables: Sequence[Table] = TABLES
) -> dict[Table, list[str]]:
    """``live_files`` of each of ``tables``, the journals read once. Listed before the
    journals are read: a journal is deleted only ``linger`` after its sources."""
    listed = {
        table: [
            f.path
            for f in storage.list(table_dir(force_id, table), times=False)
            if f.path.endswith(".parquet") and hour_of(f.path) is not None
        ]
        for table in tables
    }
    present = {path for paths in listed.values() for path in paths}
    replaced: set[str] = set()
    for journal, _ in journals(storage, force_id).values():
        if journal.target in present:
            replaced.update(journal.sources)
    return {table: [p for p in paths if p not in replaced] for table, paths in listed.items()}


def reading_of(storage: Storage, force_id: str) -> Reading:
    """What a session of the force's lake reads now (``rollups.reading``)."""
    return reading(storage, force_id, live_tables(storage, force_id))


@dataclass(frozen=True, slots=True)
class Compacted:
    """One hour of one table rewritten as one file."""

    table: Table
    hour: datetime
    sources: int
    rows: int
    bytes_before: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Maintenance:
    """What one run did: hours compacted, replaced files released (deleted after their
    linger), files deleted past the retention, hours whose compaction (or rollups) failed,
    hours rolled up."""

    compacted: tuple[Compacted, ...]
    released: int
    expired: int
    failed: tuple[tuple[Table, datetime], ...] = ()
    #: Hours of reports whose rollups (``rollups``) were made, and could not be.
    rolled_up: tuple[datetime, ...] = ()
    rollups_failed: tuple[datetime, ...] = ()


class CompactionFailedError(Exception):
    """An hour could not be rewritten (a file that is not Parquet, the engine out of
    memory or time): its files are left as they were."""


def rewrite_hour(
    table: Table, files: list[str], out: str, spill: str, memory_limit: str
) -> dict[str, int]:
    """The rows of ``files`` kept once and sorted (``_REWRITES``), as one Parquet file at
    ``out``; ``{"rows": how many}``. DuckDB spills what exceeds ``memory_limit`` to
    ``spill``; rows go to the file a row group at a time, as they come."""
    schema = SCHEMAS[table]
    connection = duckdb.connect(
        config={
            "threads": 1,
            "memory_limit": memory_limit,
            "temp_directory": spill,
            "preserve_insertion_order": False,
        }
    )
    try:
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        connection.execute(
            f"CREATE TEMPORARY VIEW sources AS SELECT * FROM read_parquet([{listed}], "
            "filename = true, file_row_number = true, hive_partitioning = false)"
        )
        batches: pa.RecordBatchReader = connection.sql(_REWRITES[table]).to_arrow_reader(65_536)
        rows = 0
        with pq.ParquetWriter(
            out,
            schema,
            compression="zstd",
            compression_level=6,
            dictionary_pagesize_limit=8 * 1024 * 1024,
        ) as writer:
            # Row groups of 256 Ki rows: each carries its own dictionaries (citizens' names,
            # words), so that smaller ones make the file larger (64 Ki rows: 15 % larger).
            pending: list[pa.RecordBatch] = []
            for batch in batches:
                pending.append(batch)
                rows += batch.num_rows
                if sum(b.num_rows for b in pending) >= _ROW_GROUP:
                    writer.write_table(pa.Table.from_batches(pending).cast(schema))
                    pending = []
            if pending:
                writer.write_table(pa.Table.from_batches(pending).cast(schema))
        return {"rows": rows}
    finally:
        connection.close()


Listing = dict[Table, list[Listed]]


def expire(
    storage: Storage,
    force_id: str,
    cutoff: datetime,
    fence: Callable[[], None],
    listing: Listing | None = None,
) -> int:
    """Delete the force's files of the hours that ended by ``cutoff`` (UTC, no zone): its
    tables' (``listing``, else listed now) and its rollups'. ``fence`` runs before each hour
    (raises once another holds the force's lake). Returns how many files went."""
    if listing is None:
        listing = {table: storage.list(table_dir(force_id, table)) for table in TABLES}
    expiring: dict[tuple[str, datetime], list[str]] = defaultdict(list)
    rollups = {kind: storage.list(rollup_dir(force_id, kind)) for kind in KINDS}
    for table, files in [*listing.items(), *rollups.items()]:
        for listed in files:
            hour = hour_of(listed.path)
            if hour is not None and hour + _HOUR <= cutoff:
                expiring[(table, hour)].append(listed.path)
    for paths in expiring.values():
        fence()
        for path in paths:
            storage.delete(path)
        if isinstance(storage, LocalStorage):
            storage.prune(paths[0], force_id)
    expired = sum(len(paths) for paths in expiring.values())
    if expired:
        log.info(
            "lake of %s: %d file(s) of %d hour(s) that ended by %s deleted (the force's retention)",
            force_id,
            expired,
            len(expiring),
            cutoff,
        )
    return expired


class _OnDisk:
    """A lake on this machine's disks: a rewrite reads its sources where they are, and
    writes beside its target, renamed into place."""

    def __init__(self, storage: LocalStorage, force_id: str) -> None:
        self.storage = storage
        self.force_id = force_id
        self.spill = Path(storage.locate(f"{force_id}/_lake/spill"))

    def begin(self) -> None:
        """What a rewrite killed half-way (its process, or ours) left to spill, and what a
        journal's write killed half-way left: one compactor per force, none under way."""
        shutil.rmtree(self.spill, ignore_errors=True)
        journal_dir = Path(self.storage.locate(_journal_dir(self.force_id)))
        for leftover in journal_dir.glob(".*.tmp") if journal_dir.is_dir() else ():
            leftover.unlink(missing_ok=True)
        # A rollup's temporaries left by a run killed while it made them: no listing sees
        # them (hidden), so neither the retention nor a stale rollup's deletion would.
        for kind in KINDS:
            for leftover in Path(self.storage.locate(rollup_dir(self.force_id, kind))).glob(
                "date=*/hour=*/.*.tmp"
            ):
                leftover.unlink(missing_ok=True)

    def finish(self) -> None:
        """Nothing to let go."""

    def lake_file(self, path: str) -> bool:  # noqa: ARG002 - this machine's own files
        return True

    def source(self, path: str) -> str:
        return self.storage.locate(path)

    def size(self, path: str) -> int:
        return Path(self.storage.locate(path)).stat().st_size

    def missing(self, files: list[str]) -> list[str]:
        return [f for f in files if not Path(self.storage.locate(f)).exists()]

    def temporary(self, target: str) -> Path:
        return self.storage.temporary(target)

    def publish(self, target: str, written: Path) -> None:
        self.storage.put_file(target, written)

    def release(self) -> None:
        """Nothing was copied."""

    def prune(self, path: str) -> None:
        self.storage.prune(path, self.force_id)


class _Staged:
    """A lake on an object store: a rewrite's sources are copied into a local folder first,
    its output written there and then uploaded whole (``ArrowStorage.upload``: a cut upload
    is removed, never left as the hour's file). An hour's copies go once it is done.

    Each run works in a folder of its own, ``work_dir/<force>/<run>``, locked (flock) while
    it runs: a run starting beside another (a compactor taken for dead that still runs)
    removes only the folders no live run holds, never the other's copies mid-rewrite.
    ``work_dir`` must be this user's, not a link (its copies are the force's sightings)."""

    def __init__(self, storage: ArrowStorage, force_id: str, work_dir: Path) -> None:
        self.storage = storage
        self.force_id = force_id
        self.work_dir = work_dir
        self.base = work_dir / force_id
        self.root = self.base / "none"
        self.spill = self.root / "spill"
        self._lock: int | None = None

    def begin(self) -> None:
        """This run's own folder, locked; the folders of runs that ended (killed) removed."""
        for folder in (self.work_dir, self.base):
            own_folder(folder, "the compaction's work folder")
        for run in self.base.iterdir():
            if run.is_symlink() or not run.is_dir():
                run.unlink(missing_ok=True)
                continue
            descriptor = os.open(run / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a run still under way: its copies are its own
            else:
                shutil.rmtree(run, ignore_errors=True)
            finally:
                os.close(descriptor)
        self.root = self.base / uuid.uuid4().hex[:12]
        self.root.mkdir(mode=0o700)
        self._lock = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.spill = self.root / "spill"

    def finish(self) -> None:
        """This run's folder gone, its lock let go."""
        shutil.rmtree(self.root, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def lake_file(self, path: str) -> bool:
        """Whether the store's ``path`` is laid out as the force's lake files are (a name
        that aliases another once resolved, a stray object, is none of the compactor's)."""
        return lake_file(self.force_id, path)

    def source(self, path: str) -> str:
        if not lake_file(self.force_id, path) or posixpath.normpath(path) != path:
            raise CompactionFailedError(f"not a lake file's name: {path!r}")
        local = self.root / "sources" / path
        self.storage.download(path, local)
        return str(local)

    def size(self, path: str) -> int:
        return (self.root / "sources" / path).stat().st_size

    def missing(self, files: list[str]) -> list[str]:
        folders = {f.rsplit("/", 1)[0] for f in files}
        listed = {f.path for folder in folders for f in self.storage.list(folder, times=False)}
        return [f for f in files if f not in listed]

    def temporary(self, target: str) -> Path:
        out = self.root / "out"
        out.mkdir(parents=True, exist_ok=True)
        return out / f"{uuid.uuid4().hex}-{target.rsplit('/', 1)[-1]}"

    def publish(self, target: str, written: Path) -> None:
        self.storage.upload(target, written)

    def release(self) -> None:
        shutil.rmtree(self.root / "sources", ignore_errors=True)

    def prune(self, path: str) -> None:
        """An object store has no empty folders to remove."""


@contextmanager
def _failing_alone(doing: str) -> Iterator[None]:
    """A storage's error (the store's, a full work folder) as one hour's failure, backed
    off like a rewrite's, never the whole run's."""
    try:
        yield
    except OSError as exc:
        raise CompactionFailedError(f"{doing}: {exc}") from exc


class Compactor:
    """Compacts and expires one force's lake; ``run`` it now and then (it starts no new
    hour once it has worked ``seconds``, so that a run stays short)."""

    def __init__(
        self,
        storage: LocalStorage | ArrowStorage,
        force_id: str,
        *,
        fence: Callable[[], None],
        work_dir: Path | None = None,
        settle: timedelta = timedelta(minutes=15),
        linger: timedelta = timedelta(minutes=15),
        retention: timedelta | None = None,
        memory_mb: int = 256,
        seconds: float = 60.0,
        isolated: bool = False,
        rewrite_seconds: float = 1_800.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``fence``: raises (LakeFencedError) when this compactor is no longer the force's
        one. ``isolated``: each hour is rewritten in a process of its own, held to
        ``memory_mb`` (plus the interpreter's) and ``rewrite_seconds``
        (``peaceland.analytics.isolated``): an hour too large fails alone, never takes its
        caller down. ``work_dir``: for a lake on an object store, the local folder where an
        hour's files are copied to be rewritten (one hour's at a time)."""
        self.storage = storage
        self.force_id = validate_force_id(force_id)
        self.workspace: _OnDisk | _Staged
        if isinstance(storage, LocalStorage):
            self.workspace = _OnDisk(storage, self.force_id)
        elif work_dir is None:
            raise ValueError("a lake on an object store is compacted in a work_dir: give one")
        else:
            self.workspace = _Staged(storage, self.force_id, work_dir)
        self.fence = fence
        self.settle = settle
        self.linger = linger
        self.retention = retention
        self.memory_mb = memory_mb
        self.seconds = seconds
        self.isolated = isolated
        self.rewrite_seconds = rewrite_seconds
        self.clock = clock
        #: Hours whose compaction failed: how many times, and when to try again.
        self._failures: dict[tuple[Table, datetime], tuple[int, float]] = {}
        #: Rollups that could not be made, by their key (what they are made from) and
        #: hour: how many times, and when to try again.
        self._rollup_failures: dict[tuple[str, datetime], tuple[int, float]] = {}
        #: Rollups found stale (``rollups``), and since when: deleted a linger later.
        self._stale: dict[str, float] = {}
        self._fence = fence

    def run(self, fence: Callable[[], None] | None = None) -> Maintenance:
        """One turn; ``fence``: this turn's (bound to the hold it started under), else the
        compactor's own."""
        self._fence = fence or self.fence
        # The journals and the retention first: they need no work folder, and a force's
        # retention is kept whatever becomes of one.
        listing = self._list()
        released = self._finish_journals(listing)
        expired = self._expire(listing)
        if released or expired:
            listing = self._list()
        try:
            self.workspace.begin()
        except OSError as exc:
            log.warning("lake of %s: not compacting, its work folder: %s", self.force_id, exc)
            return Maintenance((), released, expired)
        try:
            return self._compact_and_roll_up(listing, released, expired)
        finally:
            self.workspace.finish()

    def _compact_and_roll_up(self, listing: Listing, released: int, expired: int) -> Maintenance:
        started = self.clock()
        compacted: list[Compacted] = []
        failed: list[tuple[Table, datetime]] = []
        for table, hour, files in self._due(listing):
            try:
                compacted.append(self._compact(table, hour, files))
                self._failures.pop((table, hour), None)
            except CompactionFailedError as exc:
                failed.append((table, hour))
                self._failed(self._failures, (table, hour), f"{table} of", "compacted", exc)
            if self.clock() - started >= self.seconds:
                break
        rolled_up: list[datetime] = []
        rollups_failed: list[datetime] = []
        if self.clock() - started < self.seconds:
            rolled_up = self._roll_up(started, rollups_failed)
        return Maintenance(
            tuple(compacted),
            released,
            expired,
            tuple(failed),
            tuple(rolled_up),
            tuple(rollups_failed),
        )

    def _list(self) -> Listing:
        return {
            table: [
                f
                for f in self.storage.list(table_dir(self.force_id, table))
                if self.workspace.lake_file(f.path)
            ]
            for table in TABLES
        }

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC).replace(tzinfo=None)

    def _finish_journals(self, listing: Listing) -> int:
        """Move every pending compaction on: stamp a published one; ``linger`` later,
        delete the files it replaced and stamp it released; ``linger`` after that, delete
        it (a reader that listed those files before they went has long read the journal
        saying to leave them). Drop an unpublished one (interrupted) after ``linger``."""
        present = {f.path for files in listing.values() for f in files}
        released = 0
        now = self.clock()
        linger = self.linger.total_seconds()
        for path, (journal, written) in journals(self.storage, self.force_id).items():
            if journal.released_at is not None:
                if now - journal.released_at >= linger:
                    self._fence()
                    self.storage.delete(path)
            elif journal.target in present:
                if journal.compacted_at is None:
                    self._fence()
                    self.storage.put(path, replace(journal, compacted_at=now).encode())
                elif now - journal.compacted_at >= linger:
                    self._fence()
                    for source in journal.sources:
                        self.storage.delete(source)
                    self.storage.put(path, replace(journal, released_at=now).encode())
                    released += len(journal.sources)
            elif now - written >= max(linger, self.rewrite_seconds + 60):
                # Interrupted before its target was published: the sources stand as they
                # were. Waiting out the longest a rewrite may take leaves a compactor still
                # rewriting (one whose hold was taken since) time to find itself fenced.
                log.warning(
                    "lake of %s: an interrupted compaction of %d file(s) left %s; dropping it",
                    self.force_id,
                    len(journal.sources),
                    path,
                )
                self._fence()
                self.storage.delete(journal.target)  # and any temporary of it
                self.storage.delete(path)
        return released

    def _expire(self, listing: Listing) -> int:
        """Delete the files of the hours past the retention (fenced hour by hour)."""
        if self.retention is None:
            return 0
        return expire(
            self.storage, self.force_id, self._now() - self.retention, self._fence, listing
        )

    def _due(self, listing: Listing) -> list[tuple[Table, datetime, list[str]]]:
        """The settled hours worth compacting, oldest first, each with its files."""
        now = self._now()
        settle = self.settle.total_seconds()
        hours: dict[tuple[Table, datetime], list[str]] = defaultdict(list)
        unsettled: set[tuple[Table, datetime]] = set()
        for table, table_files in listing.items():
            for listed in table_files:
                hour = hour_of(listed.path)
                if hour is None or not listed.path.endswith(".parquet"):
                    continue
                hours[(table, hour)].append(listed.path)
                if hour + _HOUR + self.settle > now or self.clock() - listed.mtime < settle:
                    unsettled.add((table, hour))
        # Read after the listing: a file listed above that a flush under way still owns is
        # named here (a flush names its files before writing them).
        busy = unfinished_flushes(self.storage, self.force_id)
        for journal, _ in journals(self.storage, self.force_id).values():
            busy.update(journal.sources)
            busy.add(journal.target)
        for gone in set(self._failures) - set(hours):  # expired, or compacted since
            del self._failures[gone]
        due = []
        for (table, hour), files in sorted(hours.items(), key=lambda item: item[0][1]):
            if (table, hour) in unsettled or busy.intersection(files):
                continue
            failures = self._failures.get((table, hour))
            if failures is not None and self.clock() < failures[1]:
                continue
            if len(files) > 1 or not files[0].rsplit("/", 1)[-1].startswith(COMPACTED):
                due.append((table, hour, files))
        return due

    def _roll_up(self, started: float, failed: list[datetime]) -> list[datetime]:
        """Make the rollups of the compacted hours of reports that have none that holds,
        once the alert events of their ``alert_hours`` are settled and compacted (their
        files' names, part of a rollup's key, will not change); then delete the rollups
        found stale a linger ago."""
        live = live_tables(self.storage, self.force_id, ("reports", "alerts"))
        compacted, _ = split_compacted(live["reports"])
        alerts = by_hour(live["alerts"])
        keys = expected_keys(compacted, alerts)
        holding, stale = sort_rollups(self.storage, self.force_id, keys)
        current = {(key, hour) for hour, (_, key) in keys.items()}
        for gone in set(self._rollup_failures) - current:
            del self._rollup_failures[gone]  # its hour expired, or its files changed
        now = self._now()
        made: list[datetime] = []
        for hour, (reports_file, key) in sorted(keys.items()):
            hours = alert_hours(hour)
            if hour in holding or hours[-1] + _HOUR + self.settle > now:
                continue
            seen = [path for h in hours for path in alerts.get(h, [])]
            if any(
                len(alerts[h]) > 1 or not alerts[h][0].rsplit("/", 1)[1].startswith(COMPACTED)
                for h in hours
                if h in alerts
            ):
                continue  # its alert events will be compacted: their names will change
            # Keyed by what the rollup is made from: new files (a cause mended) try at once.
            failures = self._rollup_failures.get((key, hour))
            if failures is not None and self.clock() < failures[1]:
                continue
            try:
                self._roll_up_hour(hour, reports_file, seen, key)
                self._rollup_failures.pop((key, hour), None)
                made.append(hour)
            except CompactionFailedError as exc:
                failed.append(hour)
                self._failed(self._rollup_failures, (key, hour), "reports of", "rolled up", exc)
            if self.clock() - started >= self.seconds:
                break
        self._drop_stale_rollups(stale)
        return made

    def _roll_up_hour(self, hour: datetime, reports_file: str, alerts: list[str], key: str) -> None:
        self._fence()
        targets = {
            kind: f"{rollup_dir(self.force_id, kind)}/{hour:date=%Y-%m-%d/hour=%H}/{key}.parquet"
            for kind in KINDS
        }
        temporaries = {kind: self.workspace.temporary(target) for kind, target in targets.items()}
        spill = self.workspace.spill / key
        spill.mkdir(parents=True, exist_ok=True)
        try:
            with _failing_alone(f"copying the reports of {hour:%Y-%m-%d %H}h"):
                reports_copy = self.workspace.source(reports_file)
                alerts_copies = [self.workspace.source(f) for f in alerts]
            args = (
                reports_copy,
                alerts_copies,
                hour,
                {kind: str(path) for kind, path in temporaries.items()},
                f"{self.memory_mb}MB",
                str(spill),
            )
            rows = self._run(roll_up_hour, args)
            self._fence()
            with _failing_alone(f"publishing the rollups of {hour:%Y-%m-%d %H}h"):
                for kind, target in targets.items():
                    self.workspace.publish(target, temporaries[kind])
        finally:
            for temporary in temporaries.values():
                temporary.unlink(missing_ok=True)
            shutil.rmtree(spill, ignore_errors=True)
            self.workspace.release()
        log.info(
            "lake of %s: reports of %s rolled up: %s",
            self.force_id,
            f"{hour:%Y-%m-%d %H}h",
            ", ".join(f"{rows[kind]} {kind} rows" for kind in KINDS),
        )

    def _drop_stale_rollups(self, stale: list[str]) -> None:
        """A rollup whose name is no longer its hour's key (a late alert file, the hour
        compacted again, its reports gone: ``sort_rollups``) is deleted a linger after it
        was first found so: a query that took it while it held may still be reading it."""
        now = self.clock()
        self._stale = {path: self._stale.get(path, now) for path in stale}
        for path, since in list(self._stale.items()):
            if now - since >= self.linger.total_seconds():
                self._fence()
                self.storage.delete(path)
                self.workspace.prune(path)
                del self._stale[path]

    def _failed(
        self,
        failures: dict[_Failed, tuple[int, float]],
        key: _Failed,
        what: str,
        doing: str,
        error: Exception,
    ) -> None:
        """Try a failed hour (``key``'s, in ``failures``) again later and later (it is read
        whole each time): after a linger, then twice that, up to a day."""
        count = failures.get(key, (0, 0.0))[0] + 1
        wait = min(self.linger.total_seconds() * 2 ** (count - 1), 86_400.0)
        failures[key] = (count, self.clock() + wait)
        log.warning(
            "lake of %s: %s %s could not be %s (failure %d; its files stay as they "
            "are, tried again in %.0f s): %s",
            self.force_id,
            what,
            f"{key[1]:%Y-%m-%d %H}h",
            doing,
            count,
            wait,
            error,
        )

    def _compact(self, table: Table, hour: datetime, files: list[str]) -> Compacted:
        self._fence()
        token = uuid.uuid4().hex[:12]
        target = f"{files[0].rsplit('/', 1)[0]}/{COMPACTED}{token}.parquet"
        journal_path = f"{_journal_dir(self.force_id)}/{table}-{hour:%Y%m%d%H}-{token}.json"
        journal = Journal(target, tuple(files))
        self.storage.put(journal_path, journal.encode())
        temporary = self.workspace.temporary(target)
        spill = self.workspace.spill / token
        spill.mkdir(parents=True, exist_ok=True)
        try:
            with _failing_alone(f"copying {table} of {hour:%Y-%m-%d %H}h"):
                sources = [self.workspace.source(f) for f in files]
            rows = self._rewrite(table, sources, temporary, spill)
            before = sum(self.workspace.size(f) for f in files)
            after = temporary.stat().st_size
            self._fence()
            self._still_due(journal_path, files)
            with _failing_alone(f"publishing {table} of {hour:%Y-%m-%d %H}h"):
                self.workspace.publish(target, temporary)
        finally:
            temporary.unlink(missing_ok=True)
            shutil.rmtree(spill, ignore_errors=True)
            self.workspace.release()
        self.storage.put(journal_path, replace(journal, compacted_at=self.clock()).encode())
        result = Compacted(table, hour, len(files), rows, before, after)
        log.info(
            "lake of %s: %s of %s compacted: %d file(s), %d bytes -> 1 file, %d rows, %d bytes",
            self.force_id,
            table,
            f"{hour:%Y-%m-%d %H}h",
            result.sources,
            result.bytes_before,
            result.rows,
            result.bytes,
        )
        return result

    def _still_due(self, ours: str, files: list[str]) -> None:
        """CompactionFailedError unless every file we rewrote is still there and no other
        compaction names one (another compactor, from an earlier hold, went on with it)."""
        missing = self.workspace.missing(files)
        hour = files[0].rsplit("/", 1)[0]
        others = [
            path
            for path, (journal, _) in journals(self.storage, self.force_id).items()
            if path != ours
            and (set(journal.sources) & set(files) or journal.target.startswith(f"{hour}/"))
        ]
        if missing or others:
            raise CompactionFailedError(
                f"the hour changed while it was rewritten ({len(missing)} file(s) gone, "
                f"{len(others)} other compaction(s) of it): not published"
            )

    def _rewrite(self, table: Table, files: list[str], out: Path, spill: Path) -> int:
        args = (table, files, str(out), str(spill), f"{self.memory_mb}MB")
        return int(self._run(rewrite_hour, args)["rows"])

    def _run(self, job: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> dict[str, Any]:
        """``job(*args)``: in a process of its own held to the budget when ``isolated``;
        its failure (the engine's, the disk's, the budget's) as CompactionFailedError."""
        try:
            if self.isolated:
                budget = Budget(self.rewrite_seconds, self.memory_mb * 1024 * 1024)
                return run_isolated(job, args, budget)
            return job(*args)
        except (IsolatedFailureError, duckdb.Error, OSError, pa.ArrowException) as exc:
            raise CompactionFailedError(str(exc)) from exc
