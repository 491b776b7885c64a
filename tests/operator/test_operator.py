"""The operator on a real API server, with the real Kafka and Cassandra of the stack."""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource

from peaceland.node.launch import ServiceProcess
from peaceland.stack import Endpoints, Stack
from peaceland.stack.servers import Cassandra
from peaceland.tenants.forces import consumer_group, resources_for
from peaceland.tenants.provisioning.claims import CONTROL_KEYSPACE
from peaceland.tenants.provisioning.identities import (
    ForceCredentials,
    cassandra_generations,
    kafka_generations,
)
from peaceland.tenants.provisioning.keyspace import drop_keyspace, schema_version
from peaceland.tenants.provisioning.quotas import PRODUCE_BYTES_PER_REPORT, quota_admin, quotas_of
from peaceland.tenants.provisioning.topics import delete_topics, partition_count
from peaceland.tenants.reports import encode_report
from peaceland.tenants.workloads import decode_secret_data
from tests.factories import make_report
from tests.kafka_helpers import commit_to_end, produce, signs_in, wait_until
from tests.operator.kube_helpers import Kubectl, eventually, example

StartOperator = Callable[..., ServiceProcess]


def _ready(kubectl: Kubectl, name: str, namespace: str, timeout: float = 30) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        force = kubectl.force(name, namespace)
        return force if (force.get("status") or {}).get("phase") == "Ready" else None

    return eventually(probe, timeout, f"{namespace}/{name} to be Ready")


def _topic_config(admin: AdminClient, topic: str, key: str) -> str:
    future = admin.describe_configs([ConfigResource("topic", topic)])
    return str(next(iter(future.values())).result()[key].value)


def _keyspace_exists(cassandra: Session, keyspace: str) -> bool:
    row = cassandra.execute(
        "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
    ).one()
    return row is not None


def _renamed(name: str) -> dict[str, Any]:
    """The brest example under a name of this test's own."""
    manifest = copy.deepcopy(example("brest"))
    manifest["metadata"]["name"] = f"f{uuid.uuid4().hex[:8]}"
    return manifest


def _a_ready_force(kubectl: Kubectl, namespace: str, **spec: Any) -> tuple[dict[str, Any], str]:
    """A force like brest, of a name of its own, applied and Ready; its manifest and name."""
    manifest = _renamed("brest")
    manifest["spec"] |= spec
    name = manifest["metadata"]["name"]
    kubectl.apply(manifest, namespace)
    kubectl.mark_available(name, namespace)
    _ready(kubectl, name, namespace)
    return manifest, name


