"""The lake: where a force's records live as Parquet, and how they get there exactly once.

Layout, under the lake's root (a local directory, or any filesystem pyarrow opens)::

    <force>/<table>/date=<YYYY-MM-DD>/hour=<HH>/p<partition>-<first>-<last>.parquet
    <force>/_lake/<stream>/p<partition>.json

One directory per force (what an engine session of that force may see, and nothing else),
one per table, Hive partitions by the UTC date and hour of each row's own time (a report's
timestamp, an alert's raising, a transition's time), so that a question over a day reads
that day's files only. Four tables, filled from three streams (a force's Kafka topics):

- ``reports`` (stream ``reports``): one row per report, its words as a list, how many
  citizens it saw and the lowest score among them (the citizens themselves are in
  ``sightings``: stored once, the lake is a quarter smaller);
- ``sightings`` (stream ``reports``): one row per citizen of a report, flattened with the
  drone, time and position, so that score and zone questions read three plain columns
  instead of unnesting every report;
- ``alerts`` (stream ``alerts``): every alert event (``raised``, then ``updated``);
- ``lifecycle`` (stream ``lifecycle``): every transition officers made (acknowledge, assign,
  resolve, note), from which reaction times are measured.

Exactly once per record, across crashes: a file is named after the Kafka partition and the
offset range it holds, and each (stream, partition) has a small state file saying the last
offset in the lake (``done``) and the files being written (``writing``). A flush writes the
state with its files listed first, then the files, then the state with ``done`` moved on and
nothing listed. Whoever takes the partition next (the same process after a restart, or
another after a rebalance) deletes the files of an unfinished flush and skips records up to
``done``: a replay rewrites, it never duplicates. Kafka offsets are committed only after the
state says ``done`` (Kafka's committed offset only says where to start reading again).
Every write is atomic (a temporary name renamed into place, on a local disk after fsync), so
no reader ever sees half a file.

A writer its consumer group took for dead while it still runs (a zombie) is fenced: each
``resume`` signs the state with a new token, and a writer checks the state is still signed
by it before a flush and before declaring it done; its files carry its token, so what it
removes when fenced is never another writer's. What is left: the moment between that last
check and the state's write (a read then a write: closing it takes a conditional write,
which a local disk and pyarrow's S3 do not offer).

A row that cannot be stored (a time outside the years 1 to 9999, a number beyond 64 bits)
raises ValueError when its rows are made (``*_rows``), so that the consumer skips that
record instead of failing every flush of its partition.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import io
import json
import logging
import os
import shutil
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from peaceland.tenants.alerts import Alert
from peaceland.tenants.forces import validate_force_id
from peaceland.tenants.lifecycle import Transition
from peaceland.tenants.reports import Report

log = logging.getLogger(__name__)

Stream = Literal["reports", "alerts", "lifecycle"]
Table = Literal["reports", "sightings", "alerts", "lifecycle"]

STREAMS: Final[tuple[Stream, ...]] = ("reports", "alerts", "lifecycle")
TABLES: Final[tuple[Table, ...]] = ("reports", "sightings", "alerts", "lifecycle")
#: The tables each stream fills.
STREAM_TABLES: Final[Mapping[Stream, tuple[Table, ...]]] = {
    "reports": ("reports", "sightings"),
    "alerts": ("alerts",),
    "lifecycle": ("lifecycle",),
}

#: Times are UTC, stored without a zone (TIMESTAMP, not TIMESTAMPTZ): every engine reads them
#: alike, and DuckDB needs no time zone extension (which it would download) to bucket them.
_TIME = pa.timestamp("ms")

#: Each table's columns. A row's own time is the column its date and hour come from
#: (``TIME_COLUMN``); ``date`` and ``hour`` are in the path, not in the files.
SCHEMAS: Final[Mapping[Table, pa.Schema]] = {
    "reports": pa.schema(
        [
            ("report_id", pa.string()),
            ("drone_id", pa.string()),
            ("timestamp", _TIME),
            ("latitude", pa.float64()),
            ("longitude", pa.float64()),
            ("words", pa.list_(pa.string())),
            ("citizen_count", pa.int16()),
            ("lowest_score", pa.float64()),
        ]
    ),
    "sightings": pa.schema(
        [
            ("report_id", pa.string()),
            ("drone_id", pa.string()),
            ("timestamp", _TIME),
            ("latitude", pa.float64()),
            ("longitude", pa.float64()),
            ("citizen", pa.string()),
            ("score", pa.float64()),
        ]
    ),
    "alerts": pa.schema(
        [
            ("event", pa.string()),
            ("alert_id", pa.string()),
            ("citizen", pa.string()),
            ("score", pa.float64()),
            ("drone_id", pa.string()),
            ("report_id", pa.string()),
            ("latitude", pa.float64()),
            ("longitude", pa.float64()),
            ("reported_at", _TIME),
            ("opened_at", _TIME),
            ("raised_at", _TIME),
        ]
    ),
    "lifecycle": pa.schema(
        [
            ("alert_id", pa.string()),
            ("seq", pa.int64()),
            ("action", pa.string()),
            ("state", pa.string()),
            ("actor", pa.string()),
            ("at", _TIME),
            ("raised_at", _TIME),
            ("assignee", pa.string()),
            ("note", pa.string()),
        ]
    ),
}
TIME_COLUMN: Final[Mapping[Table, str]] = {
    "reports": "timestamp",
    "sightings": "timestamp",
    "alerts": "raised_at",
    "lifecycle": "at",
}

Row = dict[str, Any]


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC without its zone, as the lake stores times; ValueError when UTC
    takes it out of the years 1 to 9999."""
    try:
        return moment.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ValueError(f"{moment.isoformat()} is out of range in UTC") from None


