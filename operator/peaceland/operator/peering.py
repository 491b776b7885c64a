"""kopf's peering resources: how replicas of the operator learn of each other.

Each replica writes a keep-alive into one peering object; the replica with the highest
priority acts and the others wait (docs/operator.md). kopf does not create these
definitions: they ship in crds/ and the Helm chart.
"""

from __future__ import annotations

from typing import Any, Final

PEERING_GROUP: Final = "kopf.dev"


def peering_definitions() -> list[dict[str, Any]]:
    """The ClusterKopfPeering and KopfPeering CustomResourceDefinitions."""
    return [_definition("ClusterKopfPeering", "Cluster"), _definition("KopfPeering", "Namespaced")]


def _definition(kind: str, scope: str) -> dict[str, Any]:
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{PEERING_GROUP}"},
        "spec": {
            "scope": scope,
            "group": PEERING_GROUP,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "Keep-alives of the operator replicas (kopf).",
                            "properties": {
                                # One entry per replica, keyed by its identity: free-form.
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
