"""The PoliceForce CustomResourceDefinition, generated from the models in ``policeforce``.

Kubernetes wants a *structural* OpenAPI v3 schema: every node typed, no ``$ref``, nullable
fields marked ``nullable`` rather than ``anyOf`` with null. This module turns pydantic's JSON
Schema into that shape, so the API server enforces exactly the bounds the models declare.
"""

from __future__ import annotations

from typing import Any, Final

from peaceland.tenants.forces import MAX_FORCE_ID_LENGTH
from peaceland.tenants.policeforce import (
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAME,
    VERSION,
    PoliceForceSpec,
    PoliceForceStatus,
)

CRD_NAME: Final = f"{PLURAL}.{GROUP}"
_DROPPED: Final = frozenset({"title", "$defs"})


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes structural schema from a pydantic JSON Schema (``$defs`` inlined)."""
    return _node(schema, schema.get("$defs", {}))


def _node(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _node(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"only Optional[X] unions map to Kubernetes schemas: {node}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return {**_node({**options[0], **rest}, defs), "nullable": True}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out["properties"] = {name: _node(sub, defs) for name, sub in value.items()}
        elif key == "additionalProperties":
            # false is the default for structural schemas (unknown fields are pruned); a
            # schema is a map's value type.
            if isinstance(value, dict):
                out["additionalProperties"] = _node(value, defs)
        elif key == "items":
            out["items"] = _node(value, defs)
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def custom_resource_definition() -> dict[str, Any]:
    """The CRD manifest, as a dict ready to dump to YAML or send to the API server."""
    spec = structural(PoliceForceSpec.model_json_schema(by_alias=True))
    status = structural(PoliceForceStatus.model_json_schema(by_alias=True))
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": [SHORT_NAME],
                "categories": ["peaceland"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        },
                        {
                            "name": "Threshold",
                            "type": "number",
                            "jsonPath": ".spec.alerting.scoreThreshold",
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A police force: its topics, keyspace and consumers.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                            "x-kubernetes-validations": [
                                {
                                    "rule": f"size(self.metadata.name) <= {MAX_FORCE_ID_LENGTH}",
                                    "message": f"a police force's name is its id: at most "
                                    f"{MAX_FORCE_ID_LENGTH} characters, so that its "
                                    "keyspace name fits Cassandra's limit",
                                }
                            ],
                        }
                    },
                }
            ],
        },
    }