def report_rows(report: Report) -> dict[Table, list[Row]]:
    """A report's row in ``reports`` and its citizens' rows in ``sightings``."""
    common = {
        "report_id": str(report.report_id),
        "drone_id": report.drone_id,
        "timestamp": utc(report.timestamp),
        "latitude": report.latitude,
        "longitude": report.longitude,
    }
    return {
        "reports": [
            common
            | {
                "citizen_count": len(report.citizens),
                "words": list(report.words),
                "lowest_score": min((c.score for c in report.citizens), default=None),
            }
        ],
        "sightings": [common | {"citizen": c.name, "score": c.score} for c in report.citizens],
    }


def rows_of_reports(reports: Iterable[Report]) -> dict[Table, list[Row]]:
    """The rows of many reports, table by table (``report_rows`` of each)."""
    rows: dict[Table, list[Row]] = {"reports": [], "sightings": []}
    for report in reports:
        for table, table_rows in report_rows(report).items():
            rows[table].extend(table_rows)
    return rows


def once_per_report(rows: Mapping[Table, Iterable[Row]]) -> dict[Table, list[Row]]:
    """The rows of reports (``rows_of_reports``) with a report sent more than once (a
    drone's resend, read in the same flush: the gateway keys reports by drone) kept once:
    its first ``reports`` row, and as many of its first ``sightings`` rows as that row
    counts citizens. Compaction keeps a report once across files; this, within one."""
    if "reports" not in rows:
        return {table: list(table_rows) for table, table_rows in rows.items()}
    citizens_left: dict[str, int] = {}
    reports: list[Row] = []
    for row in rows["reports"]:
        if row["report_id"] not in citizens_left:
            citizens_left[row["report_id"]] = row["citizen_count"]
            reports.append(row)
    sightings: list[Row] = []
    for row in rows.get("sightings", ()):
        left = citizens_left.get(row["report_id"], 0)
        if left:
            sightings.append(row)
            citizens_left[row["report_id"]] = left - 1
    return {"reports": reports, "sightings": sightings}


def alert_rows(alert: Alert) -> dict[Table, list[Row]]:
    row = alert.model_dump(exclude={"version", "force_id"})
    row["alert_id"] = str(alert.alert_id)
    row["report_id"] = str(alert.report_id)
    for name in ("reported_at", "opened_at", "raised_at"):
        row[name] = utc(row[name])
    return {"alerts": [row]}


def transition_rows(transition: Transition) -> dict[Table, list[Row]]:
    if not 0 < transition.seq < 2**63:
        raise ValueError(f"transition number {transition.seq} does not fit 64 bits")
    row = transition.model_dump(exclude={"version", "force_id"})
    row["alert_id"] = str(transition.alert_id)
    row["at"] = utc(transition.at)
    row["raised_at"] = utc(transition.raised_at) if transition.raised_at else None
    return {"lifecycle": [row]}


