"""Manifests committed in the repository stay what the models generate."""

from __future__ import annotations

from pathlib import Path

from peaceland.cli.manifests import CRD_FILE, crd_yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_crd_is_the_one_the_model_generates():
    committed = (ROOT / CRD_FILE).read_text()
    assert committed == crd_yaml(), f"the CRD drifted from the model: peaceland crd > {CRD_FILE}"
