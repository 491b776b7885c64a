"""Connecting to Cassandra the same way from every component, and judging its errors once.

Every session runs its statements at ``LOCAL_QUORUM`` and its lightweight transactions at
``LOCAL_SERIAL`` unless told otherwise: a write acknowledged at that level survives the loss
of any one replica of three, and a read at it sees every write acknowledged before it. Both
are settings of each deployable (docs/services.md), passed here.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from cassandra import (
    AuthenticationFailed,
    ConsistencyLevel,
    InvalidRequest,
    OperationTimedOut,
    RequestExecutionException,
    Unauthorized,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.protocol import ServerError

DEFAULT_PORT = 9042

Consistency = Literal["ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "ALL"]
SerialConsistency = Literal["SERIAL", "LOCAL_SERIAL"]

#: Errors of a server that is down, restarting, overloaded, slow, or refusing us for a while
#: (a role or a grant being changed): the same request succeeds later.
_TRANSIENT: Final[tuple[type[Exception], ...]] = (
    NoHostAvailable,
    OperationTimedOut,
    ConnectionException,
    RequestExecutionException,  # unavailable, timeouts, write/read failures, overloaded
    ServerError,
    AuthenticationFailed,
    Unauthorized,
)
#: An InvalidRequest about the schema, not the data: a table or keyspace missing (dropped by
#: hand, being made again by the operator) heals; retrying is right.
_SCHEMA_MISSING: Final = re.compile(
    r"(table|keyspace) \S+ (does not|doesn't) exist|unconfigured table|undefined column name"
    r"|unknown identifier",
    re.IGNORECASE,
)


def is_transient(exc: BaseException) -> bool:
    """Whether the request that raised ``exc`` may succeed if sent again later.

    False means the request itself is at fault (a batch or a mutation too large, a value
    Cassandra cannot take): sending it again fails again, so its data is set aside (the
    dead-letter topic) instead of blocking everything behind it.
    """
    if isinstance(exc, _TRANSIENT):
        return True
    if isinstance(exc, InvalidRequest):
        return bool(_SCHEMA_MISSING.search(str(exc)))
    return False


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def write_time(moment: datetime) -> int:
    """``moment`` as a cell write timestamp (``USING TIMESTAMP``): microseconds since the
    epoch, exact (no float rounding), so a replayed write carries the very same version."""
    return (moment - _EPOCH) // _MICROSECOND


def to_millisecond(moment: datetime) -> datetime:
    """``moment`` in UTC as Cassandra's ``timestamp`` type keeps it: to the millisecond."""
    return moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000)


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


@dataclass(frozen=True, slots=True)
class CassandraAccess:
    """How one client reaches Cassandra: where, in which data centre, as which role.

    The platform's Cassandra requires a password (PasswordAuthenticator) and grants each
    role its own keyspace only (CassandraAuthorizer).
    """

    contact_points: str
    #: The data centre whose nodes serve this client (LOCAL_* levels count its replicas).
    local_dc: str = "datacenter1"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: The CA bundle that signed the nodes' certificates: TLS on every connection.
    ssl_ca_location: str | None = None

    def as_role(self, username: str, password: str) -> CassandraAccess:
        """The same cluster, signed in as another role."""
        return CassandraAccess(
            self.contact_points, self.local_dc, username, password, self.ssl_ca_location
        )


def connect(
    access: CassandraAccess,
    *,
    timeout: float = 10.0,
    consistency: Consistency = "LOCAL_QUORUM",
    serial_consistency: SerialConsistency = "LOCAL_SERIAL",
) -> Session:
    """A session on the cluster ``access`` names; close it with ``shutdown_session``.

    Token-aware routing sends each write straight to a replica of its partition; every
    statement runs at ``consistency`` and every lightweight transaction (``IF …``) at
    ``serial_consistency`` unless it says otherwise.
    """
    hosts, port = parse_contact_points(access.contact_points)
    if (access.username is None) != (access.password is None):
        raise ValueError("a Cassandra username needs its password, and a password its username")
    ssl_context = None
    if access.ssl_ca_location is not None:
        ssl_context = ssl.create_default_context(cafile=access.ssl_ca_location)
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=access.local_dc)),
        request_timeout=timeout,
        consistency_level=getattr(ConsistencyLevel, consistency),
        serial_consistency_level=getattr(ConsistencyLevel, serial_consistency),
    )
    cluster = Cluster(
        contact_points=hosts,
        port=port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=timeout,
        # Back within seconds of a node's return: the driver's default waits up to 10 min.
        reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.2, max_delay=2.0),
        auth_provider=(
            PlainTextAuthProvider(access.username, access.password)
            if access.username is not None
            else None
        ),
        ssl_context=ssl_context,
    )
    try:
        return cluster.connect()
    except Exception:
        cluster.shutdown()
        raise


def shutdown_session(session: Session) -> None:
    """Close a session and the cluster object behind it (its threads and sockets)."""
    session.cluster.shutdown()
