"""Manifests committed in the repository stay what the code generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from peaceland.operator.manifests import GENERATED

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted(GENERATED))
def test_the_committed_manifest_is_the_one_the_code_generates(path: str):
    committed = (ROOT / path).read_text()
    assert committed == GENERATED[path](), f"{path} drifted from the code: run peaceland manifests"
