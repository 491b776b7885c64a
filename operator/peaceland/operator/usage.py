"""What a force uses, measured on its servers: the alerts it raised per day and the bytes
its keyspace takes on disk. The control plane copies the figures into its daily usage.

Alerts are counted in ``alerts_by_day``, one row per alert keyed by the day it was opened:
a count is exact however often a report was redelivered. Storage comes from each
Cassandra node's ``system_views.disk_usage`` (live SSTables, whole MiB per table), asked of
every node, since a virtual table answers for its own node only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Final

from cassandra.cluster import Session

from peaceland.tenants.policeforce import ForceUsage

log = logging.getLogger(__name__)

_MEBIBYTE: Final = 1 << 20


def days_to_count(now: datetime) -> tuple[date, date]:
    """Yesterday and today (UTC): yesterday's count is whole once the day is over."""
    today = now.astimezone(UTC).date()
    return today - timedelta(days=1), today


def alerts_raised(session: Session, keyspace: str, days: Sequence[date]) -> dict[str, int]:
    """Alerts opened on each of ``days`` (one partition read per day)."""
    counted: dict[str, int] = {}
    for day in days:
        row = session.execute(
            f"SELECT count(*) AS alerts FROM {keyspace}.alerts_by_day WHERE day = %s", (day,)
        ).one()
        counted[day.isoformat()] = int(row.alerts) if row is not None else 0
    return counted


def storage_bytes(session: Session, keyspace: str) -> int | None:
    """Bytes the keyspace takes on every node that is up, replicas included; None when a
    node did not answer (a partial sum would under-bill, so the last figure stands)."""
    total = 0
    hosts = [h for h in session.cluster.metadata.all_hosts() if h.is_up]
    if not hosts:
        return None
    for host in hosts:
        try:
            rows = session.execute(
                "SELECT mebibytes FROM system_views.disk_usage WHERE keyspace_name = %s",
                (keyspace,),
                host=host,
            )
        except Exception as exc:
            log.warning("storage of %s not measured: %s did not answer (%s)", keyspace, host, exc)
            return None
        total += sum(int(r.mebibytes or 0) for r in rows) * _MEBIBYTE
    return total


def measure(
    session: Session, keyspace: str, now: datetime, previous: ForceUsage | None
) -> ForceUsage:
    """The force's usage now; a figure that could not be measured keeps its last value."""
    stored = storage_bytes(session, keyspace)
    if stored is None and previous is not None:
        stored = previous.storage_bytes
    return ForceUsage(
        measured_at=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        storage_bytes=stored,
        alerts_raised=alerts_raised(session, keyspace, days_to_count(now)),
    )