@pytest.mark.parametrize("name", ["brest", "lyon-metropole"])
def test_an_example_force_becomes_ready_with_topics_keyspace_and_consumers_as_its_spec_says(
    name: str,
    kubectl: Kubectl,
    namespace: str,
    start_operator: StartOperator,
    kafka_admin: AdminClient,
    cassandra: Session,
    endpoints: Endpoints,
):
    # A force of this name from an earlier run (lyon-metropole retains its data) would make
    # this one adopt its topics and keyspace: start from none, as a new force does.
    resources = resources_for(name)
    delete_topics(kafka_admin, resources)
    drop_keyspace(cassandra, resources.keyspace)
    cassandra.execute(f"DELETE FROM {CONTROL_KEYSPACE}.force_claims WHERE force_id = %s", (name,))
    wait_until(
        lambda: not set(resources.topics) & set(kafka_admin.list_topics(timeout=10).topics),
        30,
        "earlier topics of that name to be gone",
    )
    start_operator()
    manifest = example(name)
    spec = manifest["spec"]
    kubectl("apply", "-n", namespace, "-f", f"tenants/examples/{name}.yaml")
    kubectl.mark_available(name, namespace)
    force = _ready(kubectl, name, namespace)

    status = force["status"]
    assert status["observedGeneration"] == force["metadata"]["generation"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "TopicsReady": "True",
        "KeyspaceReady": "True",
        "CredentialsReady": "True",
        "ConsumersReady": "True",
        "ConsumersProgressing": "True",
        "Ready": "True",
    }
    # The force's identities exist on both servers, and its Secret holds them.
    secret = kubectl.get("secret", f"{name}-credentials", namespace)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == force["metadata"]["uid"]
    assert kafka_generations(kafka_admin, name) == {0}
    assert cassandra_generations(cassandra, name) == {0}
    # The gateway's producer may write what the plan bought, throttled above it.
    quotas = quota_admin(endpoints.kafka)
    try:
        bought = spec["plan"]["maxReportsPerSecond"] * PRODUCE_BYTES_PER_REPORT
        assert quotas_of(quotas, f"{name}.gateway.g0") == {"producer_byte_rate": bought}
    finally:
        quotas.close()
    assert (status["reportsTopic"], status["keyspace"]) == (
        resources.reports_topic,
        resources.keyspace,
    )
    for topic in resources.topics:
        assert partition_count(kafka_admin, topic) == spec["kafka"]["partitions"]
        hours = spec["kafka"].get("retentionHours", 168)
        assert _topic_config(kafka_admin, topic, "retention.ms") == str(hours * 3_600_000)
    assert schema_version(cassandra, resources.keyspace) >= 2
    replication = cassandra.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
        (resources.keyspace,),
    ).one()
    assert replication.replication["class"].endswith(spec["cassandra"]["replicationStrategy"])

    settings = json.loads(
        kubectl.get("configmap", f"{name}-settings", namespace)["data"]["force.json"]
    )
    assert settings["alerting"]["score_threshold"] == spec["alerting"]["scoreThreshold"]
    for consumer in ("archiver", "alerter"):
        deployment = kubectl.get("deployment", f"{name}-{consumer}", namespace)
        assert deployment["spec"]["replicas"] == spec["consumers"]["replicas"]
        owner = deployment["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"]) == ("PoliceForce", force["metadata"]["uid"])
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]
               ["containers"][0]["env"]}  # fmt: skip
        assert env[f"PEACELAND_{consumer.upper()}_FORCE_ID"] == name
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == endpoints.kafka_bootstrap_servers
        assert env["CASSANDRA_CONTACT_POINTS"] == endpoints.cassandra_contact_points

    events = kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"TopicsCreated", "SchemaMigrated", "CredentialsIssued", "ConsumersApplied"} <= reasons


def test_kubectl_get_pf_shows_phase_ready_threshold_and_age(
    kubectl: Kubectl, namespace: str, start_operator: StartOperator
):
    start_operator()
    kubectl("apply", "-n", namespace, "-f", "tenants/examples/brest.yaml")
    kubectl.mark_available("brest", namespace)
    _ready(kubectl, "brest", namespace)
    table = kubectl("get", "pf", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "READY", "THRESHOLD", "AGE"]
    assert table[1].split()[:4] == ["brest", "Ready", "True", "25"]


def test_a_spec_change_reaches_topics_keyspace_settings_and_deployments(
    kubectl: Kubectl,
    namespace: str,
    start_operator: StartOperator,
    kafka_admin: AdminClient,
    cassandra: Session,
):
    start_operator()
    _, name = _a_ready_force(kubectl, namespace)

    patch = {
        "spec": {
            "alerting": {"scoreThreshold": 42},
            "kafka": {"partitions": 5, "retentionHours": 24},
            "retentionDays": 7,
            "consumers": {"replicas": 2},
        }
    }
    kubectl("patch", "pf", name, "-n", namespace, "--type=merge", "-p", json.dumps(patch))

    def settled() -> bool:
        force = kubectl.force(name, namespace)
        return bool(force["status"].get("observedGeneration") == force["metadata"]["generation"])

    eventually(settled, 30, "the operator to observe the change")
    resources = resources_for(name)
    eventually(
        lambda: all(partition_count(kafka_admin, t) == 5 for t in resources.topics),
        20,
        "5 partitions",
    )
    eventually(
        lambda: (
            _topic_config(kafka_admin, resources.reports_topic, "retention.ms")
            == str(24 * 3_600_000)
        ),
        20,
        "a 24 h retention",
    )
    ttl = cassandra.execute(
        "SELECT default_time_to_live FROM system_schema.tables "
        "WHERE keyspace_name = %s AND table_name = 'reports_by_drone_day'",
        (resources.keyspace,),
    ).one()
    assert ttl.default_time_to_live == 7 * 86_400
    settings = json.loads(
        kubectl.get("configmap", f"{name}-settings", namespace)["data"]["force.json"]
    )
    assert settings["alerting"]["score_threshold"] == 42
    assert kubectl.get("deployment", f"{name}-alerter", namespace)["spec"]["replicas"] == 2
    # The new rollout is not available until the (stand-in) kubelet says so.
    assert kubectl.force(name, namespace)["status"]["phase"] == "Degraded"
    kubectl.mark_available(name, namespace)
    _ready(kubectl, name, namespace)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"alerting": {"scoreThreshold": 150}}, "spec.alerting.scoreThreshold"),
        ({"deletionPolicy": "Maybe"}, 'Unsupported value: "Maybe"'),
        ({"kafka": {"partitions": 0}}, "spec.kafka.partitions"),
        (
            {"cassandra": {"replicationStrategy": "NetworkTopologyStrategy"}},
            "NetworkTopologyStrategy needs at least one entry in dataCenters",
        ),
        ({"colour": "blue"}, 'unknown field "spec.colour"'),
    ],
)
def test_an_invalid_spec_is_refused_by_the_api_server_with_a_message_naming_the_field(
    change: dict[str, Any], message: str, kubectl: Kubectl, namespace: str, chart: None
):
    manifest = example("brest")
    manifest["spec"] |= change
    result = kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_partitions_may_grow_but_never_shrink(kubectl: Kubectl, namespace: str, chart: None):
    kubectl("apply", "-n", namespace, "-f", "tenants/examples/brest.yaml")
    patch = json.dumps({"spec": {"kafka": {"partitions": 1}}})
    result = kubectl("patch", "pf", "brest", "-n", namespace, "--type=merge", "-p", patch,
                     check=False)  # fmt: skip
    assert result.returncode != 0
    assert "partitions may grow, never shrink" in result.stderr


