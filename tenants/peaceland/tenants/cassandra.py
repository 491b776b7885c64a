"""Connecting to Cassandra the same way from every component."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cassandra import DriverException, OperationTimedOut
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)

DEFAULT_PORT = 9042

#: What the driver raises while Cassandra is down, restarting or overloaded: a consumer
#: pauses and retries on these. NoHostAvailable and OperationTimedOut do not derive from
#: DriverException.
UNAVAILABLE: tuple[type[Exception], ...] = (DriverException, NoHostAvailable, OperationTimedOut)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def write_time(moment: datetime) -> int:
    """``moment`` as a cell write timestamp (``USING TIMESTAMP``): microseconds since the
    epoch, exact (no float rounding), so a replayed write carries the very same version."""
    return (moment - _EPOCH) // _MICROSECOND


def parse_contact_points(contact_points: str) -> tuple[list[str], int]:
    """Split ``"host1:9042,host2:9042"`` into hosts and the one native port they share.

    The Python driver takes a single port for the whole cluster, so mixed ports are refused
    here with a clear message rather than half-ignored by the driver.
    """
    hosts: list[str] = []
    ports: set[int] = set()
    for raw_entry in contact_points.split(","):
        entry = raw_entry.strip()
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        if not sep:
            host, port = entry, str(DEFAULT_PORT)
        if not host or not port.isdigit():
            raise ValueError(f"Cassandra contact point {entry!r} is not host or host:port")
        hosts.append(host.strip("[]"))
        ports.add(int(port))
    if not hosts:
        raise ValueError("no Cassandra contact point given")
    if len(ports) > 1:
        raise ValueError(f"Cassandra contact points must share one port, got {sorted(ports)}")
    return hosts, ports.pop()


def connect(
    contact_points: str,
    *,
    local_dc: str = "datacenter1",
    timeout: float = 10.0,
    credentials: tuple[str, str] | None = None,
) -> Session:
    """A session on the cluster behind ``contact_points``; close it with ``shutdown_session``.

    Token-aware routing sends each write straight to a replica of its partition.
    """
    hosts, port = parse_contact_points(contact_points)
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc)),
        request_timeout=timeout,
    )
    cluster = Cluster(
        contact_points=hosts,
        port=port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=timeout,
        # Back within seconds of a node's return: the driver's default waits up to 10 min.
        reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.2, max_delay=2.0),
        auth_provider=PlainTextAuthProvider(*credentials) if credentials else None,
    )
    try:
        return cluster.connect()
    except Exception:
        cluster.shutdown()
        raise


def shutdown_session(session: Session) -> None:
    """Close a session and the cluster object behind it (its threads and sockets)."""
    session.cluster.shutdown()
