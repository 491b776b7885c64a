"""The Helm chart: it lints, it renders, and the real API server accepts what it renders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from peaceland.operator.settings import OperatorSettings
from peaceland.stack.kube import KubeApiServer
from peaceland.tenants.provisioning.lake_identities import S3Key
from tests.conftest import CHART, render_chart
from tests.operator.kube_helpers import Kubectl


def test_the_chart_passes_helm_lint(helm: Path):
    result = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["kafka.username=operator", "kafka.password=s3cret", "cassandra.existingSecret=cass"],
        ["replicas=1", "operator.peering="],
    ],
    ids=["defaults", "credentials", "one-replica-no-peering"],
)
def test_the_rendered_chart_passes_a_server_side_dry_run(
    values: list[str], helm: Path, kubectl: Kubectl, chart: None
):
    rendered = render_chart(helm, *values)
    result = kubectl("apply", "--dry-run=server", "-f", "-", stdin=rendered, check=False)
    assert result.returncode == 0, result.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(rendered) if d}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"} <= kinds


def test_serving_listed_namespaces_binds_the_forces_rights_in_those_only(
    helm: Path, kubectl: Kubectl, namespace: str
):
    rendered = render_chart(helm, f"watchNamespaces={{{namespace}}}")
    result = kubectl("apply", "--dry-run=server", "-f", "-", stdin=rendered, check=False)
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    bindings = [d for d in documents if d["kind"] == "RoleBinding"]
    assert [b["metadata"]["namespace"] for b in bindings] == [namespace]
    cluster_bound = {d["roleRef"]["name"] for d in documents if d["kind"] == "ClusterRoleBinding"}
    assert cluster_bound == {"peaceland-operator-cluster"}
    peering = [d for d in documents if d["kind"] == "KopfPeering"]
    assert [p["metadata"]["namespace"] for p in peering] == [namespace]


def test_the_operator_gets_its_credentials_from_secrets_never_in_plain_env(helm: Path):
    rendered = render_chart(helm, "kafka.username=operator", "kafka.password=s3cret")
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "password"
    assert "s3cret" not in yaml.safe_dump(deployment)
    secret = next(d for d in documents if d["kind"] == "Secret")
    assert secret["stringData"]["password"] == "s3cret"


def test_a_username_without_a_password_fails_rendering_with_the_value_named(helm: Path):
    result = subprocess.run(
        [str(helm), "template", "x", str(CHART), "--set", "kafka.username=operator"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "kafka.password is required with kafka.username" in result.stderr


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("patch", "policeforces.peaceland.io/status", True),
        ("create", "deployments.apps", True),
        # Each force's credentials: the operator writes them (and only it reads them back).
        ("patch", "secrets", True),
        ("list", "secrets", False),
        ("get", "pods", False),
        ("list", "pods", False),
        ("delete", "namespaces", False),
        ("create", "clusterroles.rbac.authorization.k8s.io", False),
    ],
)
def test_the_charts_rbac_gives_the_operator_what_it_needs_and_nothing_more(
    verb: str, resource: str, allowed: bool, kubernetes: KubeApiServer, chart: None
):
    operator = Kubectl(kubernetes.kubectl, kubernetes.operator_kubeconfig)
    answer = operator("auth", "can-i", verb, resource, "--all-namespaces", check=False)
    assert answer.stdout.strip() == ("yes" if allowed else "no"), answer.stderr


@pytest.mark.parametrize(
    ("values", "images", "partitions"),
    [
        ([], ["peaceland/services"], 96),
        (
            ["forces.allowedImages={registry.example/pl/services,peaceland/services}",
             "forces.limits.partitions=12"],
            ["registry.example/pl/services", "peaceland/services"],
            12,
        ),
        # A private registry's image: forces leaving the image unset (the CRD's default)
        # keep working.
        (
            ["image.repository=registry.corp/peaceland/services"],
            ["registry.corp/peaceland/services", "peaceland/services"],
            96,
        ),
    ],
    ids=["defaults", "chosen", "private-registry"],
)  # fmt: skip
def test_what_forces_may_ask_is_the_operator_s_setting_from_chart_values(
    helm: Path, monkeypatch: pytest.MonkeyPatch, values: list[str], images: list[str],
    partitions: int,
):  # fmt: skip
    settings = _operator_settings(helm, monkeypatch, values)
    assert settings.allowed_images == images
    assert settings.max_partitions == partitions
    assert settings.max_kafka_retention_hours == 720
    assert settings.max_replicas == 24


@pytest.mark.parametrize(
    ("values", "consumers"),
    [
        ([], ("archiver", "alerter")),
        (
            [
                "lake.uri=s3://lake/prod",
                "lake.existingSecret=lake-admin",
                "lake.iamEndpoint=https://iam.amazonaws.com",
            ],
            ("archiver", "alerter", "lake"),
        ),
    ],
    ids=["no-lake", "lake"],
)
def test_a_lake_in_the_chart_values_gives_every_force_its_lake_consumer(
    helm: Path, monkeypatch: pytest.MonkeyPatch, values: list[str], consumers: tuple[str, ...]
):
    settings = _operator_settings(helm, monkeypatch, values)
    assert settings.consumers == consumers
    assert settings.lake_uri == (values[0].split("=", 1)[1] if values else None)
    if values:  # the store's administrator, from the Secret named
        assert settings.lake_admin_key() == S3Key("from lake-admin", "from lake-admin")
        assert settings.lake_iam_endpoint == "https://iam.amazonaws.com"


def test_an_s3_lake_without_its_stores_administrator_is_refused_when_rendered(helm: Path):
    with pytest.raises(AssertionError, match=r"lake\.existingSecret is required"):
        render_chart(helm, "lake.uri=s3://lake/prod")


def _operator_settings(
    helm: Path, monkeypatch: pytest.MonkeyPatch, values: list[str]
) -> OperatorSettings:
    """The operator's settings as the chart rendered with ``values`` gives them."""
    rendered = render_chart(helm, *values)
    deployment = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment")
    for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in item:
            monkeypatch.setenv(item["name"], item["value"])
        elif "secretKeyRef" in item.get("valueFrom", {}):
            monkeypatch.setenv(item["name"], f"from {item['valueFrom']['secretKeyRef']['name']}")
    return OperatorSettings()
