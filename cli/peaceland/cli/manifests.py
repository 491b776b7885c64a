"""Kubernetes manifests rendered from the domain's models, as committed in the repository."""

from __future__ import annotations

from typing import Final

import yaml

from peaceland.tenants.crd import CRD_NAME, custom_resource_definition

CRD_FILE: Final = f"crds/{CRD_NAME}.yaml"
_HEADER: Final = (
    "# Generated from tenants/peaceland/tenants/policeforce.py by `peaceland crd`.\n"
    "# Do not edit: change the model and regenerate; a test fails when they differ.\n"
)


def crd_yaml() -> str:
    return _HEADER + yaml.safe_dump(custom_resource_definition(), sort_keys=False, width=100)