@dataclass(frozen=True, slots=True)
class Listed:
    """A file of the lake: its path (relative to the root) and when it was last written
    (seconds since the epoch)."""

    path: str
    mtime: float
    #: Its size in bytes, where the listing says (an object store's); else -1.
    size: int = -1


class Storage(Protocol):
    """Where the lake's files are: atomic whole-file writes, reads, deletes, listings."""

    #: How an engine on this machine names ``path`` (DuckDB and Spark read from it).
    def locate(self, path: str) -> str: ...

    def put(self, path: str, data: bytes) -> None:
        """Write ``data`` at ``path`` atomically and durably: readers see all of it or none."""

    def get(self, path: str) -> bytes | None:
        """The bytes at ``path``, None if there is no such file."""

    def delete(self, path: str) -> None:
        """Remove ``path``; a missing file is fine."""

    def list(self, prefix: str, *, times: bool = True) -> list[Listed]:
        """Every file under the directory ``prefix`` (none if it does not exist), sorted by
        path; never a temporary of a write under way. ``times``: with when each was
        written (else 0: a reader needs none, and a year of files lists faster)."""

    def lock(self, path: str) -> AbstractContextManager[None]:
        """Held by one writer at a time, in any process sharing the storage, for the reads
        and writes of ``path`` that must not interleave with another's; a storage that
        offers none says so in its docs (an object store)."""


