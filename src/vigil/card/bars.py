"""Horizontal bar charts as inline SVG: a model card's importance and per-group fairness.

The distribution charts come from :mod:`vigil.report.svg` (same colours, same classes);
this draws the one shape it lacks, one labelled bar per item, scaled to the largest
absolute value. Labels are user text and go through :func:`html.escape`.

>>> svg = bar_chart("importance", [("age <years>", 2.0), ("plan", 1.0)], label="mean |attr|")
>>> svg.count('class="bar reference"'), "&lt;years&gt;" in svg, "<years>" in svg
(2, True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from vigil.report.svg import REFERENCE_COLOUR

WIDTH = 560
ROW = 22
LEFT, RIGHT, TOP, BOTTOM = 170, 70, 34, 12
MAX_LABEL = 24


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def bar_chart(title: str, items: Sequence[tuple[str, float]], *, label: str) -> str:
    """An ``<svg class="chart">`` with one bar per ``(name, value)``, in the given order;
    ``label`` says what the values are (the accessible name and the axis)."""
    height = TOP + ROW * max(len(items), 1) + BOTTOM
    plot_w = WIDTH - LEFT - RIGHT
    largest = max((abs(v) for _, v in items), default=0.0) or 1.0
    name = escape(title)
    parts = [
        f'<svg class="chart bars" data-chart="{name}" role="img" '
        f'aria-label="{name}: {escape(label)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{name}: {escape(label)}</title>",
        f'<text class="chart-title" x="8" y="20">{name}</text>',
        f'<text class="axis-title" x="{WIDTH - RIGHT}" y="20" text-anchor="end">'
        f"{escape(label)}</text>",
    ]
    for i, (item, value) in enumerate(items):
        y = TOP + ROW * i
        w = max(plot_w * abs(value) / largest, 0.5)
        short = item if len(item) <= MAX_LABEL else item[: MAX_LABEL - 1] + "…"
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 14}" text-anchor="end">'
            f"<title>{escape(item)}</title>{escape(short)}</text>"
            f'<rect class="bar reference" x="{LEFT}" y="{y + 3}" width="{w:.2f}" '
            f'height="{ROW - 6}" fill="{REFERENCE_COLOUR}" fill-opacity="0.75">'
            f"<title>{escape(item)}: {_fmt(value)}</title></rect>"
            f'<text class="tick" x="{LEFT + w + 4:.2f}" y="{y + 14}">{_fmt(value)}</text>'
        )
    parts.append(
        f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{height - BOTTOM}"/></svg>'
    )
    return "".join(parts)