def test_a_missing_required_field_is_refused(kubectl: Kubectl, namespace: str, chart: None):
    manifest = example("brest")
    del manifest["spec"]["plan"]
    result = kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert "spec.plan: Required value" in result.stderr


@pytest.mark.parametrize("policy", ["Delete", "Retain"])
def test_deleting_a_force_honours_its_deletion_policy(
    policy: str,
    kubectl: Kubectl,
    namespace: str,
    start_operator: StartOperator,
    kafka_admin: AdminClient,
    cassandra: Session,
):
    start_operator()
    manifest, name = _a_ready_force(kubectl, namespace, deletionPolicy=policy)

    kubectl("delete", "pf", name, "-n", namespace, "--timeout=30s")
    assert kubectl.find("policeforce", name, namespace) is None
    assert kubectl.find("deployment", f"{name}-archiver", namespace) is None
    assert kubectl.find("configmap", f"{name}-settings", namespace) is None
    resources = resources_for(name)
    if policy == "Delete":
        eventually(
            lambda: not set(resources.topics) & set(kafka_admin.list_topics(timeout=10).topics),
            20,
            "the topics to be gone",
        )
        assert not _keyspace_exists(cassandra, resources.keyspace)
    else:
        assert set(resources.topics) <= set(kafka_admin.list_topics(timeout=10).topics)
        assert _keyspace_exists(cassandra, resources.keyspace)
        # The data is kept, and a force of that name made again adopts it.
        kubectl.apply(manifest, namespace)
        kubectl.mark_available(name, namespace)
        _ready(kubectl, name, namespace)


def test_drift_is_repaired_deleted_topic_table_and_configmap_and_edited_deployment_come_back(
    kubectl: Kubectl,
    namespace: str,
    start_operator: StartOperator,
    kafka_admin: AdminClient,
    cassandra: Session,
):
    start_operator(drift_interval="2")
    _, name = _a_ready_force(kubectl, namespace)
    resources = resources_for(name)

    kafka_admin.delete_topics([resources.alerts_topic])[resources.alerts_topic].result()
    edit = {"spec": {"replicas": 7, "template": {"spec": {"containers": [
        {"name": "alerter", "image": "someone/else:latest"}]}}}}  # fmt: skip
    kubectl("patch", "deployment", f"{name}-alerter", "-n", namespace, "--type=strategic",
            "-p", json.dumps(edit))  # fmt: skip
    kubectl("delete", "configmap", f"{name}-settings", "-n", namespace)
    cassandra.execute(f"DROP TABLE {resources.keyspace}.sightings_by_citizen")

    def restored() -> bool:
        deployment = kubectl.find("deployment", f"{name}-alerter", namespace) or {}
        spec = deployment.get("spec", {})
        image = spec.get("template", {}).get("spec", {}).get("containers", [{}])[0].get("image")
        return (
            spec.get("replicas") == 1
            and image == "peaceland/services:0.1.0"
            and kubectl.find("configmap", f"{name}-settings", namespace) is not None
            and resources.alerts_topic in kafka_admin.list_topics(timeout=10).topics
            and cassandra.execute(
                "SELECT table_name FROM system_schema.tables "
                "WHERE keyspace_name = %s AND table_name = 'sightings_by_citizen'",
                (resources.keyspace,),
            ).one()
            is not None
        )

    eventually(restored, 30, "the topic, the table, the Deployment and the ConfigMap")
    events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
    reasons = {e["reason"] for e in events["items"]}
    assert {"TopicsRecreated", "DriftRepaired"} <= reasons


