"""What a force stores, measured on Cassandra for the control plane's invoice.

Each node answers ``system_views.disk_usage`` for itself only (a virtual table): the bytes
of every table on its disk, in whole MiB rounded up, counting SSTables compaction has not
deleted yet. :class:`DiskUsage` asks every node once per interval for every keyspace, so
that measuring a hundred forces costs one query per node, not a hundred. A sum that misses
a node (down, or not answering) would under-bill: the figure is then unknown, and a force
keeps its last one. The nodes must all be reachable from the operator's session (one data
centre; a session confined to its local data centre cannot ask the others).

Alerts raised are counted by the control plane from each force's alerts topic
(``peaceland.api.alert_meter``), exactly once, by the day they were raised.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Final

from cassandra.cluster import Session

from peaceland.tenants.policeforce import ForceUsage

log = logging.getLogger(__name__)

_MEBIBYTE: Final = 1 << 20


class DiskUsage:
    """Bytes of every keyspace on every node, read at most once every ``max_age`` seconds."""

    def __init__(self, max_age: float, timeout: float = 10.0) -> None:
        self._max_age = max_age
        self._timeout = timeout
        self._lock = threading.Lock()
        self._read_at = -max_age
        self._bytes: dict[str, int] | None = None

    def keyspace_bytes(self, session: Session, keyspace: str) -> int | None:
        """The keyspace's bytes on every node, replicas included; None when some node did
        not answer the last reading."""
        with self._lock:
            if time.monotonic() - self._read_at >= self._max_age:
                self._bytes = self._read(session)
                self._read_at = time.monotonic()
            return None if self._bytes is None else self._bytes.get(keyspace, 0)

    def _read(self, session: Session) -> dict[str, int] | None:
        totals: dict[str, int] = {}
        hosts = list(session.cluster.metadata.all_hosts())
        for host in hosts:
            if not host.is_up:
                log.warning("storage not measured: Cassandra node %s is down", host)
                return None
            try:
                rows = session.execute(
                    "SELECT keyspace_name, mebibytes FROM system_views.disk_usage",
                    host=host,
                    timeout=self._timeout,
                )
            except Exception as exc:
                log.warning("storage not measured: %s did not answer (%s)", host, exc)
                return None
            for row in rows:
                totals[row.keyspace_name] = (
                    totals.get(row.keyspace_name, 0) + int(row.mebibytes or 0) * _MEBIBYTE
                )
        return totals if hosts else None


def measure(
    disk: DiskUsage, session: Session, keyspace: str, now: datetime, previous: ForceUsage | None
) -> ForceUsage:
    """The force's storage now; unknown this time, its last figure stands."""
    stored = disk.keyspace_bytes(session, keyspace)
    if stored is None and previous is not None:
        stored = previous.storage_bytes
    return ForceUsage(
        measured_at=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), storage_bytes=stored
    )