@dataclass(frozen=True, slots=True)
class LocalStorage:
    """A directory on this machine: writes go to a temporary name, are fsync'ed, then
    renamed into place (and the directory fsync'ed), so a crash leaves no half file and a
    machine's crash loses no file whose offsets were committed."""

    root: Path

    def locate(self, path: str) -> str:
        return str(self.root / path)

    def put(self, path: str, data: bytes) -> None:
        final = self.root / path
        for attempt in range(3):
            final.parent.mkdir(parents=True, exist_ok=True)
            self._forget_temporaries(final)
            temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
            try:
                out = temporary.open("wb")
            except FileNotFoundError:
                # Its directory, empty, was just pruned (retention): make it again.
                if attempt == 2:
                    raise
                continue
            break
        with out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, final)
        self._sync_directory(final.parent)

    def temporary(self, path: str) -> Path:
        """A temporary name beside ``path``, for a file written by other means (an engine)
        and then published by ``put_file``; a writer's leftover is removed with ``path``."""
        final = self.root / path
        final.parent.mkdir(parents=True, exist_ok=True)
        return final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")

    def put_file(self, path: str, written: Path) -> None:
        """Publish ``written`` (a ``temporary`` of ``path``) at ``path``, as ``put`` does."""
        final = self.root / path
        with written.open("rb+") as out:
            os.fsync(out.fileno())
        os.replace(written, final)
        self._sync_directory(final.parent)

    def get(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, path: str) -> None:
        final = self.root / path
        final.unlink(missing_ok=True)
        self._forget_temporaries(final)

    def list(self, prefix: str, *, times: bool = True) -> list[Listed]:
        top = self.root / prefix
        found: list[Listed] = []
        for folder, folders, names in os.walk(top):
            folders[:] = [f for f in folders if not f.startswith(".")]
            for name in names:
                if name.startswith("."):
                    continue
                try:
                    mtime = os.stat(os.path.join(folder, name)).st_mtime if times else 0.0
                except FileNotFoundError:  # deleted since the walk saw it
                    continue
                relative = os.path.relpath(os.path.join(folder, name), self.root)
                found.append(Listed(relative.replace(os.sep, "/"), mtime))
        return sorted(found, key=lambda f: f.path)

    @contextmanager
    def lock(self, path: str) -> Iterator[None]:
        """An exclusive ``flock`` of a hidden file beside ``path``: it excludes every other
        holder, thread or process, on this machine (and on NFS, which maps it to a lock
        of the server's)."""
        final = self.root / path
        final.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(final.with_name(f".{final.name}.lock"), os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # and the lock with it

    def prune(self, path: str, until: str) -> None:
        """Remove the empty directories from ``path``'s up to (not including) ``until``."""
        folder = (self.root / path).parent
        stop = self.root / until
        while folder != stop and stop in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): what is above is not empty either
                return
            folder = folder.parent

    @staticmethod
    def _sync_directory(folder: Path) -> None:
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @staticmethod
    def _forget_temporaries(final: Path) -> None:
        """Remove what a writer killed mid-write left of ``final`` (one writer per file at
        a time: its partition's owner)."""
        if final.parent.is_dir():
            for leftover in final.parent.glob(f".{final.name}.*.tmp"):
                leftover.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class ArrowStorage:
    """Any filesystem pyarrow opens (``s3://bucket/prefix`` …): an object store's PUT is
    atomic by nature, so a file is written whole in one stream, and a reader never sees
    half of one.

    No lock: an object store offers none through pyarrow (its conditional writes are not
    exposed), so ``lock`` holds nothing, and a zombie writer's fencing has the window its
    module's docs name between its last check and its state's write.
    """

    filesystem: pafs.FileSystem
    root: str
    uri: str

    def locate(self, path: str) -> str:
        parts = urlsplit(self.uri)
        return f"{parts.scheme}://{self.root}/{path}".rstrip("/")

    def put(self, path: str, data: bytes) -> None:
        with self._output(path) as out:
            out.write(data)

    def _output(self, path: str) -> Any:
        """A stream writing ``path`` whole; a filesystem with directories (not an object
        store) gets the missing ones made first."""
        try:
            return self.filesystem.open_output_stream(f"{self.root}/{path}")
        except FileNotFoundError:
            self.filesystem.create_dir(f"{self.root}/{path}".rsplit("/", 1)[0], recursive=True)
            return self.filesystem.open_output_stream(f"{self.root}/{path}")

    def get(self, path: str) -> bytes | None:
        try:
            with self.filesystem.open_input_stream(f"{self.root}/{path}") as source:
                return bytes(source.read())
        except FileNotFoundError:
            return None

    def download(self, path: str, to: Path) -> None:
        """Copy ``path`` into the local file ``to``, whole or not at all."""
        to.parent.mkdir(parents=True, exist_ok=True)
        partial = to.with_name(f".{to.name}.{uuid.uuid4().hex}.tmp")
        try:
            with (
                self.filesystem.open_input_stream(f"{self.root}/{path}") as source,
                partial.open("wb") as out,
            ):
                shutil.copyfileobj(source, out, 8 * 1024 * 1024)
            partial.replace(to)
        finally:
            partial.unlink(missing_ok=True)

    def upload(self, path: str, written: Path) -> None:
        """Publish the local file ``written`` at ``path``, whole, or raise with nothing
        there. pyarrow completes an upload when its stream closes, even on an error, with
        what it was given: a cut upload is deleted, and what the store then holds is
        checked against the file's size."""
        size = written.stat().st_size
        with written.open("rb") as source:  # opened first: a missing file uploads nothing
            try:
                with self._output(path) as out:
                    shutil.copyfileobj(source, out, 8 * 1024 * 1024)
            except BaseException:
                with contextlib.suppress(OSError):
                    self.delete(path)
                raise
        stored = self.filesystem.get_file_info(f"{self.root}/{path}").size
        if stored != size:
            self.delete(path)
            raise OSError(f"{path}: the store holds {stored} bytes of {size}: removed")

    def delete(self, path: str) -> None:
        try:
            self.filesystem.delete_file(f"{self.root}/{path}")
        except FileNotFoundError:
            return

    def lock(self, path: str) -> AbstractContextManager[None]:  # noqa: ARG002
        """None: an object store offers no lock (its conditional writes are not used yet)."""
        return nullcontext()

    def list(self, prefix: str, *, times: bool = True) -> list[Listed]:  # noqa: ARG002
        selector = pafs.FileSelector(f"{self.root}/{prefix}", recursive=True, allow_not_found=True)
        found = [
            Listed(
                info.path[len(self.root) + 1 :],
                info.mtime.timestamp() if info.mtime else 0.0,
                info.size if info.size is not None else -1,
            )
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File and not info.base_name.startswith(".")
        ]
        return sorted(found, key=lambda f: f.path)


