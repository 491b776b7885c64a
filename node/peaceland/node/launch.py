"""A police force's data-path processes on this machine: gateway, archiver, alerter.

Each runs as its own Python process (``python -m peaceland.services.<name>``), exactly as in
a pod, configured only through its environment, with its output in
``<state>/logs/<force>-<name>.log``. Used by the demo, the benchmarks and the fault tests,
which kill and restart them.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx2
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from peaceland.node.errors import NodeError
from peaceland.stack import Endpoints, processes
from peaceland.stack.processes import free_port
from peaceland.tenants.cassandra import connect, shutdown_session
from peaceland.tenants.environment import (
    CASSANDRA_PASSWORD,
    CASSANDRA_USERNAME,
    CREDENTIAL_FILES,
    KAFKA_BOOTSTRAP_SERVERS,
    KAFKA_PASSWORD,
    KAFKA_USERNAME,
    consumer_environment,
    credentials_environment,
    env_name,
    file_variable,
)
from peaceland.tenants.forces import AlertingSettings, ForceResources, ForceSettings, consumer_group
from peaceland.tenants.kafka import client_config, is_transient
from peaceland.tenants.provisioning.identities import ForceCredentials, ensure_identities
from peaceland.tenants.workloads import CONSUMERS

SERVICES: Final = ("gateway", "archiver", "alerter")

Say = Callable[[str], None]


def wait_answering(
    url: str,
    watched: list[ServiceProcess],
    server: ServiceProcess,
    what: str,
    timeout: float = 60.0,
) -> None:
    """Until ``url``'s ``/readyz`` answers 200. NodeError, naming the log to read, as soon as
    one of ``watched`` exits, or when ``what`` (served by ``server``) is not ready in time."""
    deadline = time.monotonic() + timeout
    while True:
        dead = [p for p in watched if not p.alive()]
        if dead:
            raise NodeError(
                f"{dead[0].name} of {dead[0].force_id} exited; its log is {dead[0].log_file}"
            )
        try:
            if httpx2.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise NodeError(
                f"{what} was not ready within {timeout:.0f}s; its log is {server.log_file}"
            )
        time.sleep(0.2)


@dataclass
class ServiceProcess:
    name: str
    force_id: str
    env: dict[str, str]
    state_dir: Path
    #: The module to run; ``peaceland.services.<name>`` when None.
    module: str | None = None

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "services" / f"{self.force_id}-{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.force_id}-{self.name}.log"

    def start(self) -> int:
        return processes.spawn(
            [sys.executable, "-m", self.module or f"peaceland.services.{self.name}"],
            log_file=self.log_file,
            pid_file=self.pid_file,
            env={**os.environ, **self.env},
        )

    def alive(self) -> bool:
        return processes.tracked(self.pid_file) is not None

    def pid(self) -> int | None:
        """The running process's pid, or None."""
        running = processes.tracked(self.pid_file)
        return running.pid if running else None

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM: finish the batch, commit, exit."""
        return processes.stop(self.pid_file, sig=signal.SIGTERM, timeout=timeout)

    def kill(self) -> bool:
        """SIGKILL: what a crash looks like; nothing is finished or committed."""
        return processes.stop(self.pid_file, sig=signal.SIGKILL, timeout=10)


def local_operator(
    endpoints: Endpoints,
    kubeconfig: Path,
    state_dir: Path,
    *,
    name: str = "operator",
    namespaces: list[str] | None = None,
    peering: str | None = None,
    **settings: str,
) -> ServiceProcess:
    """The operator as a process of this machine, logged in with ``kubeconfig``.

    ``settings`` are OperatorSettings fields (``drift_interval="5"``); a one-node Cassandra
    holds one copy of the control keyspace.
    """
    env = {
        **endpoints.environment(),  # the servers, signed in as the administrator
        "KUBECONFIG": str(kubeconfig),
        env_name("operator", "namespaces"): ",".join(namespaces or []),
        env_name("operator", "peering"): peering or "",
        env_name("operator", "health_port"): "0",
        env_name("operator", "metrics_port"): str(free_port()),
        env_name("operator", "claims_replication_factor"): "1",
        **{env_name("operator", key): value for key, value in settings.items()},
    }
    return ServiceProcess(name, "peaceland", env, state_dir, module="peaceland.operator")


#: The first platform admin of the local control plane.
LOCAL_ADMIN_EMAIL: Final = "admin@peaceland.local"


@dataclass(frozen=True, slots=True)
class ControlPlaneSecrets:
    """The local control plane's secrets, made once in ``<state>/credentials`` (0600)."""

    admin_email: str
    admin_password_file: Path
    gateway_token_file: Path

    @classmethod
    def of(cls, state_dir: Path) -> ControlPlaneSecrets:
        folder = state_dir / "credentials"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        files = (folder / "api-admin-password", folder / "gateway-token")
        for path in files:
            if not path.exists():
                partial = path.with_suffix(".partial")
                partial.touch(mode=0o600)
                partial.write_text(secrets.token_urlsafe(24))
                partial.replace(path)
        return cls(LOCAL_ADMIN_EMAIL, *files)


