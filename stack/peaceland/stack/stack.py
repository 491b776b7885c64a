"""Bringing the stack up, reporting its health, and taking down exactly what we started."""

from __future__ import annotations

import fcntl
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from peaceland.stack import processes
from peaceland.stack.credentials import admin_credentials
from peaceland.stack.errors import StackError
from peaceland.stack.fetch import Progress
from peaceland.stack.kube import Etcd, KubeApiServer
from peaceland.stack.servers import (
    Cassandra,
    CassandraNode,
    Kafka,
    KafkaNode,
    Postgres,
    S3Store,
    Server,
    ensure_admin_role,
    kafka_cluster_id,
)
from peaceland.stack.settings import StackSettings
from peaceland.tenants.cassandra import CassandraAccess, connect, shutdown_session
from peaceland.tenants.environment import (
    CASSANDRA_CONTACT_POINTS,
    CASSANDRA_LOCAL_DC,
    CASSANDRA_PASSWORD,
    CASSANDRA_USERNAME,
    KAFKA_BOOTSTRAP_SERVERS,
    KAFKA_PASSWORD,
    KAFKA_SECURITY_PROTOCOL,
    KAFKA_USERNAME,
    file_variable,
)
from peaceland.tenants.kafka import KafkaAccess
from peaceland.tenants.objectstore import S3Access


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where clients reach the stack's servers, and how the administrator signs in."""

    kafka: KafkaAccess
    cassandra: CassandraAccess
    database_url: str
    #: The admin kubeconfig of the stack's API server, when it runs.
    kubeconfig: str | None = None
    #: The files holding the administrator's passwords (our own servers; None: external
    #: servers, whose credentials come from the environment).
    kafka_password_file: str | None = None
    cassandra_password_file: str | None = None
    #: The S3 object store (the lake's production path), as its administrator.
    s3: S3Access | None = None

    @property
    def kafka_bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers

    @property
    def cassandra_contact_points(self) -> str:
        return self.cassandra.contact_points

    def settings(self) -> dict[str, Any]:
        """The servers and the administrator's credentials as settings fields
        (``peaceland.tenants.access``): ``ArchiverSettings(**endpoints.settings(), …)``."""
        return {
            "kafka_bootstrap_servers": self.kafka.bootstrap_servers,
            "kafka_username": self.kafka.username,
            "kafka_password": self.kafka.password,
            "kafka_security_protocol": self.kafka.security_protocol,
            "cassandra_contact_points": self.cassandra.contact_points,
            "cassandra_local_dc": self.cassandra.local_dc,
            "cassandra_username": self.cassandra.username,
            "cassandra_password": self.cassandra.password,
        }

    def environment(self) -> dict[str, str]:
        """The variables every process of ours reads (``peaceland.tenants.access``):
        passwords as the files holding them, when there are files."""
        env = {
            KAFKA_BOOTSTRAP_SERVERS: self.kafka_bootstrap_servers,
            CASSANDRA_CONTACT_POINTS: self.cassandra_contact_points,
            CASSANDRA_LOCAL_DC: self.cassandra.local_dc,
            "DATABASE_URL": self.database_url,
        }
        for user_var, password_var, username, password, password_file in (
            (KAFKA_USERNAME, KAFKA_PASSWORD, self.kafka.username, self.kafka.password,
             self.kafka_password_file),
            (CASSANDRA_USERNAME, CASSANDRA_PASSWORD, self.cassandra.username,
             self.cassandra.password, self.cassandra_password_file),
        ):  # fmt: skip
            if username is None:
                continue
            env[user_var] = username
            if password_file is not None:
                env[file_variable(password_var)] = password_file
            elif password is not None:
                env[password_var] = password
        if self.kafka.security_protocol is not None:
            env[KAFKA_SECURITY_PROTOCOL] = self.kafka.security_protocol
        if self.kubeconfig:
            env["KUBECONFIG"] = self.kubeconfig
        return env


@dataclass(frozen=True, slots=True)
class ServerStatus:
    name: str
    address: str
    external: bool
    healthy: bool
    pid: int | None
    detail: str
    log_file: str | None


KUBERNETES: Final = ("etcd", "kube-apiserver")


