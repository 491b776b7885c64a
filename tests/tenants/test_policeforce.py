"""The PoliceForce model, its example forces and the CRD generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from peaceland.tenants.crd import custom_resource_definition
from peaceland.tenants.policeforce import KIND, PoliceForceSpec, spec_from

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "tenants" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_force_is_a_valid_police_force(path: Path):
    resource = yaml.safe_load(path.read_text())
    assert resource["kind"] == KIND
    spec = spec_from(resource["spec"])
    settings = spec.force_settings(resource["metadata"]["name"])
    assert settings.alerting.score_threshold == spec.alerting.score_threshold


def test_the_two_examples_differ_in_their_settings():
    specs = [spec_from(yaml.safe_load(p.read_text())["spec"]) for p in EXAMPLES]
    assert len(specs) == 2
    assert specs[0].alerting != specs[1].alerting
    assert specs[0].deletion_policy != specs[1].deletion_policy


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"alerting": {"scoreThreshold": 120}}, "alerting.scoreThreshold"),
        ({"kafka": {"partitions": 0}}, "kafka.partitions"),
        ({"deletionPolicy": "Shred"}, "deletionPolicy"),
        ({"retentionDays": 0}, "retentionDays"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(change, field):
    base = {"displayName": "X", "plan": {"maxDrones": 1, "maxReportsPerSecond": 1}}
    with pytest.raises(ValidationError) as info:
        PoliceForceSpec.model_validate(base | change)
    assert field in {".".join(map(str, e["loc"])) for e in info.value.errors()}


def test_the_crd_schema_is_structural():
    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            assert "$ref" not in node, path
            assert "anyOf" not in node, path
            if "properties" in node:
                assert node.get("type") == "object", path
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    schema = custom_resource_definition()["spec"]["versions"][0]["schema"]
    walk(schema, "openAPIV3Schema")


def test_partitions_may_only_grow_by_a_cel_rule():
    schema = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    kafka = schema["properties"]["spec"]["properties"]["kafka"]
    assert kafka["x-kubernetes-validations"][0]["rule"] == "self.partitions >= oldSelf.partitions"