def delete_force_lake(storage: Storage, force_id: str) -> int:
    """Every file of the force's lake gone, its folder with them (its PoliceForce deleted
    under the ``Delete`` policy); returns how many files the lake listed. A store that fails
    raises (OSError): the deletion is tried again, and finishes what it began."""
    folder = validate_force_id(force_id)
    listed = len(storage.list(folder, times=False))
    if isinstance(storage, LocalStorage):
        path = storage.root / folder
        if path.is_symlink():  # never followed: the link goes, not what it points at
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)  # temporaries and empty folders too
    elif isinstance(storage, ArrowStorage):
        with contextlib.suppress(FileNotFoundError):
            storage.filesystem.delete_dir(f"{storage.root}/{folder}")
    else:
        for file in storage.list(folder, times=False):
            storage.delete(file.path)
    return listed


#: What an ``s3://`` lake's URI may say besides its bucket and prefix when the keys are
#: given apart (``open_storage``'s ``s3_keys``).
_S3_OPTIONS: Final = ("endpoint_override", "scheme", "region")


def open_storage(uri: str, *, s3_keys: tuple[str, str] | None = None) -> Storage:
    """The lake at ``uri``: a local path (or ``file://``), or any scheme pyarrow knows.

    ``s3://bucket/prefix?endpoint_override=host:port&scheme=http`` signs in with the AWS
    SDK's usual sources (``AWS_ACCESS_KEY_ID`` …, a shared credentials file, a role), or
    with ``s3_keys`` (access key id, secret) when given.
    """
    parts = urlsplit(uri)
    if parts.username or parts.password:
        # A URI is logged and shown; keys are not (the AWS SDK's sources, or s3_keys).
        raise ValueError("the lake's URI may not hold keys: give them apart (docs/analytics.md)")
    if "=" in parts.path:
        # Engines read every key=value folder of a path as a partition column.
        raise ValueError(f"the lake's path may not hold '=' ({parts.path})")
    if parts.scheme in ("", "file"):
        return LocalStorage(Path(parts.path if parts.scheme else uri).expanduser().resolve())
    if s3_keys is not None:
        if parts.scheme != "s3":
            raise ValueError(f"keys are for an s3:// lake, not {parts.scheme}://")
        options = dict(parse_qsl(parts.query))
        unknown = sorted(set(options) - set(_S3_OPTIONS))
        if unknown:
            raise ValueError(
                f"the lake's URI may say {', '.join(_S3_OPTIONS)}, not {', '.join(unknown)}"
            )
        filesystem: pafs.FileSystem = pafs.S3FileSystem(
            access_key=s3_keys[0],
            secret_key=s3_keys[1],
            endpoint_override=options.get("endpoint_override"),
            scheme=options.get("scheme", "https"),
            region=options.get("region", "us-east-1"),
            # A store that does not answer fails a question, never holds it for ever.
            connect_timeout=5,
            request_timeout=60,
        )
        prefix = f"{parts.netloc}{parts.path}"
    else:
        filesystem, prefix = pafs.FileSystem.from_uri(uri)
    return ArrowStorage(filesystem, str(prefix).rstrip("/"), uri)


def table_dir(force_id: str, table: Table) -> str:
    """The directory of one force's table, relative to the lake's root."""
    return f"{validate_force_id(force_id)}/{table}"


def _state_path(force_id: str, stream: Stream, partition: int) -> str:
    return f"{validate_force_id(force_id)}/_lake/{stream}/p{partition}.json"


def _hour_dir(moment: datetime) -> str:
    """The partition of a row's time (UTC, without a zone as stored)."""
    return f"date={moment:%Y-%m-%d}/hour={moment:%H}"


def hour_of(path: str) -> datetime | None:
    """The hour (UTC, without a zone) a file's partition holds, None if ``path`` is not in
    an hour's directory."""
    parts = path.split("/")
    try:
        date = next(p[5:] for p in parts if p.startswith("date="))
        hour = next(p[5:] for p in parts if p.startswith("hour="))
    except StopIteration:
        return None
    return _parsed_hour(date, hour)


