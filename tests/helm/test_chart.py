"""The Helm chart: it lints, it renders, and the real API server accepts what it renders."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from pydantic_settings import BaseSettings

from peaceland.api.settings import ApiSettings
from peaceland.operator.settings import OperatorSettings
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.stack.kube import LOCAL_NAMESPACE, OPERATOR_NAMESPACE, KubeApiServer
from peaceland.tenants.provisioning.lake_identities import S3Key
from tests.conftest import CHART, CHART_REQUIRED, render_chart
from tests.operator.kube_helpers import Kubectl, example


def test_the_chart_passes_helm_lint(helm: Path):
    result = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


#: A whole install against managed servers: every Secret named, TLS, a lake on S3.
_PRODUCTION = [
    "kafka.existingSecret=kafka-operator",
    "cassandra.existingSecret=cassandra-operator",
    "kafka.tls.caSecret=kafka-ca",
    "api.bootstrapAdmin.email=admin@police.example",
    "api.bootstrapAdmin.existingSecret=peaceland-admin",
    "api.gatewayToken.existingSecret=peaceland-gateway-token",
    "api.dashboardStyleUrl=https://tiles.police.example/style.json",
    "lake.uri=s3://lake/prod",
    "lake.existingSecret=lake-admin",
]


@pytest.mark.parametrize(
    ("values", "kinds"),
    [
        ([], {"Service", "Role", "RoleBinding", "NetworkPolicy", "PodDisruptionBudget"}),
        (_PRODUCTION, {"Service", "Role", "RoleBinding", "NetworkPolicy", "PodDisruptionBudget"}),
        (
            ["replicas=1", "api.replicas=1", "gateway.replicas=1", "operator.peering="],
            {"Service", "Role", "RoleBinding", "NetworkPolicy"},
        ),
        (
            ["api.enabled=false", "gateway.enabled=false", "networkPolicy.enabled=false"],
            {"PodDisruptionBudget"},
        ),
    ],
    ids=["defaults", "production", "one-replica-no-peering", "operator-only"],
)
def test_the_rendered_chart_passes_a_server_side_dry_run(
    values: list[str], kinds: set[str], helm: Path, kubectl: Kubectl, chart: None
):
    rendered = render_chart(helm, *values)
    result = kubectl("apply", "--dry-run=server", "-f", "-", stdin=rendered, check=False)
    assert result.returncode == 0, result.stderr
    rendered_kinds = {d["kind"] for d in yaml.safe_load_all(rendered) if d}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"} <= rendered_kinds
    optional = {"Service", "Role", "RoleBinding", "NetworkPolicy", "PodDisruptionBudget"}
    assert rendered_kinds & optional == kinds


def test_serving_listed_namespaces_binds_the_forces_rights_in_those_only(
    helm: Path, kubectl: Kubectl, namespace: str
):
    rendered = render_chart(
        helm, f"watchNamespaces={{{namespace}}}", f"api.forcesNamespace={namespace}"
    )
    result = kubectl("apply", "--dry-run=server", "-f", "-", stdin=rendered, check=False)
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    bindings = [
        d for d in documents
        if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-operator")
    ]  # fmt: skip
    assert [b["metadata"]["namespace"] for b in bindings] == [namespace]
    cluster_bound = {d["roleRef"]["name"] for d in documents if d["kind"] == "ClusterRoleBinding"}
    assert cluster_bound == {"peaceland-operator-cluster"}
    peering = [d for d in documents if d["kind"] == "KopfPeering"]
    assert [p["metadata"]["namespace"] for p in peering] == [namespace]


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("kafka.password=s3cret", "kafka.existingSecret"),
        ("cassandra.username=operator", "cassandra.existingSecret"),
        ("api.database.url=postgresql://u:s3cret@db/peaceland", "api.database.existingSecret"),
        ("api.bootstrapAdmin.password=s3cret", "api.bootstrapAdmin.existingSecret"),
        ("api.gatewayToken.token=s3cret", "api.gatewayToken.existingSecret"),
    ],
)
def test_a_credential_given_as_a_value_is_refused_naming_the_secret_to_use(
    value: str, named: str, helm: Path
):
    result = subprocess.run(
        [str(helm), "template", "x", str(CHART), *(a for v in (*CHART_REQUIRED, value)
                                                  for a in ("--set", v))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "not a value" in result.stderr or "not values" in result.stderr
    assert named in result.stderr
    assert "s3cret" not in result.stderr


def test_every_credential_reaches_the_processes_as_a_secret_reference(helm: Path):
    documents = [d for d in yaml.safe_load_all(render_chart(helm, *_PRODUCTION)) if d]
    assert not [d for d in documents if d["kind"] == "Secret"]  # the chart makes none
    for deployment in (d for d in documents if d["kind"] == "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        [container] = spec["containers"]
        mounted = {m["mountPath"] for m in container.get("volumeMounts", [])}
        for item in container["env"]:
            name = item["name"]
            if any(word in name for word in ("PASSWORD", "DATABASE_URL", "SECRET", "TOKEN")):
                if name.endswith("_FILE"):  # a file of a mounted Secret
                    assert str(Path(item["value"]).parent) in mounted, name
                else:
                    assert "secretKeyRef" in item["valueFrom"], name
            elif item.get("value", "").startswith("/etc/peaceland/"):
                assert str(Path(item["value"]).parent) in mounted, name
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


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
    answer = operator("auth", "can-i", verb, *_resource(resource), "--all-namespaces",
                      check=False)  # fmt: skip
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


def _environment(
    helm: Path, monkeypatch: pytest.MonkeyPatch, values: list[str], deployment: str
) -> dict[str, tuple[str, str]]:
    """The environment the chart rendered with ``values`` gives ``deployment``'s process
    (a Secret's value read as ``from <secret>``), set in this test's; returns the variables
    read from Secrets: (Secret, key) by name."""
    references = {}
    rendered = render_chart(helm, *values)
    found = next(
        d for d in yaml.safe_load_all(rendered)
        if d and d["kind"] == "Deployment" and d["metadata"]["name"] == deployment
    )  # fmt: skip
    for item in found["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in item:
            monkeypatch.setenv(item["name"], item["value"])
        elif "secretKeyRef" in item.get("valueFrom", {}):
            reference = item["valueFrom"]["secretKeyRef"]
            monkeypatch.setenv(item["name"], f"from {reference['name']}")
            references[item["name"]] = (reference["name"], reference["key"])
    return references


def _operator_settings(
    helm: Path, monkeypatch: pytest.MonkeyPatch, values: list[str]
) -> OperatorSettings:
    """The operator's settings as the chart rendered with ``values`` gives them."""
    _environment(helm, monkeypatch, values, "peaceland-operator")
    return OperatorSettings()


def test_the_control_plane_s_settings_come_from_the_chart_values(
    helm: Path, monkeypatch: pytest.MonkeyPatch
):
    references = _environment(helm, monkeypatch, _PRODUCTION, "peaceland-api")
    assert references == {"PEACELAND_API_DATABASE_URL": ("peaceland-database", "url")}
    monkeypatch.setenv("PEACELAND_API_DATABASE_URL", "postgresql://api:pw@db:5432/peaceland")
    settings = ApiSettings()
    assert settings.namespace == LOCAL_NAMESPACE
    # The forces' principals sign in as the operator's do.
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.data_servers() is not None
    assert settings.data_servers()[0].protocol == "SASL_SSL"  # type: ignore[index]
    assert settings.lake_mirror_dir == Path("/var/cache/peaceland/lake-mirror")
    assert (settings.analytics_concurrency, settings.analytics_memory_mb) == (2, 1024)
    assert settings.host == "0.0.0.0"
    assert settings.bootstrap_admin_email == "admin@police.example"
    assert settings.gateway_token_file == Path("/etc/peaceland/gateway-token/token")
    assert settings.consumer_image == "peaceland/services:0.1.0"
    assert settings.kafka_replication_factor == settings.cassandra_replication_factor == 3
    assert settings.lake_uri == "s3://lake/prod"
    assert settings.kafka_ssl_ca_location == Path("/etc/peaceland/kafka-ca/ca.crt")


def test_the_control_plane_s_forces_can_live_in_a_namespace_of_their_own(
    helm: Path, monkeypatch: pytest.MonkeyPatch
):
    documents = [
        d for d in yaml.safe_load_all(render_chart(helm, "api.forcesNamespace=forces")) if d
    ]
    roles = [d for d in documents if d["kind"] == "Role"]
    bindings = [d for d in documents if d["kind"] == "RoleBinding"]
    assert {r["metadata"]["name"] for r in roles} == {"peaceland-api", "peaceland-gateway"}
    assert {d["metadata"]["namespace"] for d in roles + bindings} == {"forces"}
    assert {b["subjects"][0]["namespace"] for b in bindings} == {OPERATOR_NAMESPACE}
    _environment(helm, monkeypatch, ["api.forcesNamespace=forces"], "peaceland-api")
    monkeypatch.setenv("PEACELAND_API_DATABASE_URL", "postgresql://api:pw@db:5432/peaceland")
    assert ApiSettings().namespace == "forces"
    _environment(helm, monkeypatch, ["api.forcesNamespace=forces"], "peaceland-gateway")
    assert GatewaySettings().force_credentials_namespace == "forces"


def test_the_gateway_s_settings_come_from_the_chart_values(
    helm: Path, monkeypatch: pytest.MonkeyPatch
):
    references = _environment(helm, monkeypatch, _PRODUCTION, "peaceland-gateway")
    assert references == {
        "KAFKA_USERNAME": ("kafka-gateway", "username"),
        "KAFKA_PASSWORD": ("kafka-gateway", "password"),
    }
    settings = GatewaySettings()
    assert settings.control_plane_url == f"http://peaceland-api.{OPERATOR_NAMESPACE}.svc:8090"
    assert settings.control_plane_token_file == Path("/etc/peaceland/gateway-token/token")
    assert settings.force_credentials_namespace == LOCAL_NAMESPACE
    assert settings.drone_keys == {}  # its keys come from the control plane only
    assert settings.host == "0.0.0.0"
    assert settings.kafka_ssl_ca_location == Path("/etc/peaceland/kafka-ca/ca.crt")


_GATEWAY, _API = "peaceland-gateway", "peaceland-api"


@pytest.mark.parametrize(
    ("account", "verb", "resource", "namespace", "allowed"),
    [
        # Each force's reports go as its own principal, from its Secret read by name.
        (_GATEWAY, "get", "secrets", LOCAL_NAMESPACE, True),
        (_GATEWAY, "list", "secrets", LOCAL_NAMESPACE, False),
        (_GATEWAY, "watch", "secrets", LOCAL_NAMESPACE, False),
        (_GATEWAY, "get", "policeforces.peaceland.io", LOCAL_NAMESPACE, False),
        # A force sold, changed, read and ended through the API: its PoliceForce.
        (_API, "create", "policeforces.peaceland.io", LOCAL_NAMESPACE, True),
        (_API, "patch", "policeforces.peaceland.io", LOCAL_NAMESPACE, True),
        (_API, "delete", "policeforces.peaceland.io", LOCAL_NAMESPACE, True),
        (_API, "list", "policeforces.peaceland.io", LOCAL_NAMESPACE, True),
        # A force's credentials, read by name to read its data as its own principals.
        (_API, "get", "secrets", LOCAL_NAMESPACE, True),
        (_API, "list", "secrets", LOCAL_NAMESPACE, False),
        (_API, "patch", "policeforces.peaceland.io/status", LOCAL_NAMESPACE, False),
        (_API, "create", "deployments.apps", LOCAL_NAMESPACE, False),
        (_API, "get", "pods", LOCAL_NAMESPACE, False),
        # Never the platform's own Secrets (the operator's superuser credentials), nor
        # another namespace's.
        (_GATEWAY, "get", "secrets", OPERATOR_NAMESPACE, False),
        (_API, "get", "secrets", OPERATOR_NAMESPACE, False),
        (_GATEWAY, "get", "secrets", "default", False),
        (_API, "get", "secrets", "default", False),
        (_API, "patch", "policeforces.peaceland.io", "default", False),
    ],
)  # fmt: skip
def test_the_charts_rbac_gives_the_gateway_and_the_control_plane_what_they_need_only(
    account: str, verb: str, resource: str, namespace: str, allowed: bool, kubectl: Kubectl,
    chart: None,
):  # fmt: skip
    answer = kubectl(
        "auth", "can-i", verb, *_resource(resource), "-n", namespace,
        f"--as=system:serviceaccount:{OPERATOR_NAMESPACE}:{account}", check=False,
    )  # fmt: skip
    assert answer.stdout.strip() == ("yes" if allowed else "no"), answer.stderr


def test_each_process_takes_connections_on_its_own_ports_only_and_keeps_one_replica_up(
    helm: Path,
):
    documents = [d for d in yaml.safe_load_all(render_chart(helm)) if d]
    policies = [d for d in documents if d["kind"] == "NetworkPolicy"]
    budgets = [d for d in documents if d["kind"] == "PodDisruptionBudget"]
    for deployment in (d for d in documents if d["kind"] == "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]

        def selects(selector: dict[str, dict[str, str]], labels: dict[str, str] = labels) -> bool:
            return selector["matchLabels"].items() <= labels.items()

        [policy] = [p for p in policies if selects(p["spec"]["podSelector"])]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        served = {p["containerPort"] for p in container["ports"] if p["name"] != "health"}
        assert {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]} == served
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        [budget] = [b for b in budgets if selects(b["spec"]["selector"])]
        assert budget["spec"]["minAvailable"] == 1
        assert deployment["spec"]["replicas"] == 2


def _resource(resource: str) -> list[str]:
    """``kubectl auth can-i``'s arguments for ``resource``, ``resources/subresource``
    included (given as is, ``can-i`` reads the part after the slash as an object's name)."""
    kind, _, subresource = resource.partition("/")
    return [kind, f"--subresource={subresource}"] if subresource else [kind]


def test_the_control_plane_sells_and_ends_a_force_with_the_charts_rights_alone(
    kubectl: Kubectl, chart: None
):
    """The API's own calls, as its ServiceAccount: a new force written by server-side apply
    (checked as a create), and deleted (server-side dry runs: authorised, never kept)."""
    manifest = example("brest")
    manifest["metadata"] = {"name": "rbac-probe", "namespace": LOCAL_NAMESPACE}
    force = json.dumps(manifest)

    def apply_as(account: str) -> subprocess.CompletedProcess[str]:
        return kubectl(
            "apply", "--server-side", "--field-manager=peaceland-api", "--dry-run=server",
            f"--as=system:serviceaccount:{OPERATOR_NAMESPACE}:{account}", "-f", "-",
            stdin=force, check=False,
        )  # fmt: skip

    sold = apply_as("peaceland-api")
    assert sold.returncode == 0, sold.stderr
    # The same as the gateway, which has no right on forces: refused by the server.
    refused = apply_as("peaceland-gateway")
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ([f"api.forcesNamespace={OPERATOR_NAMESPACE}"], "must not be the release's namespace"),
        (["watchNamespaces={police}"], "is not among watchNamespaces"),
        (["api.resources.limits.memory=2Gi"], "cannot hold 2 analysts' questions"),
        (["lake.uri=s3://AK:s3cret@lake/prod", "lake.existingSecret=lake-admin"],
         "must not hold a key"),
        (["kafka.existingSecret="], "kafka.existingSecret is required"),
    ],
)  # fmt: skip
def test_an_install_that_could_not_work_or_would_leak_is_refused_when_rendered(
    values: list[str], reason: str, helm: Path
):
    result = subprocess.run(
        [str(helm), "template", "x", str(CHART), "--namespace", OPERATOR_NAMESPACE,
         *(a for v in (*CHART_REQUIRED, *values) for a in ("--set", v))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert reason in result.stderr
    assert "s3cret" not in result.stderr


@pytest.mark.parametrize(
    ("deployment", "settings"),
    [
        ("peaceland-operator", OperatorSettings),
        ("peaceland-api", ApiSettings),
        ("peaceland-gateway", GatewaySettings),
    ],
)
def test_every_setting_the_chart_renders_is_one_its_process_reads(
    deployment: str, settings: type[BaseSettings], helm: Path
):
    """A misspelt variable would be ignored by the process (and the default taken)."""
    documents = yaml.safe_load_all(render_chart(helm, *_PRODUCTION))
    found = next(
        d for d in documents
        if d and d["kind"] == "Deployment" and d["metadata"]["name"] == deployment
    )  # fmt: skip
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = {f"{prefix}{name}".upper() for name in settings.model_fields} | {
        f"{name}".upper() for name in settings.model_fields
    }
    rendered = {e["name"] for e in found["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert rendered - names == set()
