"""Fixtures on the real servers of the local stack.

The session reuses a running stack (``peaceland stack up``) or an external one named by
``KAFKA_BOOTSTRAP_SERVERS`` / ``CASSANDRA_CONTACT_POINTS`` / ``DATABASE_URL``, and otherwise
starts the local stack and stops, at the end, what it started. Each test that asks for a
force gets a police force of its own (topics and keyspace), and each that asks for a
database gets a PostgreSQL database of its own: tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import psycopg
import pytest
from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient

from peaceland.analytics.lake import ArrowStorage, open_storage
from peaceland.node.launch import ServiceProcess, local_operator
from peaceland.stack import Endpoints, Stack, StackSettings
from peaceland.stack.gobuild import helm_binary
from peaceland.stack.kube import LOCAL_NAMESPACE, OPERATOR_NAMESPACE, KubeApiServer
from peaceland.tenants.cassandra import connect, shutdown_session
from peaceland.tenants.forces import ForceResources, resources_for
from peaceland.tenants.kafka import client_config
from peaceland.tenants.provisioning.claims import ensure_claims_table, release
from peaceland.tenants.provisioning.keyspace import Replication, drop_keyspace, ensure_keyspace
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics
from tests.operator.kube_helpers import ROOT, Kubectl


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that reaches the local stack (through any fixture) ``servers``:
    ``make test-fast`` runs the others, in seconds, with no server started."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.servers)


def _progress(message: str) -> None:
    # Past pytest's capture: fetching servers the first time takes a while, say so.
    print(f"[stack] {message}", file=sys.__stderr__, flush=True)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    stack = Stack(StackSettings(), progress=_progress)
    started = stack.up()
    yield stack
    if started:
        _progress(f"stopping what this test session started: {', '.join(started)}")
        stack.down(started)


@pytest.fixture(scope="session")
def kubernetes(stack: Stack) -> Iterator[KubeApiServer]:
    """The stack's API server (built from source the first time: about 5 minutes)."""
    started = stack.up(["etcd", "kube-apiserver"])
    yield stack.kube_apiserver
    if started:
        stack.down(started)


@pytest.fixture(scope="session")
def endpoints(stack: Stack) -> Endpoints:
    return stack.endpoints()


@pytest.fixture(scope="session")
def kafka_admin(endpoints: Endpoints) -> AdminClient:
    return AdminClient(client_config(endpoints.kafka))


@pytest.fixture(scope="session")
def cassandra(endpoints: Endpoints) -> Iterator[Session]:
    session = connect(endpoints.cassandra)
    yield session
    shutdown_session(session)


@pytest.fixture
def force(kafka_admin: AdminClient, cassandra: Session) -> Iterator[ForceResources]:
    """A police force of this test's own: its topics (3 partitions) and its keyspace."""
    resources = resources_for(f"t-{uuid.uuid4().hex[:12]}")
    ensure_topics(kafka_admin, resources, TopicSettings(partitions=3))
    ensure_keyspace(cassandra, resources.keyspace, Replication())
    yield resources
    delete_topics(kafka_admin, resources)
    drop_keyspace(cassandra, resources.keyspace)


@pytest.fixture
def s3_lake(endpoints: Endpoints) -> Iterator[ArrowStorage]:
    """A lake of its own under the stack's S3 bucket, as the store's administrator sees it
    (its URI: ``s3_lake.uri``); removed afterwards, its folder too."""
    access = endpoints.s3
    assert access is not None
    storage = open_storage(
        access.lake_uri(f"test-{uuid.uuid4().hex[:8]}"),
        s3_keys=(access.access_key, access.secret_key),
    )
    assert isinstance(storage, ArrowStorage)
    yield storage
    with contextlib.suppress(FileNotFoundError):
        storage.filesystem.delete_dir(storage.root)