def test_an_operator_killed_in_the_middle_of_provisioning_converges_after_restart(
    kubectl: Kubectl,
    namespace: str,
    start_operator: StartOperator,
    kafka_admin: AdminClient,
):
    operator = start_operator()
    manifests = [_renamed("brest") for _ in range(10)]
    names = [m["metadata"]["name"] for m in manifests]
    for manifest in manifests:
        kubectl.apply(manifest, namespace)
    # Kill it as soon as the first force's topics exist: the others are half done at best.
    eventually(
        lambda: resources_for(names[0]).reports_topic in kafka_admin.list_topics(timeout=5).topics,
        30,
        "the first topics",
    )
    operator.kill()
    unfinished = [
        n for n in names if (kubectl.force(n, namespace).get("status") or {}).get("phase") is None
    ]
    start_operator(name="operator-again")
    # Ten keyspaces of five schema migrations each, made at once on a one-node Cassandra
    # (schema changes agree one at a time): about a minute on two cores.
    for name in names:
        kubectl.mark_available(name, namespace, timeout=90)
    for name in names:
        _ready(kubectl, name, namespace, timeout=60)
    assert unfinished, "the kill came after every force was provisioned: nothing was tested"


def test_a_kafka_outage_is_reported_and_the_force_is_made_when_kafka_returns(
    kubectl: Kubectl,
    namespace: str,
    start_operator: StartOperator,
    stack: Stack,
):
    start_operator()
    manifest = _renamed("brest")
    name = manifest["metadata"]["name"]
    stack.down(["kafka"])
    try:
        kubectl.apply(manifest, namespace)
        topics = eventually(
            lambda: (
                (c := kubectl.condition(name, namespace, "TopicsReady"))
                and c["status"] == "False"
                and c
            ),
            60,
            "TopicsReady False",
        )
        assert topics["reason"] == "KafkaUnavailable"
        # The keyspace does not wait for Kafka.
        keyspace = eventually(
            lambda: kubectl.condition(name, namespace, "KeyspaceReady").get("status") == "True",
            30,
            "KeyspaceReady",
        )
        assert keyspace
        assert kubectl.force(name, namespace)["status"]["phase"] == "Provisioning"
    finally:
        stack.up(["kafka"])
    kubectl.mark_available(name, namespace)
    _ready(kubectl, name, namespace, timeout=60)


def test_more_copies_than_brokers_is_reported_and_does_not_block_other_forces(
    kubectl: Kubectl, namespace: str, start_operator: StartOperator, kafka_admin: AdminClient
):
    start_operator()
    greedy, fine = _renamed("brest"), _renamed("brest")
    greedy["spec"]["kafka"]["replicationFactor"] = 5
    kubectl.apply(greedy, namespace)
    kubectl.apply(fine, namespace)
    kubectl.mark_available(fine["metadata"]["name"], namespace)
    _ready(kubectl, fine["metadata"]["name"], namespace)
    topics = eventually(
        lambda: kubectl.condition(greedy["metadata"]["name"], namespace, "TopicsReady"),
        30,
        "the greedy force's TopicsReady",
    )
    assert (topics["status"], topics["reason"]) == ("False", "NotEnoughBrokers")
    assert "add brokers or lower spec.kafka.replicationFactor" in topics["message"]
    assert not set(resources_for(greedy["metadata"]["name"]).topics) & set(
        kafka_admin.list_topics(timeout=10).topics
    )


