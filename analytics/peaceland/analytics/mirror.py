"""A lake on an object store, read through a copy on this machine's disk.

DuckDB reads S3 through its ``httpfs`` extension, which it downloads, and which PyPI
publishes for DuckDB 1.x only: the engines read local files. A reader of an ``s3://`` lake
(the API, the CLI) so takes a ``Snapshot`` of a force first: the store's listing of the
force's files at that moment, each copied once into a local folder of that force (the
lake's data files never change under a name, so a copy already there with the listed size
is the file), its small state and journal files copied again each time. The engines then
read the snapshot as they read a local lake, in a session that sees that force's folder
only; what they plan from is the store's listing, never the folder's, so a file the store
no longer has is not read even while its copy waits to be removed.

A copy the store no longer lists stays ``linger`` after the last snapshot that listed it
(a question under way may still read it), then goes. What is copied stays: the folder
holds the force's lake once (at 10 M reports, 1.4 GB). A lake larger than a reader's disk
wants an engine that reads the store itself (docs/analytics.md).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Final

from peaceland.analytics.lake import (
    STREAMS,
    TABLES,
    ArrowStorage,
    Listed,
    LocalStorage,
    Storage,
)
from peaceland.analytics.rollups import KINDS
from peaceland.tenants.forces import validate_force_id

log = logging.getLogger(__name__)

#: Files copied at once: an object store answers many small reads better side by side.
_COPIERS = 8


@dataclass(frozen=True)
class Snapshot:
    """A force's files as the object store listed them, read from their local copies.
    Read-only: nothing writes a snapshot."""

    root: Path
    files: tuple[Listed, ...]
    _paths: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_paths", frozenset(f.path for f in self.files))

    def locate(self, path: str) -> str:
        return str(self.root / path)

    def get(self, path: str) -> bytes | None:
        if path not in self._paths:
            return None
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            return None

    def list(self, prefix: str, *, times: bool = True) -> list[Listed]:
        top = prefix.rstrip("/") + "/"
        return [
            f if times else Listed(f.path, 0.0, f.size)
            for f in self.files
            if f.path.startswith(top)
        ]

    def put(self, path: str, data: bytes) -> None:  # noqa: ARG002
        raise PermissionError(f"a snapshot of the lake is read-only ({path})")

    def delete(self, path: str) -> None:
        raise PermissionError(f"a snapshot of the lake is read-only ({path})")

    def lock(self, path: str) -> AbstractContextManager[None]:  # noqa: ARG002
        return nullcontext()


def _mutable(path: str) -> bool:
    """A file written again under the same name: a writer's state, a compaction's journal."""
    return not path.endswith(".parquet")


#: A file's own name, as the lake's writers make them (``p0-000000000000-000000000119-
#: 7040d9909711.parquet``, ``c-8adbb1666b2c.parquet``, ``reports-2026113002-ba63….json``).
_FILE: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}"
_HOUR: Final = r"date=\d{4}-\d{2}-\d{2}/hour=\d{2}"
#: The folders of a force's lake a reader needs, listed in this order: the tables and
#: rollups before the writers' states and compactions' journals (``_lake``), as
#: ``compaction.live_tables`` lists them (a journal goes only after its sources).
_READ: Final = (*TABLES, "_rollups", "_lake")
#: Every file a reader needs, under a force's folder: the lake's layout exactly.
_LAYOUT: Final = re.compile(
    "|".join(
        [
            rf"({'|'.join(TABLES)})/{_HOUR}/{_FILE}\.parquet",
            rf"_rollups/({'|'.join(KINDS)})/{_HOUR}/{_FILE}\.parquet",
            rf"_lake/({'|'.join(STREAMS)})/p\d{{1,6}}\.json",
            rf"_lake/compaction/{_FILE}\.json",
        ]
    )
)


def lake_file(force: str, path: str) -> bool:
    """Whether ``path`` is laid out as one of ``force``'s lake files (``_LAYOUT``).
    Anything else a store lists (a stray object, a name made to climb out of the folder, a
    folder the engines would read as a partition) is not copied."""
    folder, _, rest = path.partition("/")
    return folder == force and _LAYOUT.fullmatch(rest) is not None


class Mirror:
    """Local copies of an object store's lake, one folder per force, for its readers.

    ``folder`` is this process's user's alone (mode 0700: it holds every force's
    sightings); a folder someone else owns is refused.
    """

    def __init__(
        self,
        remote: ArrowStorage,
        folder: Path,
        *,
        linger: timedelta = timedelta(minutes=15),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.remote = remote
        self.folder = folder
        self.linger = linger
        self._clock = clock

    def snapshot(self, force_id: str) -> Snapshot:
        """The force's files as the store lists them now, each copied here (only those
        not copied yet, and the small mutable ones again). OSError when the store fails:
        no snapshot is ever short of a file the store listed and still has."""
        force = validate_force_id(force_id)
        with self._locked(force):
            self._clear_partials(force)
            listed: list[Listed] = []
            for top in _READ:
                for found in self.remote.list(f"{force}/{top}"):
                    if lake_file(force, found.path):
                        listed.append(found)
                    else:
                        log.warning("lake of %s: not a lake file, not read: %r", force, found.path)
            now = self._clock()
            copied = self._copy_all(listed, now)
            present = tuple(f for f, ok in zip(listed, copied, strict=True) if ok)
            self._forget(force, {f.path for f in present}, now)
        return Snapshot(self.folder, present)

    def _copy_all(self, listed: list[Listed], now: float) -> list[bool]:
        """``_copy`` of each, side by side; the first failure stops those not begun."""
        with ThreadPoolExecutor(_COPIERS) as copiers:
            futures = [copiers.submit(self._copy, f, now) for f in listed]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def _copy(self, listed: Listed, now: float) -> bool:
        """Whether ``listed`` is here now (False: the store deleted it since it listed it).
        Its copy's time says when the store last listed it (``_forget``)."""
        target = self.folder / listed.path
        try:
            copied = not _mutable(listed.path) and target.stat().st_size == listed.size
        except FileNotFoundError:
            copied = False
        if not copied:
            try:
                self.remote.download(listed.path, target)
            except FileNotFoundError:
                return False
            size = target.stat().st_size
            if listed.size >= 0 and size != listed.size and not _mutable(listed.path):
                target.unlink(missing_ok=True)
                raise OSError(f"{listed.path}: {size} bytes copied, the store listed {listed.size}")
        os.utime(target, (now, now))
        return True

    def _forget(self, force: str, present: set[str], now: float) -> None:
        """Remove the copies the store has not listed for ``linger``."""
        for copy in LocalStorage(self.folder).list(force):
            if copy.path not in present and now - copy.mtime > self.linger.total_seconds():
                (self.folder / copy.path).unlink(missing_ok=True)

    def _clear_partials(self, force: str) -> None:
        """Remove what a copy cut short left (a reader killed mid-copy): under the force's
        lock, no copy is under way."""
        for partial in (self.folder / force).rglob(".*.tmp"):
            partial.unlink(missing_ok=True)

    @contextmanager
    def _locked(self, force: str) -> Iterator[None]:
        """One snapshot of a force at a time, in any process sharing the folder."""
        own_folder(self.folder, "the lake's mirror folder")
        if (self.folder / force).is_symlink():
            raise PermissionError(f"the lake's mirror folder of {force} is a link: refused")
        descriptor = os.open(self.folder / f".{force}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


def own_folder(folder: Path, what: str) -> None:
    """``folder`` made if missing, and checked: not a link, ours, and ours alone (0700).
    Nobody else can then plant anything in it (a link where a copy goes), nor swap it
    (that takes its parent: keep it in a home). PermissionError, naming ``what``, if not."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    held = folder.lstat()
    if stat.S_ISLNK(held.st_mode) or held.st_uid != os.geteuid():
        raise PermissionError(f"{what} {folder} is a link or someone else's: refused")
    if held.st_mode & 0o077:
        folder.chmod(0o700)


#: A lake the engines read on this machine: a directory of its own, or a snapshot.
LocalLake = LocalStorage | Snapshot
#: A ``LocalLake`` as a child process receives it: its folder, and a snapshot's listing.
Handed = tuple[str, tuple[tuple[str, float, int], ...] | None]


def hand(lake: LocalLake) -> Handed:
    """What a child needs to read ``lake`` (``received``)."""
    if isinstance(lake, LocalStorage):
        return str(lake.root), None
    return str(lake.root), tuple((f.path, f.mtime, f.size) for f in lake.files)


def received(handed: Handed) -> LocalLake:
    root, files = handed
    if files is None:
        return LocalStorage(Path(root))
    return Snapshot(Path(root), tuple(Listed(*f) for f in files))


def readable(storage: Storage, force_id: str, folder: Path) -> LocalLake:
    """The force's lake as its engines read it: a local lake itself, an object store's
    through a snapshot copied under ``folder``."""
    if isinstance(storage, LocalStorage):
        return storage
    if isinstance(storage, ArrowStorage):
        return Mirror(storage, folder).snapshot(force_id)
    raise TypeError(f"no engine reads a lake kept as {type(storage).__name__}")