@functools.lru_cache(maxsize=65_536)
def _parsed_hour(date: str, hour: str) -> datetime | None:
    """``hour_of``'s parse, remembered: a session's listing names each hour once per table
    and rollup, and strptime was most of the time a reader took to plan its views."""
    try:
        return datetime.strptime(f"{date} {hour}", "%Y-%m-%d %H")
    except ValueError:
        return None


def encode_parquet(table: Table, rows: Sequence[Row]) -> bytes:
    """Rows of ``table`` as one Parquet file (zstd, dictionaries for repeated texts)."""
    arrow = pa.Table.from_pylist(list(rows), schema=SCHEMAS[table])
    sink = io.BytesIO()
    pq.write_table(arrow, sink, compression="zstd", compression_level=3)
    return sink.getvalue()


@dataclass(frozen=True, slots=True)
class Flushed:
    """What one flush put in the lake."""

    files: tuple[str, ...]
    rows: int
    bytes: int


@dataclass(slots=True)
class _State:
    done: int
    writing: list[str] = field(default_factory=list)
    #: The writer that took the partition over last (a token of its ``resume``).
    owner: str = ""

    def encode(self) -> bytes:
        return json.dumps(
            {"done": self.done, "writing": self.writing, "owner": self.owner}
        ).encode()


def unfinished_flushes(storage: Storage, force_id: str) -> set[str]:
    """The files of every flush of ``force_id`` under way or interrupted (its writer's state
    lists them until it is done): not the lake's yet, their writer may delete them."""
    unfinished: set[str] = set()
    for stream in STREAMS:
        for listed in storage.list(f"{validate_force_id(force_id)}/_lake/{stream}"):
            raw = storage.get(listed.path)
            if raw is not None and listed.path.endswith(".json"):
                unfinished.update(_State(**json.loads(raw)).writing)
    return unfinished


class LakeFencedError(Exception):
    """Another writer took the partition over since this one did: it writes no more."""