def test_a_name_another_namespace_owns_fails_permanently_and_touches_nothing(
    kubectl: Kubectl, namespace: str, start_operator: StartOperator, chart: None
):
    start_operator()
    manifest, name = _a_ready_force(kubectl, namespace)

    other = f"{namespace}-b"
    kubectl("create", "namespace", other)
    try:
        impostor = copy.deepcopy(manifest)
        impostor["spec"]["deletionPolicy"] = "Delete"
        kubectl.apply(impostor, other)
        # The first operator serves only the test's namespace; this one the other.
        second = start_operator(name="operator-other", namespaces=[other])
        ready = eventually(
            lambda: (kubectl.force(name, other).get("status") or {}).get("phase") == "Failed",
            30,
            "the impostor to fail",
        )
        assert ready
        condition = kubectl.condition(name, other, "Ready")
        assert condition["reason"] == "NameTaken"
        # The impostor's tenant learns the name is taken, never by whom or where.
        assert "is taken by another police force" in condition["message"]
        assert namespace not in condition["message"]
        assert kubectl.find("deployment", f"{name}-archiver", other) is None
        # Its deletion (policy Delete) must not delete the owner's data.
        kubectl("delete", "pf", name, "-n", other, "--timeout=30s")
        # ...and says so without naming the owner: that is another tenant's.
        events = json.loads(kubectl("get", "events", "-n", other, "-o", "json").stdout)
        [not_owner] = [e["message"] for e in events["items"] if e["reason"] == "NotOwner"]
        assert "another police force" in not_owner
        assert namespace not in not_owner
        second.stop()
        assert kubectl.force(name, namespace)["status"]["phase"] == "Ready"
    finally:
        kubectl("delete", "namespace", other, "--wait=false")


def test_a_replication_change_kafka_cannot_make_by_itself_is_said_not_hidden(
    kubectl: Kubectl, namespace: str, start_operator: StartOperator
):
    start_operator()
    _, name = _a_ready_force(kubectl, namespace)
    patch = json.dumps({"spec": {"kafka": {"replicationFactor": 2}}})
    kubectl("patch", "pf", name, "-n", namespace, "--type=merge", "-p", patch)

    def warned() -> str | None:
        events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
        return next(
            (e["message"] for e in events["items"] if e["reason"] == "ReplicationFactorNotChanged"),
            None,
        )

    message = eventually(warned, 30, "a ReplicationFactorNotChanged event")
    assert "reassign their partitions" in message


def test_the_operator_exports_its_reconciles_and_each_forces_conditions_as_metrics(
    kubectl: Kubectl, namespace: str, start_operator: StartOperator
):
    operator = start_operator()
    _, name = _a_ready_force(kubectl, namespace)
    port = operator.env["PEACELAND_OPERATOR_METRICS_PORT"]

    def scraped() -> str | None:
        text = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        ready = (
            f'peaceland_operator_condition{{condition="Ready",force="{name}",'
            f'namespace="{namespace}"}} 1.0'
        )
        return text if ready in text else None

    text = eventually(scraped, 20, "the Ready condition in the metrics")
    assert (
        f'peaceland_operator_reconciles_total{{cause="create",force="{name}",'
        f'namespace="{namespace}",result="waiting"}} 1.0'
    ) in text
    assert f'peaceland_operator_reconcile_seconds_count{{force="{name}"' in text


def test_a_consumer_that_commits_nothing_while_reports_wait_shows_in_the_status(
    kubectl: Kubectl,
    namespace: str,
    start_operator: StartOperator,
    endpoints: Endpoints,
):
    # No consumer runs here (no kubelet): reports wait in the force's topic and its consumer
    # groups commit nothing, exactly what a consumer retrying one batch for ever, hung or
    # crash-looping looks like from Kafka. The force must say so, then say when it is over.
    operator = start_operator(stall_after="3", progress_interval="1")
    _, name = _a_ready_force(kubectl, namespace)
    resources = resources_for(name)
    bootstrap = endpoints.kafka
    reports = [make_report(random.Random(seed)) for seed in range(5)]
    produce(bootstrap, resources.reports_topic, [(b"d", encode_report(r)) for r in reports])

    def stalled() -> dict[str, Any] | None:
        condition = kubectl.condition(name, namespace, "ConsumersProgressing")
        return condition if condition.get("status") == "False" else None

    condition = eventually(stalled, 30, "ConsumersProgressing to turn False")
    assert condition["reason"] == "ArchiverStalled"
    assert "has committed nothing for" in condition["message"]
    assert "5 waiting in all" in condition["message"]
    assert f"kubectl logs -n {namespace} deploy/{name}-archiver" in condition["message"]
    force = kubectl.force(name, namespace)
    assert force["status"]["phase"] == "Degraded"
    assert kubectl.condition(name, namespace, "Ready")["reason"] == "ArchiverStalled"
    port = operator.env["PEACELAND_OPERATOR_METRICS_PORT"]
    lag = (
        f'peaceland_operator_consumer_lag{{consumer="archiver",force="{name}",'
        f'namespace="{namespace}"}} 5.0'
    )
    assert lag in httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

    # Both consumers catch up: they commit the end of every partition.
    for consumer in ("archiver", "alerter"):
        commit_to_end(bootstrap, consumer_group(name, consumer), resources.reports_topic)
    _ready(kubectl, name, namespace)
    events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
    reasons = [e["reason"] for e in events["items"]]
    assert "ArchiverStalled" in reasons
    assert "ConsumersRecovered" in reasons