class Stack:
    """The local stack's servers, in the order they are started.

    etcd and kube-apiserver (a real Kubernetes API server, for the operator) start only
    when asked for (``up(kubernetes=True)``): they are built from source the first time.
    """

    def __init__(
        self, settings: StackSettings | None = None, progress: Progress = lambda _: None
    ) -> None:
        self.settings = settings or StackSettings()
        self.progress = progress
        self.servers: list[Server] = [
            Kafka(self.settings),
            Cassandra(self.settings),
            Postgres(self.settings),
            S3Store(self.settings),
            Etcd(self.settings),
            KubeApiServer(self.settings),
        ]

    @property
    def kube_apiserver(self) -> KubeApiServer:
        server = self.server("kube-apiserver")
        assert isinstance(server, KubeApiServer)
        return server

    def server(self, name: str) -> Server:
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)

    def endpoints(self) -> Endpoints:
        kafka, cassandra, postgres = (self.server(n) for n in ("kafka", "cassandra", "postgres"))
        assert isinstance(kafka, Kafka)
        assert isinstance(cassandra, Cassandra)
        api = self.kube_apiserver
        kubeconfig = str(api.kubeconfig) if api.pid() and api.kubeconfig.exists() else None
        admin = admin_credentials(self.settings.state_dir)
        s3 = self.server("s3")
        assert isinstance(s3, S3Store)
        return Endpoints(
            kafka.access(),
            cassandra.access(),
            postgres.address,
            kubeconfig,
            kafka_password_file=None if kafka.external else str(admin.kafka_password_file),
            cassandra_password_file=None
            if cassandra.external
            else str(admin.cassandra_password_file),
            s3=s3.access(),
        )

    def status(self) -> list[ServerStatus]:
        """Every server's health; the Kubernetes ones only when they run."""
        return [
            self._status(server)
            for server in self.servers
            if server.name not in KUBERNETES or server.pid() is not None
        ]

    def up(self, names: list[str] | None = None, *, kubernetes: bool = False) -> list[str]:
        """Start what is not running yet and wait until every server answers.

        Without names: Kafka, Cassandra, PostgreSQL and the S3 store, and etcd and
        kube-apiserver too with ``kubernetes``. Returns the names of the servers this call
        started (running ones are reused, external ones only checked).
        """
        if names is None:
            names = [s.name for s in self.servers if kubernetes or s.name not in KUBERNETES]
        chosen = [s for s in self.servers if s.name in names]
        with self._lock():
            to_start = [s for s in chosen if not s.external and s.pid() is None]
            for server in to_start:
                self._check_ports(server)
            for server in to_start:
                server.prepare(self.progress)
            for server in to_start:
                if server.needs:
                    self._wait_ready([self.server(n) for n in server.needs])
                self.progress(f"starting {server.name} on {server.address}")
                server.start()
            self._wait_ready(chosen)
            for server in chosen:
                server.after_ready()
        return [s.name for s in to_start]

    def down(self, names: list[str] | None = None) -> list[str]:
        """Stop the servers we started (by their recorded pid); returns those stopped.

        With no names, first the forces' processes (gateways, consumers) the demo or a
        benchmark left running, then every server: nothing of ours keeps running.
        """
        stopped: list[str] = []
        if names is None:
            # The node and the operator first: either would start again what is stopped.
            for pid_file in sorted(
                (self.settings.state_dir / "services").glob("*.pid"),
                key=lambda p: (not p.stem.startswith("peaceland-"), p.stem),
            ):
                if processes.stop(pid_file, timeout=30):
                    stopped.append(pid_file.stem)
        with self._lock():
            for server in reversed(self.servers):
                if names is not None and server.name not in names:
                    continue
                if server.stop():
                    stopped.append(server.name)
        return stopped

    def _status(self, server: Server) -> ServerStatus:
        external = server.external is not None
        pid = None if external else server.pid()
        if not external and pid is None:
            detail: str | None = "not running"
        else:
            detail = server.probe()
        return ServerStatus(
            name=server.name,
            address=server.address,
            external=external,
            healthy=detail is None,
            pid=pid,
            detail=detail or "healthy",
            log_file=None if external else str(server.log_file),
        )

    def _check_ports(self, server: Server) -> None:
        for port in server.ports:
            if not processes.port_is_free(self.settings.host, port):
                raise StackError(
                    f"cannot start {server.name}: port {port} on {self.settings.host} is taken by "
                    f"another program. Stop it, or choose other ports with PEACELAND_*_PORT "
                    "(see docs/development.md)"
                )

    def _wait_ready(self, servers: list[Server]) -> None:
        deadline = time.monotonic() + self.settings.startup_timeout
        waiting = {s.name: s for s in servers}
        reasons: dict[str, str] = {}
        last_report = time.monotonic()
        while waiting:
            for name, server in list(waiting.items()):
                if not server.external and server.pid() is None:
                    raise StackError(
                        f"{name} exited during start-up; its log is {server.log_file}:\n"
                        + _tail(server.log_file)
                    )
                reason = server.probe()
                if reason is None:
                    self.progress(f"{name} is up on {server.address}")
                    del waiting[name]
                else:
                    reasons[name] = reason
            if not waiting:
                return
            now = time.monotonic()
            if now > deadline:
                details = "; ".join(
                    f"{n}: {reasons.get(n, '?')} (log: {waiting[n].log_file})" for n in waiting
                )
                raise StackError(f"not ready after {self.settings.startup_timeout:.0f}s: {details}")
            if now - last_report > 15:
                self.progress("still waiting for " + ", ".join(sorted(waiting)))
                last_report = now
            time.sleep(1.0)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # Two `up`s at once (a developer's and a test session's) must not start two copies.
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.settings.state_dir / "stack.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


S = TypeVar("S", bound=Server)


