"""The image ships the dashboard's bundle, and nothing else that sits in its folder."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from peaceland.image.build import ImageError, _check_dashboard

_STATIC = "peaceland/api/dashboard/static/"


def _wheel(tmp_path: Path, *names: str) -> Path:
    wheel = tmp_path / "peaceland-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("peaceland/api/app.py", "")
        for name in names:
            archive.writestr(_STATIC + name, "x")
    return wheel


def test_a_wheel_with_the_built_dashboard_passes(tmp_path: Path) -> None:
    _check_dashboard(_wheel(tmp_path, "app.js", "app.js.LEGAL.txt", "land.geojson",
                            "maplibre-gl-worker.mjs", "dashboard.css"))  # fmt: skip


def test_a_wheel_without_the_dashboard_is_refused_saying_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="make install"):
        _check_dashboard(_wheel(tmp_path, "dashboard.css"))


def test_a_stray_file_beside_the_bundle_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"\.env, app\.js\.map"):
        _check_dashboard(_wheel(tmp_path, "app.js", ".env", "app.js.map"))