def test_a_force_asking_for_an_image_or_more_than_allowed_is_refused_and_touches_nothing(
    kubectl: Kubectl, namespace: str, start_operator: StartOperator, kafka_admin: AdminClient
):
    start_operator(allowed_images="peaceland/services", max_replicas="2")
    manifest = _renamed("brest")
    manifest["spec"]["consumers"] = {"image": "evil.example/miner:latest", "replicas": 3}
    name = manifest["metadata"]["name"]
    kubectl.apply(manifest, namespace)
    assert eventually(
        lambda: (kubectl.force(name, namespace).get("status") or {}).get("phase") == "Failed",
        30,
        "the force to be refused",
    )
    condition = kubectl.condition(name, namespace, "Ready")
    assert condition["reason"] == "NotAllowed"
    assert "'evil.example/miner:latest' is not allowed" in condition["message"]
    message = condition["message"]
    assert "spec.consumers.replicas is 3; this installation allows at most 2" in message
    assert kubectl.find("deployment", f"{name}-archiver", namespace) is None
    assert resources_for(name).reports_topic not in kafka_admin.list_topics(timeout=10).topics

    # Within bounds again, the same force is made.
    manifest["spec"]["consumers"] = {"image": "peaceland/services:0.1.0", "replicas": 1}
    kubectl.apply(manifest, namespace)
    kubectl.mark_available(name, namespace)
    _ready(kubectl, name, namespace)


def test_a_force_made_before_a_bound_was_lowered_keeps_running_and_is_warned(
    kubectl: Kubectl, namespace: str, start_operator: StartOperator
):
    first = start_operator()
    _, name = _a_ready_force(kubectl, namespace, consumers={"replicas": 2})
    first.stop()
    # The installation now allows one replica: the force is not refused (that would leave it
    # unmanaged, not undone) but warned, and still repaired.
    start_operator(name="operator-tight", max_replicas="1")

    def warned() -> str | None:
        events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
        found = [e["message"] for e in events["items"] if e["reason"] == "NotAllowed"]
        return found[0] if found else None

    message = eventually(warned, 30, "a NotAllowed warning")
    assert "spec.consumers.replicas is 2; this installation allows at most 1" in message
    kubectl("delete", "deployment", f"{name}-alerter", "-n", namespace)
    eventually(
        lambda: kubectl.find("deployment", f"{name}-alerter", namespace),
        30,
        "the deleted Deployment to be made again",
    )
    assert kubectl.force(name, namespace)["status"]["phase"] != "Failed"


def _credentials(kubectl: Kubectl, name: str, namespace: str) -> ForceCredentials:
    secret = kubectl.get("secret", f"{name}-credentials", namespace)
    credentials = ForceCredentials.from_secret_data(name, decode_secret_data(secret["data"]))
    assert credentials is not None, "the Secret holds no whole set of credentials"
    return credentials


