"""The image's lock is the runtime's part of the development lock, at the same versions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from peaceland.image.build import RUNTIME_LOCK
from tests.operator.kube_helpers import ROOT

_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;#]+)", re.MULTILINE)


def _pins(path: Path) -> dict[str, str]:
    return {
        re.sub(r"[-_.]+", "-", m.group(1)).lower(): m.group(3)
        for m in _PIN.finditer(path.read_text())
    }


def test_the_runtime_lock_pins_what_the_development_lock_pins() -> None:
    runtime, development = _pins(ROOT / RUNTIME_LOCK), _pins(ROOT / "requirements.lock")
    assert runtime
    assert {name: (v, development.get(name)) for name, v in runtime.items()
            if development.get(name) != v} == {}  # fmt: skip


def test_every_direct_dependency_is_in_the_runtime_lock_and_no_development_tool() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _pins(ROOT / RUNTIME_LOCK)
    for requirement in project["dependencies"]:
        name = re.sub(r"[-_.]+", "-", re.split(r"[\[=<>]", requirement)[0]).lower()
        assert name in runtime, requirement
    for tool in ("pytest", "mypy", "ruff", "pyspark", "playwright", "schemathesis"):
        assert tool not in runtime
