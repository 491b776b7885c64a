"""The operator's fixtures: a real API server, the chart's CRDs and RBAC, an operator process.

The operator runs as its own process, logged in as the chart's ServiceAccount, which has
exactly the rights the chart's RBAC gives it: a missing right fails these tests. Each test
gets a namespace of its own and an operator serving only that namespace.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient

from peaceland.node.launch import ServiceProcess, local_operator
from peaceland.stack import Endpoints, Stack
from peaceland.stack.gobuild import helm_binary
from peaceland.stack.kube import OPERATOR_NAMESPACE, KubeApiServer
from peaceland.tenants.forces import resources_for
from peaceland.tenants.provisioning.claims import release
from peaceland.tenants.provisioning.keyspace import drop_keyspace
from peaceland.tenants.provisioning.topics import delete_topics
from tests.operator.kube_helpers import ROOT, Kubectl

CHART = ROOT / "helm" / "peaceland-operator"


@pytest.fixture(scope="session")
def kubectl(kubernetes: KubeApiServer) -> Kubectl:
    return Kubectl(kubernetes.kubectl, kubernetes.kubeconfig)


@pytest.fixture(scope="session")
def helm(stack: Stack) -> Path:
    return helm_binary(stack.settings.cache_dir, stack.progress)


def render_chart(helm: Path, *values: str, release: str = "peaceland-operator") -> str:
    result = subprocess.run(
        [str(helm), "template", release, str(CHART), "--namespace",
         OPERATOR_NAMESPACE, *(a for v in values for a in ("--set", v))],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def chart(kubectl: Kubectl, helm: Path) -> None:
    """The chart's CRDs, and its ServiceAccount and RBAC, applied to the API server."""
    kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    if kubectl("get", "namespace", OPERATOR_NAMESPACE, check=False).returncode != 0:
        kubectl("create", "namespace", OPERATOR_NAMESPACE)
    kubectl("apply", "--server-side", "-f", "-", stdin=render_chart(helm))


@pytest.fixture
def namespace(
    kubectl: Kubectl, chart: None, kafka_admin: AdminClient, cassandra: Session
) -> Iterator[str]:
    """A namespace of this test's own; afterwards its forces and their data are gone."""
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