@pytest.fixture
def database_url(endpoints: Endpoints) -> Iterator[str]:
    """The URL of a PostgreSQL database of this test's own, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield urlsplit(endpoints.database_url)._replace(path=f"/{name}").geturl()
    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# ------------------------------------------------ Kubernetes: the chart, namespaces, operators
CHART = ROOT / "helm" / "peaceland"


@pytest.fixture(scope="session")
def kubectl(kubernetes: KubeApiServer) -> Kubectl:
    return Kubectl(kubernetes.kubectl, kubernetes.kubeconfig)


@pytest.fixture(scope="session")
def helm(stack: Stack) -> Path:
    return helm_binary(stack.settings.cache_dir, stack.progress)


#: What an install must name beyond the defaults: the forces' namespace, the Secrets of the
#: operator's credentials, of the control plane's database, of the gateways' token on it,
#: of the gateway's own Kafka principal.
CHART_REQUIRED: Final = (
    f"api.forcesNamespace={LOCAL_NAMESPACE}",
    "kafka.existingSecret=kafka-operator",
    "cassandra.existingSecret=cassandra-operator",
    "api.database.existingSecret=peaceland-database",
    "api.gatewayToken.existingSecret=peaceland-gateway-token",
    "gateway.kafka.existingSecret=kafka-gateway",
)


def render_chart(helm: Path, *values: str, release: str = "peaceland") -> str:
    result = subprocess.run(
        [str(helm), "template", release, str(CHART), "--namespace",
         OPERATOR_NAMESPACE, *(a for v in (*CHART_REQUIRED, *values) for a in ("--set", v))],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def chart(kubectl: Kubectl, helm: Path) -> None:
    """The chart's CRDs, and its ServiceAccount and RBAC, applied to the API server."""
    kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    for namespace in (OPERATOR_NAMESPACE, LOCAL_NAMESPACE):  # the release's, the forces'
        if kubectl("get", "namespace", namespace, check=False).returncode != 0:
            kubectl("create", "namespace", namespace)
    # An older chart's Roles in the release's namespace (the forces once lived there): gone.
    kubectl("delete", "role,rolebinding", "-n", OPERATOR_NAMESPACE, "--ignore-not-found",
            "-l", "app.kubernetes.io/name=peaceland")  # fmt: skip
    kubectl("apply", "--server-side", "-f", "-", stdin=render_chart(helm))


@pytest.fixture
def namespace(
    kubectl: Kubectl, chart: None, kafka_admin: AdminClient, cassandra: Session
) -> Iterator[str]:
    """A namespace of this test's own; afterwards its forces and their data are gone."""
    # The claims' table, as any operator makes it at start: a test that starts none (its
    # forces made with kubectl) still releases their names afterwards.
    ensure_claims_table(cassandra, replication_factor=1)
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", name)
    yield name
    listed = json.loads(kubectl("get", "policeforces", "-n", name, "-o", "json").stdout)
    for item in listed["items"]:
        force = item["metadata"]["name"]
        # The test's operator is gone by now: release the finalizer ourselves.
        kubectl("patch", "policeforce", force, "-n", name, "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}')  # fmt: skip
        kubectl("delete", "policeforce", force, "-n", name, "--wait=false")
        resources = resources_for(force)
        delete_topics(kafka_admin, resources)
        drop_keyspace(cassandra, resources.keyspace)
        release(cassandra, force, f"{name}/{force}")
    # No garbage collector runs: delete what the forces owned, then the namespace, which
    # stays Terminating without a controller-manager (empty and harmless).
    kubectl("delete", "deployments,configmaps", "-n", name, "--all", "--wait=false")
    kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def start_operator(
    kubernetes: KubeApiServer, endpoints: Endpoints, stack: Stack, namespace: str
) -> Iterator[Callable[..., ServiceProcess]]:
    """Start an operator serving the test's namespace; every one is stopped afterwards."""
    started: list[ServiceProcess] = []

    def start(
        name: str = "operator", namespaces: list[str] | None = None, **settings: str
    ) -> ServiceProcess:
        defaults = {"poll_interval": "0.5", "drift_interval": "3", "retry_max_delay": "4"}
        process = local_operator(
            endpoints,
            kubernetes.operator_kubeconfig,
            stack.settings.state_dir,
            name=f"{namespace}-{name}",
            namespaces=namespaces or [namespace],
            **{**defaults, **settings},
        )
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop(timeout=15)
