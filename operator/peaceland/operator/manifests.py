"""Kubernetes manifests rendered from the code, as committed in the repository.

crds/ and the Helm chart's crds/ hold the same files; a test fails when either drifts from
what the code renders (`peaceland manifests` rewrites them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

import yaml

from peaceland.operator.peering import peering_definitions
from peaceland.tenants.crd import CRD_NAME, custom_resource_definition

CRD_FILE: Final = f"crds/{CRD_NAME}.yaml"
PEERING_FILE: Final = "crds/kopfpeerings.kopf.dev.yaml"
CHART: Final = "helm/peaceland"


def crd_yaml() -> str:
    return _header("tenants/peaceland/tenants/policeforce.py", "crd") + _dump(
        [custom_resource_definition()]
    )


def peering_yaml() -> str:
    return _header("operator/peaceland/operator/peering.py", "manifests") + _dump(
        peering_definitions()
    )


def definitions() -> str:
    """Every CustomResourceDefinition the operator needs, as one YAML stream."""
    return crd_yaml() + "---\n" + peering_yaml()


#: Every generated file, by its path from the repository's root.
GENERATED: Final[dict[str, Callable[[], str]]] = {
    CRD_FILE: crd_yaml,
    PEERING_FILE: peering_yaml,
    f"{CHART}/{CRD_FILE}": crd_yaml,
    f"{CHART}/{PEERING_FILE}": peering_yaml,
}


def write(root: Path) -> list[str]:
    """Rewrite every generated file under ``root``; returns those that changed."""
    changed = []
    for path, render in GENERATED.items():
        target = root / path
        text = render()
        if not target.exists() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            changed.append(path)
    return changed


def _header(source: str, command: str) -> str:
    return (
        f"# Generated from {source} by `peaceland {command}`.\n"
        "# Do not edit: change the code and regenerate; a test fails when they differ.\n"
    )


def _dump(documents: list[dict[str, object]]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False, width=100) for d in documents)
