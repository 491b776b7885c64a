"""The SVG charts written beside benchmark figures."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from peaceland.cli.charts import line_chart

SVG = "{http://www.w3.org/2000/svg}"


def test_a_line_chart_draws_each_series_within_its_axes() -> None:
    svg = line_chart(
        "Lag <at> 1,000/s",
        {"archiver": [(0, 0), (10, 430), (20, 0)], "alerter": [(0, 0), (20, 90)]},
        x_label="seconds",
        y_label="reports",
    )
    root = ET.fromstring(svg)  # well-formed, the title's brackets escaped
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 2
    archiver = [tuple(map(float, p.split(","))) for p in lines[0].get("points", "").split()]
    assert len(archiver) == 3
    frame = root.findall(f"{SVG}rect")[1]
    left, top = float(frame.get("x", 0)), float(frame.get("y", 0))
    right, bottom = left + float(frame.get("width", 0)), top + float(frame.get("height", 0))
    assert all(left <= x <= right and top <= y <= bottom for x, y in archiver)
    assert archiver[0] == (left, bottom)  # (0, 0) at the corner
    labels = [t.text for t in root.findall(f"{SVG}text")]
    assert "Lag <at> 1,000/s" in labels
    assert {"archiver", "alerter", "500", "0"} <= set(labels)  # 430 rounds the axis up to 500
