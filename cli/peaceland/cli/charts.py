"""Small SVG charts of benchmark figures, written into docs/ beside the numbers.

Hand-written rather than a plotting library: a line chart of a few hundred points is forty
lines of SVG, and a dependency as large as matplotlib for it would cost every install.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

_WIDTH, _HEIGHT = 720, 320
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 150, 40, 45
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def line_chart(
    title: str,
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    x_label: str,
    y_label: str,
) -> str:
    """An SVG line chart of each named series of (x, y) points, with both axes from zero."""
    points = [p for values in series.values() for p in values]
    x_max = _nice(max((x for x, _ in points), default=1.0))
    y_max = _nice(max((y for _, y in points), default=1.0))
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM

    def at(x: float, y: float) -> str:
        return f"{_LEFT + x / x_max * plot_w:.1f},{_TOP + plot_h - y / y_max * plot_h:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="white"/>',
        f'<text x="{_WIDTH / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for tick in range(5):
        x, y = x_max * tick / 4, y_max * tick / 4
        gx, gy = at(x, 0).split(","), at(0, y).split(",")
        parts += [
            f'<line x1="{gx[0]}" y1="{_TOP}" x2="{gx[0]}" y2="{_TOP + plot_h}" stroke="#eee"/>',
            f'<text x="{gx[0]}" y="{_TOP + plot_h + 16}" text-anchor="middle">{x:g}</text>',
            f'<line x1="{_LEFT}" y1="{gy[1]}" x2="{_LEFT + plot_w}" y2="{gy[1]}" stroke="#eee"/>',
            f'<text x="{_LEFT - 6}" y="{float(gy[1]) + 4}" text-anchor="end">{y:g}</text>',
        ]
    parts += [
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#999"/>',
        f'<text x="{_LEFT + plot_w / 2}" y="{_HEIGHT - 8}" text-anchor="middle">'
        f"{escape(x_label)}</text>",
        f'<text transform="translate(16,{_TOP + plot_h / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>',
    ]
    for index, (name, values) in enumerate(series.items()):
        colour = _COLOURS[index % len(_COLOURS)]
        line = " ".join(at(x, y) for x, y in values)
        parts += [
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5"/>',
            f'<rect x="{_WIDTH - _RIGHT + 12}" y="{_TOP + 18 * index}" width="12" height="3" '
            f'fill="{colour}"/>',
            f'<text x="{_WIDTH - _RIGHT + 30}" y="{_TOP + 18 * index + 5}">{escape(name)}</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _nice(value: float) -> float:
    """The smallest round number (1, 1.2, 1.5, 2 … 8 times a power of ten) at least ``value``."""
    if value <= 0:
        return 1.0
    scale = 10 ** (len(str(int(value))) - 1)
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * scale >= value:
            return float(step * scale)
    return float(10 * scale)
