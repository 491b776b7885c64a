"""The Kubernetes objects of a force's consumers, as the operator will apply them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from peaceland.services.alerter.settings import AlerterSettings
from peaceland.services.archiver.settings import ArchiverSettings
from peaceland.services.lake.settings import LakeSettings
from peaceland.tenants.forces import ForceSettings
from peaceland.tenants.policeforce import spec_from
from peaceland.tenants.provisioning.identities import ForceCredentials
from peaceland.tenants.provisioning.lake_identities import S3Key
from peaceland.tenants.workloads import (
    CREDENTIALS_DIR,
    GENERATION_ANNOTATION,
    LAKE,
    SETTINGS_KEY,
    consumer_deployment,
    credentials_secret,
    decode_secret_data,
    settings_config_map,
    status_names,
)

ROOT = Path(__file__).resolve().parents[2]
LYON = yaml.safe_load((ROOT / "tenants/examples/lyon-metropole.yaml").read_text())
SPEC = spec_from(LYON["spec"])
UID = "0b6f3e4c-7d0a-4c52-9a7e-1f2d3c4b5a69"


def deployment(consumer: str) -> dict[str, Any]:
    return consumer_deployment(
        "lyon-metropole",
        UID,
        SPEC,
        consumer,
        kafka_bootstrap_servers="kafka:9092",
        cassandra_contact_points="cassandra:9042",
    )


def env_of(manifest: dict[str, Any]) -> dict[str, str]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_the_settings_config_map_holds_the_force_settings():
    config_map = settings_config_map("lyon-metropole", UID, SPEC)
    settings = ForceSettings.model_validate_json(config_map["data"][SETTINGS_KEY])
    assert settings.force_id == "lyon-metropole"
    assert settings.alerting.score_threshold == 15
    assert settings.alerting.dedup_window_seconds == 900
    assert settings.retention_days == 90


@pytest.mark.parametrize("consumer", ["archiver", "alerter"])
def test_every_object_is_owned_by_its_police_force(consumer):
    for manifest in (deployment(consumer), settings_config_map("lyon-metropole", UID, SPEC)):
        [owner] = manifest["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "PoliceForce",
            "lyon-metropole",
            UID,
        )
        assert owner["controller"] is True


@pytest.mark.parametrize(
    ("consumer", "settings_class"), [("archiver", ArchiverSettings), ("alerter", AlerterSettings)]
)
def test_a_consumer_deployment_configures_its_process(
    consumer, settings_class, monkeypatch, tmp_path
):
    manifest = deployment(consumer)
    assert manifest["spec"]["replicas"] == 3
    # Mount the force's Secret as a kubelet would: the volume's items, under its mount path.
    credentials = ForceCredentials.generate("lyon-metropole", 4)
    data = credentials_secret("lyon-metropole", UID, credentials)["data"]
    secret = decode_secret_data(data)
    pod = manifest["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "lyon-metropole-credentials"
    for item in volume["secret"]["items"]:
        (tmp_path / item["path"]).write_text(secret[item["key"]])
    for name, value in env_of(manifest).items():
        monkeypatch.setenv(name, (value or "pod-0").replace(CREDENTIALS_DIR, str(tmp_path)))
    settings = settings_class()
    assert settings.force_id == "lyon-metropole"
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.cassandra_contact_points == "cassandra:9042"
    assert settings.metrics_port == 9100
    # Signed in as the force's principal for this role, and no other role's.
    access = settings.kafka_access()
    assert (
        access.username == credentials.kafka[consumer].username == f"lyon-metropole.{consumer}.g4"
    )
    assert access.password == credentials.kafka[consumer].password
    assert settings.cassandra_access().username == "pf_lyon_metropole_g4"
    others = [
        credentials.kafka[r].password for r in ("gateway", "archiver", "alerter") if r != consumer
    ]
    assert not any(p in (f.read_text() for f in tmp_path.iterdir()) for p in others)
    if isinstance(settings, AlerterSettings):
        assert settings.replicas == 3
        assert settings.instance == "pod-0"  # the downward API gives the pod's name


def test_the_lake_deployment_writes_where_the_platform_says_and_never_sees_cassandra(
    monkeypatch, tmp_path
):
    manifest = consumer_deployment(
        "lyon-metropole",
        UID,
        SPEC,
        LAKE,
        kafka_bootstrap_servers="kafka:9092",
        cassandra_contact_points="cassandra:9042",
        lake_uri="s3://peaceland-lake/prod",
        lake_flush_seconds=30,
    )
    credentials = ForceCredentials.generate("lyon-metropole", 2)
    secret = decode_secret_data(credentials_secret("lyon-metropole", UID, credentials)["data"])
    pod = manifest["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if "secret" in v]
    for item in volume["secret"]["items"]:
        (tmp_path / item["path"]).write_text(secret[item["key"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kafka-password", "kafka-username"]
    for name, value in env_of(manifest).items():
        monkeypatch.setenv(name, value.replace(CREDENTIALS_DIR, str(tmp_path)))
    settings = LakeSettings()
    assert settings.lake_uri == "s3://peaceland-lake/prod"
    assert settings.flush_seconds == 30
    assert settings.retention_days == SPEC.retention_days
    assert settings.kafka_access().username == "lyon-metropole.lake.g2"
    assert settings.cassandra_access().username is None
    assert manifest["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "python",
        "-m",
        "peaceland.services.lake",
    ]
    with pytest.raises(ValueError, match="takes a lake_uri"):
        deployment(LAKE)


def test_a_rotation_changes_the_pod_template_so_the_consumers_roll():
    first = deployment(consumer="archiver")
    second = consumer_deployment(
        "lyon-metropole",
        UID,
        SPEC,
        "archiver",
        kafka_bootstrap_servers="kafka:9092",
        cassandra_contact_points="cassandra:9042",
        credentials_version="1.0123456789abcdef",
    )
    assert first["spec"]["template"] != second["spec"]["template"]
    annotations = second["spec"]["template"]["metadata"]["annotations"]
    assert annotations[GENERATION_ANNOTATION] == "1.0123456789abcdef"


def test_the_alerter_reads_the_mounted_settings_file():
    manifest = deployment("alerter")
    pod = manifest["spec"]["template"]["spec"]
    mount = pod["containers"][0]["volumeMounts"][0]["mountPath"]
    assert env_of(manifest)["PEACELAND_ALERTER_SETTINGS_FILE"] == f"{mount}/{SETTINGS_KEY}"
    assert pod["volumes"][0]["configMap"]["name"] == "lyon-metropole-settings"


def test_an_unknown_consumer_is_refused():
    with pytest.raises(ValueError, match="no consumer called"):
        deployment("gateway")


def test_status_names_the_force_resources():
    assert status_names("lyon-metropole") == {
        "reportsTopic": "peaceland.lyon-metropole.reports",
        "alertsTopic": "peaceland.lyon-metropole.alerts",
        "deadLetterTopic": "peaceland.lyon-metropole.dead-letter",
        "lifecycleTopic": "peaceland.lyon-metropole.lifecycle",
        "keyspace": "pf_lyon_metropole",
    }
    json.dumps(deployment("archiver"))  # plain JSON, ready for the API server


def test_on_an_object_store_the_lake_signs_in_with_its_forces_own_keys_and_no_other(
    monkeypatch, tmp_path
):
    manifest = consumer_deployment(
        "lyon-metropole",
        UID,
        SPEC,
        LAKE,
        kafka_bootstrap_servers="kafka:9092",
        cassandra_contact_points="cassandra:9042",
        lake_uri="s3://peaceland-lake/prod",
        lake_s3_keys=True,
    )
    credentials = dataclasses.replace(
        ForceCredentials.generate("lyon-metropole", 2),
        s3={"lake": S3Key("AKLAKE", "lake-secret"), "dashboard": S3Key("AKDASH", "dash-secret")},
    )
    secret = decode_secret_data(credentials_secret("lyon-metropole", UID, credentials)["data"])
    pod = manifest["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if "secret" in v]
    for item in volume["secret"]["items"]:
        (tmp_path / item["path"]).write_text(secret[item["key"]])
    files = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert files["s3-access-key-id"] == "AKLAKE"
    assert files["s3-secret-access-key"] == "lake-secret"
    assert "dash-secret" not in files.values()  # the control plane's key is not the pod's
    for name, value in env_of(manifest).items():
        monkeypatch.setenv(name, value.replace(CREDENTIALS_DIR, str(tmp_path)))
    assert LakeSettings().s3_keys() == ("AKLAKE", "lake-secret")
    # The Secret read back holds the store's keys, which a rotation's digest covers.
    again = ForceCredentials.from_secret_data("lyon-metropole", secret)
    assert again == credentials
    assert credentials.version != ForceCredentials.generate("lyon-metropole", 2).version


def test_the_lake_consumer_refuses_half_a_key_at_start(monkeypatch, tmp_path):
    (tmp_path / "id").write_text("AKLAKE")
    monkeypatch.setenv("PEACELAND_LAKE_FORCE_ID", "lyon-metropole")
    monkeypatch.setenv("PEACELAND_LAKE_LAKE_URI", "s3://peaceland-lake/prod")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("CASSANDRA_CONTACT_POINTS", "cassandra:9042")
    monkeypatch.setenv("PEACELAND_LAKE_S3_ACCESS_KEY_ID_FILE", str(tmp_path / "id"))
    with pytest.raises(ValueError, match="give both"):
        LakeSettings()
    monkeypatch.setenv("PEACELAND_LAKE_S3_SECRET_ACCESS_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="cannot be read"):
        LakeSettings()