class _Nodes(Generic[S]):
    """Servers of one cluster beside the stack's, each killed and restarted on its own to
    test the loss of one (a broker, a replica)."""

    nodes: list[S]
    #: Longest wait for a node to answer, and between two probes, in seconds.
    ready_timeout: float
    probe_interval: float

    def wait_ready(self, node: S, timeout: float | None = None) -> None:
        _wait_ready(node, timeout or self.ready_timeout, self.probe_interval)

    def kill(self, index: int) -> None:
        """SIGKILL one node: lost with whatever it had not yet replicated or flushed."""
        processes.stop(self.nodes[index].pid_file, sig=signal.SIGKILL, timeout=10)

    def restart(self, index: int) -> None:
        self.nodes[index].start()
        self.wait_ready(self.nodes[index])

    def down(self) -> None:
        for node in self.nodes:
            node.stop()


class KafkaCluster(_Nodes[Kafka]):
    """Kafka nodes forming one cluster beside the stack's, to test the loss of a broker.

    Every node is broker and controller; topics default to one copy per node, and an
    acknowledged write is on at least two (min.insync.replicas).
    """

    ready_timeout = 120.0
    probe_interval = 0.5

    def __init__(
        self,
        settings: StackSettings,
        size: int = 3,
        progress: Progress = lambda _: None,
        *,
        auto_create_topics: bool = False,
    ) -> None:
        ports = [(processes.free_port(), processes.free_port()) for _ in range(size)]
        voters = tuple((i + 1, controller) for i, (_, controller) in enumerate(ports))
        cluster_id = kafka_cluster_id()
        self.progress = progress
        self.nodes = [
            Kafka(
                settings,
                KafkaNode(i + 1, port, controller, voters, cluster_id, auto_create_topics),
            )
            for i, (port, controller) in enumerate(ports)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def access(self) -> KafkaAccess:
        """The whole cluster, signed in as the administrator."""
        admin = self.nodes[0].access()
        return KafkaAccess(self.bootstrap_servers, admin.username, admin.password)

    def up(self, timeout: float = 120.0) -> None:
        for node in self.nodes:
            node.prepare(self.progress)
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            self.wait_ready(node, timeout)


class CassandraRing(_Nodes[Cassandra]):
    """Cassandra nodes forming one ring beside the stack's, on loopback addresses 127.0.0.2,
    127.0.0.3, …, to test the loss of a replica: a keyspace of replication factor 3 keeps a
    copy of every row on each node."""

    ready_timeout = 300.0
    probe_interval = 1.0

    def __init__(self, settings: StackSettings, size: int = 3) -> None:
        hosts = tuple(f"127.0.0.{2 + i}" for i in range(size))
        self.nodes = [
            Cassandra(settings, CassandraNode(i + 1, host, processes.free_port(), hosts))
            for i, host in enumerate(hosts)
        ]

    @property
    def contact_points(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def access(self) -> CassandraAccess:
        """The whole ring, signed in as the administrator."""
        admin = self.nodes[0].access()
        return CassandraAccess(
            self.contact_points, username=admin.username, password=admin.password
        )

    def up(self, timeout: float = 300.0) -> None:
        for node in self.nodes:
            node.prepare(lambda _: None)
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            self.wait_ready(node, timeout)
        deadline = time.monotonic() + timeout
        while (seen := self._peers()) < len(self.nodes) - 1:
            if time.monotonic() > deadline:
                raise StackError(f"the Cassandra ring formed with {seen + 1} nodes only")
            time.sleep(1)
        # A peer listed is not yet a peer up: signing in reads its role at QUORUM, and a
        # replica of that row still down in the first node's eyes refused it (seen in CI).
        while (up := self._up()) < len(self.nodes):
            if time.monotonic() > deadline:
                raise StackError(f"only {up} of the ring's {len(self.nodes)} nodes seen up")
            time.sleep(1)
        # The administrator's role, kept on every node: signing in survives a lost node.
        first = self.nodes[0]
        ensure_admin_role(first.default_role, first.access(), len(self.nodes))

    def _up(self) -> int:
        """The fewest nodes any node of the ring sees up and serving (``UN``)."""
        return min(
            len(re.findall(r"^UN\s", node.nodetool("status"), re.MULTILINE)) for node in self.nodes
        )

    def _peers(self) -> int:
        node = self.nodes[0]
        try:
            session = connect(node.access(), timeout=10)
        except Exception:
            session = connect(node.default_role, timeout=10)
        try:
            return len(list(session.execute("SELECT peer FROM system.peers_v2")))
        finally:
            shutdown_session(session)


def _wait_ready(node: Server, timeout: float, interval: float) -> None:
    """Until ``node`` answers real requests; fails with its log's tail if it exits first."""
    deadline = time.monotonic() + timeout
    while (reason := node.probe()) is not None:
        if node.pid() is None:
            raise StackError(
                f"{node.name} exited during start-up; its log is "
                f"{node.log_file}:\n{_tail(node.log_file)}"
            )
        if time.monotonic() > deadline:
            raise StackError(f"{node.name} not ready after {timeout:.0f}s: {reason}")
        time.sleep(interval)


def _tail(path: object, lines: int = 30) -> str:
    try:
        with open(str(path), errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"