class LakeWriter:
    """Writes one force's records into the lake, once each, by (stream, partition)."""

    def __init__(self, storage: Storage, force_id: str) -> None:
        self.storage = storage
        self.force_id = validate_force_id(force_id)
        #: Per (stream, partition) taken over: the last offset in the lake, and our token.
        self._taken: dict[tuple[Stream, int], tuple[int, str]] = {}

    def resume(self, stream: Stream, partition: int) -> int:
        """Take over ``(stream, partition)``: finish what an interrupted flush left (its
        files deleted: the replay writes them again), sign the state as its writer, and
        return the last offset in the lake, -1 if none. Call it whenever the partition is
        (re)assigned: another writer may have moved it on since."""
        path = _state_path(self.force_id, stream, partition)
        with self.storage.lock(path):  # never between a writer's check and its write
            return self._resume(stream, partition, path)

    def _resume(self, stream: Stream, partition: int, path: str) -> int:
        state = self._read(path)
        if state.writing:
            log.warning(
                "lake of %s: %s partition %d: a flush after offset %d was interrupted; "
                "deleting its %d file(s), the records are written again",
                self.force_id,
                stream,
                partition,
                state.done,
                len(state.writing),
            )
            for file in state.writing:
                self.storage.delete(file)
        token = uuid.uuid4().hex[:12]
        self.storage.put(path, _State(state.done, [], token).encode())
        self._taken[(stream, partition)] = (state.done, token)
        return state.done

    def _read(self, path: str) -> _State:
        raw = self.storage.get(path)
        return _State(-1) if raw is None else _State(**json.loads(raw))

    def done(self, stream: Stream, partition: int) -> int:
        """The last offset of ``(stream, partition)`` in the lake (after ``resume``)."""
        return self._taken[(stream, partition)][0]

    def write(
        self, stream: Stream, partition: int, last: int, rows: Mapping[Table, Iterable[Row]]
    ) -> Flushed:
        """Put the rows of records ``done+1 .. last`` of ``(stream, partition)`` in the lake.

        ``rows`` may be empty (records that held nothing to keep): the state still moves
        on, so the offsets can be committed. LakeFencedError when another writer took the
        partition over since our ``resume`` (a consumer its group took for dead): checked
        before the flush and before it is declared done; our files, named with our token,
        are then removed, never another writer's.
        """
        key = (stream, partition)
        if key not in self._taken:
            raise RuntimeError(f"{stream} partition {partition}: resume() it before writing")
        done, token = self._taken[key]
        first = done + 1
        if last < first:
            raise ValueError(f"{stream} partition {partition}: offset {last} is already in")
        if stream == "reports":
            rows = once_per_report(rows)
        files: dict[str, tuple[Table, list[Row]]] = {}
        for table, table_rows in rows.items():
            if table not in STREAM_TABLES[stream]:
                raise ValueError(f"the {stream} stream does not fill the {table} table")
            by_hour: dict[str, list[Row]] = defaultdict(list)
            for row in table_rows:
                by_hour[_hour_dir(row[TIME_COLUMN[table]])].append(row)
            for hour, hour_rows in by_hour.items():
                name = f"p{partition}-{first:012d}-{last:012d}-{token}.parquet"
                files[f"{table_dir(self.force_id, table)}/{hour}/{name}"] = (table, hour_rows)
        encoded = {
            path: encode_parquet(table, table_rows) for path, (table, table_rows) in files.items()
        }
        state_path = _state_path(self.force_id, stream, partition)
        # Each check that the partition is still ours and the state's write after it are
        # one step under the state's lock: a take-over (resume) comes before or after it.
        with self.storage.lock(state_path):
            self._still_ours(key, state_path, token, done, [])
            if encoded:
                self.storage.put(state_path, _State(done, sorted(encoded), token).encode())
        if encoded:
            for path, data in encoded.items():
                self.storage.put(path, data)
        with self.storage.lock(state_path):
            if encoded:
                self._still_ours(key, state_path, token, done, sorted(encoded))
            self.storage.put(state_path, _State(last, [], token).encode())
        self._taken[key] = (last, token)
        return Flushed(
            tuple(sorted(encoded)),
            sum(len(r) for _, r in files.values()),
            sum(len(d) for d in encoded.values()),
        )

    def _still_ours(
        self, key: tuple[Stream, int], path: str, token: str, done: int, ours: list[str]
    ) -> None:
        state = self._read(path)
        if state.owner == token and state.done == done:
            return
        left = []
        for file in ours:  # named with our token: nobody else's
            try:
                self.storage.delete(file)
            except OSError:
                left.append(file)
        self._taken.pop(key, None)
        if left:  # fenced all the same: a retry would not clean them either
            log.error(
                "lake of %s: %s partition %d: fenced, and %d file(s) of ours could not be "
                "removed (their records are in the lake twice until compaction): %s",
                self.force_id,
                key[0],
                key[1],
                len(left),
                ", ".join(left),
            )
        raise LakeFencedError(
            f"{key[0]} partition {key[1]} was taken over by another writer "
            f"(its state says offset {state.done}); this writer stops writing it"
        )

    def holds(self, stream: Stream, partition: int) -> bool:
        """Whether we took ``(stream, partition)`` over (and have not been fenced since)."""
        return (stream, partition) in self._taken

    def fence(self, stream: Stream, partition: int) -> None:
        """LakeFencedError unless the state of ``(stream, partition)`` is still signed by
        us: what a task that only its holder may run (compaction) checks before each step."""
        taken = self._taken.get((stream, partition))
        state = self._read(_state_path(self.force_id, stream, partition))
        if taken is None or state.owner != taken[1]:
            raise LakeFencedError(f"{stream} partition {partition} is not this writer's (any more)")

    def fencer(self, stream: Stream, partition: int) -> Callable[[], None]:
        """``fence`` bound to our hold of ``(stream, partition)`` as it is now: raises
        LakeFencedError once another writer took it over, even if we took it back since
        (a task started under one hold must not go on under the next)."""
        taken = self._taken.get((stream, partition))
        if taken is None:
            raise LakeFencedError(f"{stream} partition {partition} is not this writer's")
        token = taken[1]
        path = _state_path(self.force_id, stream, partition)

        def fence() -> None:
            held = self._taken.get((stream, partition))
            if held is None or held[1] != token or self._read(path).owner != token:
                raise LakeFencedError(
                    f"{stream} partition {partition} was taken over since this task began"
                )

        return fence

    def forget(self, stream: Stream, partition: int) -> None:
        """The partition went to another writer: resume() it again before writing."""
        self._taken.pop((stream, partition), None)