def local_api(
    endpoints: Endpoints,
    kubeconfig: Path,
    state_dir: Path,
    *,
    namespace: str,
    port: int,
    name: str = "api",
    lake_uri: str | None = None,
) -> ServiceProcess:
    """The control plane as a process of this machine: the stack's PostgreSQL, the forces of
    ``namespace`` on the API server ``kubeconfig`` reaches, one copy of everything (a
    one-node stack)."""
    made = ControlPlaneSecrets.of(state_dir)
    env = {
        env_name("api", "database_url"): endpoints.database_url,
        env_name("api", "namespace"): namespace,
        env_name("api", "kubeconfig"): str(kubeconfig),
        env_name("api", "port"): str(port),
        env_name("api", "gateway_token_file"): str(made.gateway_token_file),
        env_name("api", "bootstrap_admin_email"): made.admin_email,
        env_name("api", "bootstrap_admin_password_file"): str(made.admin_password_file),
        env_name("api", "kafka_replication_factor"): "1",
        env_name("api", "cassandra_replication_factor"): "1",
        # The forces' data, each read as the force's own identities (its Secret).
        env_name("api", "kafka_bootstrap_servers"): endpoints.kafka_bootstrap_servers,
        env_name("api", "cassandra_contact_points"): endpoints.cassandra_contact_points,
        env_name("api", "cassandra_local_dc"): endpoints.cassandra.local_dc,
    }
    if lake_uri is not None:  # the statistics and SQL routes read it
        env[env_name("api", "lake_uri")] = lake_uri
    return ServiceProcess(name, "peaceland", env, state_dir, module="peaceland.api")


def local_credentials(endpoints: Endpoints, force_id: str, state_dir: Path) -> ForceCredentials:
    """The identities of a force run here without the operator (the demo, the benchmarks,
    the fault tests): made once, kept in ``<state>/credentials/forces/<force>.json`` (0600),
    and made again on the servers, idempotently, each time. The force's keyspace must exist
    (its role is granted it)."""
    path = state_dir / "credentials" / "forces" / f"{force_id}.json"
    credentials = saved = None
    if path.exists():
        saved = json.loads(path.read_text())
        credentials = ForceCredentials.from_secret_data(force_id, saved)
    if credentials is None:
        credentials = ForceCredentials.generate(force_id, 0)
    if credentials.secret_data() != saved:  # new, or a role added since it was saved
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600)
        path.write_text(json.dumps(credentials.secret_data()))
    admin = AdminClient(client_config(endpoints.kafka))
    session = connect(endpoints.cassandra)
    try:
        ensure_identities(admin, session, credentials)
    finally:
        shutdown_session(session)
    return credentials


