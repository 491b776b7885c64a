"""The consumers' pods meet the "restricted" Pod Security Standard, as the API server's
own PodSecurity admission judges it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import yaml

from peaceland.tenants.policeforce import spec_from
from peaceland.tenants.workloads import CONSUMERS, LAKE, consumer_deployment
from tests.operator.kube_helpers import EXAMPLES, Kubectl


@pytest.fixture
def restricted_namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"restricted-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


@pytest.mark.parametrize("consumer", [*CONSUMERS, LAKE])
def test_a_consumer_pod_is_admitted_where_the_restricted_standard_is_enforced(
    kubectl: Kubectl, restricted_namespace: str, consumer: str
):
    brest = yaml.safe_load((EXAMPLES / "brest.yaml").read_text())
    deployment = consumer_deployment(
        "brest",
        str(uuid.uuid4()),
        spec_from(brest["spec"]),
        consumer,
        kafka_bootstrap_servers="kafka:9092",
        cassandra_contact_points="cassandra:9042",
        lake_uri="s3://lake" if consumer == LAKE else None,
    )
    template = deployment["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"brest-{consumer}-0", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }
    # A server-side dry run goes through admission, PodSecurity included, and stores nothing.
    result = kubectl(
        "create", "--dry-run=server", "-n", restricted_namespace, "-f", "-",
        stdin=json.dumps(pod), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    container = pod["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
