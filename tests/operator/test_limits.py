"""What this installation lets a PoliceForce ask, with no server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from peaceland.operator.limits import refusals, repository
from peaceland.operator.settings import OperatorSettings
from peaceland.tenants.policeforce import spec_from

ROOT = Path(__file__).resolve().parents[2]
BREST = yaml.safe_load((ROOT / "tenants/examples/brest.yaml").read_text())["spec"]
SETTINGS = OperatorSettings(kafka_bootstrap_servers="k:9092", cassandra_contact_points="c")


def _with(**changes: object) -> dict[str, object]:
    spec = yaml.safe_load(yaml.safe_dump(BREST))
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return dict(spec)


@pytest.mark.parametrize(
    ("image", "repo"),
    [
        ("peaceland/services:0.1.0", "peaceland/services"),
        ("registry:5000/peaceland/services:1", "registry:5000/peaceland/services"),
        ("peaceland/services@sha256:" + "a" * 64, "peaceland/services"),
        ("registry:5000/peaceland/services", "registry:5000/peaceland/services"),
    ],
)
def test_an_image_s_repository_ignores_its_tag_or_digest_not_its_registry_port(
    image: str, repo: str
):
    assert repository(image) == repo


def test_the_examples_are_allowed_by_default():
    for example in ("brest", "lyon-metropole"):
        spec = yaml.safe_load((ROOT / f"tenants/examples/{example}.yaml").read_text())["spec"]
        assert refusals(spec_from(spec), SETTINGS) == []


def test_an_image_from_elsewhere_is_refused_naming_what_is_allowed():
    spec = spec_from(_with(consumers__image="evil.example/miner:latest"))
    [refusal] = refusals(spec, SETTINGS)
    assert "'evil.example/miner:latest' is not allowed" in refusal
    assert "peaceland/services" in refusal


def test_a_lookalike_repository_is_not_the_allowed_one():
    spec = spec_from(_with(consumers__image="peaceland/services-evil:1"))
    assert refusals(spec, SETTINGS)


def test_every_bound_passed_is_named_with_its_value_and_bound():
    spec = spec_from(
        _with(
            kafka__partitions=200,
            kafka__retentionHours=1000,
            consumers__replicas=30,
        )
    )
    found = refusals(spec, SETTINGS)
    assert "spec.kafka.partitions is 200; this installation allows at most 96" in found
    assert "spec.kafka.retentionHours is 1000; this installation allows at most 720" in found
    assert "spec.consumers.replicas is 30; this installation allows at most 24" in found
    assert len(found) == 3


def test_a_bound_is_an_operator_setting():
    tight = SETTINGS.model_copy(update={"max_partitions": 2})
    assert refusals(spec_from(BREST), tight) == [
        "spec.kafka.partitions is 3; this installation allows at most 2"
    ]


def test_cassandra_copies_are_counted_in_all_whichever_the_strategy():
    tight = SETTINGS.model_copy(update={"max_cassandra_replication_factor": 2})
    three_centres = _with(
        cassandra={
            "replicationStrategy": "NetworkTopologyStrategy",
            "dataCenters": {"a": 1, "b": 1, "c": 1},
        }
    )
    assert refusals(spec_from(three_centres), tight) == [
        "spec.cassandra.dataCenters (copies in all) is 3; this installation allows at most 2"
    ]
    # replicationFactor (default 3) is not used with NetworkTopologyStrategy: not judged.
    two_centres = _with(
        cassandra={"replicationStrategy": "NetworkTopologyStrategy", "dataCenters": {"a": 2}}
    )
    assert refusals(spec_from(two_centres), tight) == []