def credential_files(
    folder: Path, credentials: ForceCredentials, role: str, *, cassandra: bool = True
) -> dict[str, str]:
    """``role``'s credentials written as the files every process reads (``CREDENTIAL_FILES``,
    each readable by us only, as the operator's Deployments mount them); returns the
    variables that point the process at them. ``cassandra=False``: Kafka's only."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    values = {
        KAFKA_USERNAME: credentials.kafka[role].username,
        KAFKA_PASSWORD: credentials.kafka[role].password,
        CASSANDRA_USERNAME: credentials.cassandra.username,
        CASSANDRA_PASSWORD: credentials.cassandra.password,
    }
    env = credentials_environment(str(folder), cassandra=cassandra)
    for name, file in CREDENTIAL_FILES.items():
        if file_variable(name) in env:
            target = folder / file
            target.touch(mode=0o600)
            target.write_text(values[name])
    return env


@dataclass
class ForceServices:
    """The gateway, archiver and alerter of one force, each signed in as the force's own
    principal for its role."""

    endpoints: Endpoints
    force_id: str
    state_dir: Path
    #: A key for every drone of the force (the development harness); None: the gateway
    #: takes the keys the control plane issues (``control_plane``).
    drone_key: str | None
    credentials: ForceCredentials
    settings_file: Path | None = None
    #: The control plane's URL and the file of the gateways' token on it.
    control_plane: tuple[str, Path] | None = None
    gateway_port: int = field(default_factory=free_port)
    #: The services to run here (the consumers may run elsewhere: the local node).
    only: tuple[str, ...] = SERVICES
    processes: dict[str, ServiceProcess] = field(init=False)
    #: Restarts of each process after it exited by itself (see ``supervise``).
    restarts: Counter[str] = field(default_factory=Counter)
    #: The processes ``supervise`` restarts; a test may take one out to replace it itself.
    supervised: set[str] = field(default_factory=set)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _supervisor: threading.Thread | None = None

    def __post_init__(self) -> None:
        if self.drone_key is not None and self.control_plane is not None:
            raise NodeError(
                f"the gateway of {self.force_id} takes its keys from the control plane only: "
                "no harness key beside it"
            )
        kafka = self.endpoints.kafka_bootstrap_servers
        cassandra = self.endpoints.cassandra_contact_points
        folders = self.state_dir / "credentials" / "forces" / self.force_id
        consumers = {
            consumer: consumer_environment(
                consumer,
                self.force_id,
                kafka_bootstrap_servers=kafka,
                cassandra_contact_points=cassandra,
                metrics_port=free_port(),
                settings_file=str(self.settings_file)
                if consumer == "alerter" and self.settings_file is not None
                else None,
                instance=f"{self.force_id}-local" if consumer == "alerter" else None,
                cassandra_local_dc=self.endpoints.cassandra.local_dc,
            )
            | credential_files(folders / consumer, self.credentials, consumer)
            for consumer in CONSUMERS
        }
        gateway = {
            KAFKA_BOOTSTRAP_SERVERS: kafka,
            env_name("gateway", "port"): str(self.gateway_port),
        } | credential_files(folders / "gateway", self.credentials, "gateway", cassandra=False)
        if self.drone_key is not None:
            gateway[env_name("gateway", "drone_keys")] = json.dumps(
                {self.force_id: [self.drone_key]}
            )
        if self.control_plane is not None:
            gateway[env_name("gateway", "control_plane_url")] = self.control_plane[0]
            gateway[env_name("gateway", "control_plane_token_file")] = str(self.control_plane[1])
        envs = {"gateway": gateway, **consumers}
        self.processes = {
            name: ServiceProcess(name, self.force_id, envs[name], self.state_dir)
            for name in self.only
        }

    @property
    def harness_key(self) -> str:
        """The key that speaks for every drone of the force (the development harness)."""
        if self.drone_key is None:
            raise NodeError(f"the gateway of {self.force_id} takes the control plane's keys")
        return self.drone_key

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start every service that is not running, wait for the gateway to be ready, then
        keep them running (``supervise``)."""
        for process in self.processes.values():
            if not process.alive():
                process.start()
        self.wait_ready(timeout)
        self.supervise()

    def supervise(self, interval: float = 1.0) -> None:
        """Restart a process that exits by itself, as a kubelet restarts a container
        (restartPolicy Always): a consumer ends itself on a fatal error to be started afresh.
        """
        self.supervised = set(self.processes)

        def watch() -> None:
            while not self._stopping.wait(interval):
                for name in sorted(self.supervised):
                    process = self.processes[name]
                    if not self._stopping.is_set() and not process.alive():
                        self.restarts[name] += 1
                        process.start()

        self._supervisor = threading.Thread(target=watch, name="supervisor", daemon=True)
        self._supervisor.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_answering(
            self.gateway_url,
            list(self.processes.values()),
            self.processes["gateway"],
            f"the gateway of {self.force_id}",
            timeout,
        )

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 30 s) and forget its settings."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(10)
        for process in self.processes.values():
            process.stop()
        if self.settings_file is not None and self.settings_file.parent == (
            self.state_dir / "services"
        ):
            self.settings_file.unlink(missing_ok=True)


def start_force_services(
    endpoints: Endpoints,
    force: ForceResources,
    state_dir: Path,
    alerting: AlertingSettings,
    say: Say = lambda _: None,
) -> ForceServices:
    """The force's gateway, archiver and alerter, running and joined to their groups."""
    settings_file = state_dir / "services" / f"{force.force_id}.json"
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(
        ForceSettings(force_id=force.force_id, alerting=alerting).model_dump_json()
    )
    services = ForceServices(
        endpoints,
        force.force_id,
        state_dir,
        drone_key=secrets.token_urlsafe(24),
        credentials=local_credentials(endpoints, force.force_id, state_dir),
        settings_file=settings_file,
    )
    try:
        services.start()
        admin = AdminClient(client_config(endpoints.kafka))
        groups = [consumer_group(force.force_id, name) for name in CONSUMERS]
        _wait_groups(admin, groups, say)
    except BaseException:
        services.stop()  # nobody else holds them yet
        raise
    return services


def _wait_groups(admin: AdminClient, groups: list[str], say: Say, timeout: float = 60) -> None:
    """Until both consumer groups are stable (joined, partitions assigned): latency is then
    measured warm.

    Asks with ListGroups, not describe_consumer_groups: against a freshly started three-node
    cluster, librdkafka 2.16's ConsumerGroupDescribe retries aborted the whole process
    (a C-level abort) in CI.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            listed = admin.list_consumer_groups(request_timeout=10).result()
        except KafkaException as exc:
            if not is_transient(exc):
                raise
        else:
            states = {g.group_id: str(g.state) for g in listed.valid}
            if all(states.get(group, "").endswith("STABLE") for group in groups):
                say("archiver and alerter have joined their groups")
                return
        time.sleep(0.5)
    raise NodeError(f"consumer groups {groups} did not settle within {timeout}s")
