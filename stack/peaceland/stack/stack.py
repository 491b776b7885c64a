"""Bringing the stack up, reporting its health, and taking down exactly what we started."""

from __future__ import annotations

import fcntl
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from peaceland.stack import processes
from peaceland.stack.errors import StackError
from peaceland.stack.fetch import Progress
from peaceland.stack.kube import Etcd, KubeApiServer
from peaceland.stack.servers import (
    Cassandra,
    CassandraNode,
    Kafka,
    KafkaNode,
    Postgres,
    Server,
    kafka_cluster_id,
)
from peaceland.stack.settings import StackSettings
from peaceland.tenants.cassandra import connect, shutdown_session


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where clients reach the stack's servers, in the form of the usual variables."""

    kafka_bootstrap_servers: str
    cassandra_contact_points: str
    database_url: str
    #: The admin kubeconfig of the stack's API server, when it runs.
    kubeconfig: str | None = None

    def environment(self) -> dict[str, str]:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "CASSANDRA_CONTACT_POINTS": self.cassandra_contact_points,
            "DATABASE_URL": self.database_url,
        }
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
        api = self.kube_apiserver
        kubeconfig = str(api.kubeconfig) if api.pid() and api.kubeconfig.exists() else None
        return Endpoints(kafka.address, cassandra.address, postgres.address, kubeconfig)

    def status(self) -> list[ServerStatus]:
        """Every server's health; the Kubernetes ones only when they run."""
        return [
            self._status(server)
            for server in self.servers
            if server.name not in KUBERNETES or server.pid() is not None
        ]

    def up(self, names: list[str] | None = None, *, kubernetes: bool = False) -> list[str]:
        """Start what is not running yet and wait until every server answers.

        Without names: Kafka, Cassandra and PostgreSQL, and etcd and kube-apiserver too
        with ``kubernetes``. Returns the names of the servers this call started (running
        ones are reused, external ones only checked).
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

    def _peers(self) -> int:
        session = connect(self.nodes[0].address, timeout=10)
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
