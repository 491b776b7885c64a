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
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from peaceland.analytics.lake import ArrowStorage, Listed, LocalStorage, Storage
from peaceland.tenants.forces import validate_force_id

#: Files copied at once: an object store answers many small reads better side by side.
_COPIERS = 8


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A force's files as the object store listed them, read from their local copies.
    Read-only: nothing writes a snapshot."""

    root: Path
    files: tuple[Listed, ...]

    def locate(self, path: str) -> str:
        return str(self.root / path)

    def get(self, path: str) -> bytes | None:
        if not any(f.path == path for f in self.files):
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


class Mirror:
    """Local copies of an object store's lake, one folder per force, for its readers."""

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
        not copied yet, and the small mutable ones again)."""
        force = validate_force_id(force_id)
        with self._locked(force):
            listed = self.remote.list(force)
            now = self._clock()
            with ThreadPoolExecutor(_COPIERS) as copiers:
                copied = list(copiers.map(lambda f: self._copy(f, now), listed))
            present = tuple(f for f, ok in zip(listed, copied, strict=True) if ok)
            self._forget(force, {f.path for f in present}, now)
        return Snapshot(self.folder, present)

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
        os.utime(target, (now, now))
        return True

    def _forget(self, force: str, present: set[str], now: float) -> None:
        """Remove the copies the store has not listed for ``linger``."""
        for copy in LocalStorage(self.folder).list(force):
            if copy.path not in present and now - copy.mtime > self.linger.total_seconds():
                (self.folder / copy.path).unlink(missing_ok=True)

    @contextmanager
    def _locked(self, force: str) -> Iterator[None]:
        """One snapshot of a force at a time, in any process sharing the folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.folder / f".{force}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


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