def test_a_rotation_keeps_both_generations_until_the_consumers_rolled_then_refuses_the_old(
    kubectl: Kubectl,
    namespace: str,
    start_operator: StartOperator,
    kafka_admin: AdminClient,
    cassandra: Session,
    endpoints: Endpoints,
):
    start_operator()
    manifest = _renamed("brest")
    name = manifest["metadata"]["name"]
    kubectl.apply(manifest, namespace)
    kubectl.mark_available(name, namespace)
    _ready(kubectl, name, namespace)
    old = _credentials(kubectl, name, namespace)
    assert old.generation == 0
    template = kubectl.get("deployment", f"{name}-archiver", namespace)["spec"]["template"]

    manifest["spec"]["credentials"] = {"rotation": 1}
    kubectl.apply(manifest, namespace)
    eventually(
        lambda: kafka_generations(kafka_admin, name) == {0, 1},
        30,
        "generation 1 beside generation 0",
    )

    def issued() -> ForceCredentials | None:
        credentials = _credentials(kubectl, name, namespace)
        return credentials if credentials.generation == 1 else None

    new = eventually(issued, 30, "the Secret to hold generation 1")
    rolled = eventually(
        lambda: (
            (t := kubectl.get("deployment", f"{name}-archiver", namespace)["spec"]["template"])
            != template
            and t
        ),
        30,
        "the consumers' pod template to change",
    )
    assert rolled["metadata"]["annotations"]["peaceland.io/credentials-generation"].startswith("1.")
    # The consumers have not rolled yet: the old generation still works.
    assert signs_in(endpoints.kafka, old.kafka["gateway"].username, old.kafka["gateway"].password)
    assert kafka_generations(kafka_admin, name) == {0, 1}

    kubectl.mark_available(name, namespace)  # the rollout is done
    eventually(
        lambda: kafka_generations(kafka_admin, name) == {1}, 60, "generation 0 to be retired"
    )
    assert cassandra_generations(cassandra, name) == {1}
    assert not signs_in(
        endpoints.kafka, old.kafka["gateway"].username, old.kafka["gateway"].password
    )
    assert signs_in(endpoints.kafka, new.kafka["gateway"].username, new.kafka["gateway"].password)
    events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
    reasons = {e["reason"] for e in events["items"]}
    assert {"CredentialsIssued", "CredentialsRotated", "CredentialsRetired"} <= reasons


@pytest.mark.parametrize(
    ("kind", "suffix", "condition"),
    [("ConfigMap", "settings", "ConsumersReady"), ("Secret", "credentials", "CredentialsReady")],
)
def test_the_operator_never_takes_over_an_object_it_did_not_make(
    kubectl: Kubectl,
    namespace: str,
    start_operator: StartOperator,
    kind: str,
    suffix: str,
    condition: str,
):
    manifest = _renamed("brest")
    name = manifest["metadata"]["name"]
    theirs = {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": f"{name}-{suffix}", "labels": {"made-by": "someone-else"}},
        "data": {"their-key": "dGhlaXJz"} if kind == "Secret" else {"their-key": "theirs"},
    }
    kubectl.apply(theirs, namespace)
    start_operator()
    kubectl.apply(manifest, namespace)
    refused = eventually(
        lambda: (
            (c := kubectl.condition(name, namespace, condition)) and c["reason"] == "NotOwner" and c
        ),
        30,
        f"{condition} NotOwner",
    )
    assert f"{kind} {name}-{suffix}" in refused["message"]
    after = kubectl.get(kind.lower(), f"{name}-{suffix}", namespace)
    assert after["data"] == theirs["data"]  # untouched
    assert "ownerReferences" not in after["metadata"]


def test_the_bytes_a_force_stores_are_measured_into_its_status(
    kubectl: Kubectl,
    namespace: str,
    start_operator: StartOperator,
    cassandra: Session,
    stack: Stack,
):
    start_operator(usage_interval="1")
    _, name = _a_ready_force(kubectl, namespace)
    keyspace = resources_for(name).keyspace
    for _ in range(200):
        cassandra.execute(
            f"INSERT INTO {keyspace}.alerts_by_day (day, alert_id, citizen) VALUES (%s, %s, %s)",
            (datetime.now(UTC).date(), uuid.uuid4(), "Jane Doe"),
        )
    server = stack.server("cassandra")
    assert isinstance(server, Cassandra)
    server.nodetool("flush", keyspace)  # disk usage counts SSTables, not memtables

    def measured() -> dict[str, Any] | None:
        usage = (kubectl.force(name, namespace).get("status") or {}).get("usage") or {}
        return usage if usage.get("storageBytes") else None

    usage = eventually(measured, 30, "the force's storage in its status")
    assert usage["storageBytes"] >= 1 << 20
    assert usage["storageBytes"] % (1 << 20) == 0
    # Reconciles run beside the usage timer (drift every 3 s here) and never erase it.
    first = usage["measuredAt"]
    later = eventually(
        lambda: (u := measured()) and u["measuredAt"] != first and u, 10, "a later measure"
    )
    assert later["storageBytes"] >= usage["storageBytes"]
    assert kubectl.force(name, namespace)["status"]["phase"] == "Ready"
