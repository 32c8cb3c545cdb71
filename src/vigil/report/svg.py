"""Inline SVG charts: one feature's reference and current distributions overlaid.

Drawn in Python as plain SVG markup so the HTML report needs no chart library and opens
offline. Numeric features are histograms over shared bins (the two sides' bars overlap,
half transparent); categorical features are grouped bars, one pair per category. Every
piece of user text (column names, category labels) goes through :func:`html.escape`.

>>> from vigil.report.distributions import summarise_categorical
>>> ref, cur = summarise_categorical(["a", "b"], ["b", "<c>"])
>>> svg = feature_chart("plan", ref, cur)
>>> svg.startswith("<svg") and "&lt;c&gt;" in svg and "<c>" not in svg
True
"""

from __future__ import annotations

import math
from html import escape

from vigil.report.distributions import Distribution

WIDTH, HEIGHT = 560, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 34, 78
REFERENCE_COLOUR = "#4c78a8"
CURRENT_COLOUR = "#f58518"
MAX_LABEL = 14
Y_TICKS = 5
"""Intervals on the y axis: a fifth of 1, 2, 2.5 or 5 × 10^k is a round number."""


def _fmt(value: float) -> str:
    """A short tick label: ``1.23e+04`` style only for very large or small numbers."""
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.2e}"


def _nice_max(peak: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above ``peak`` (at least 1%)."""
    peak = max(peak, 0.01)
    base = float(10.0 ** math.floor(math.log10(peak)))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * base >= peak - 1e-12:
            return step * base
    return 10 * base  # pragma: no cover - the loop always returns


def _y_axis(top: float, plot_h: float) -> list[str]:
    parts = []
    spec = ".0%" if top >= 0.04 else ".1%"  # whole percents unless the bars are tiny
    for i in range(Y_TICKS + 1):
        value = top * i / Y_TICKS
        y = TOP + plot_h - plot_h * i / Y_TICKS
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{value:{spec}}</text>"
        )
    mid = TOP + plot_h / 2
    parts.append(
        f'<text class="axis-title" x="14" y="{mid:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {mid:.1f})">share of rows</text>'
    )
    return parts


def _legend(reference: Distribution, current: Distribution | None) -> str:
    x = WIDTH - RIGHT - (290 if current is not None else 140)
    parts = [
        f'<g class="legend">'
        f'<rect x="{x}" y="8" width="12" height="12" fill="{REFERENCE_COLOUR}" fill-opacity="0.7"/>'
        f'<text x="{x + 17}" y="18">reference (n={reference.n:,})</text>'
    ]
    if current is not None:
        parts.append(
            f'<rect x="{x + 150}" y="8" width="12" height="12" fill="{CURRENT_COLOUR}" '
            f'fill-opacity="0.7"/>'
            f'<text x="{x + 167}" y="18">current (n={current.n:,})</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _bar(x: float, width: float, value: float, top: float, plot_h: float, side: str) -> str:
    h = plot_h * value / top if top else 0.0
    y = TOP + plot_h - h
    colour = REFERENCE_COLOUR if side == "reference" else CURRENT_COLOUR
    return (
        f'<rect class="bar {side}" x="{x:.2f}" y="{y:.2f}" width="{max(width, 0.5):.2f}" '
        f'height="{h:.2f}" fill="{colour}" fill-opacity="0.55">'
        f"<title>{side}: {value:.2%}</title></rect>"
    )


def _numeric_body(
    reference: Distribution, current: Distribution | None, top: float, plot_w: float, plot_h: float
) -> list[str]:
    edges = reference.edges
    lo, hi = edges[0], edges[-1]
    span = (hi - lo) or 1.0
    parts: list[str] = []
    sides = [("reference", reference)] + ([("current", current)] if current is not None else [])
    for side, dist in sides:
        for i, value in enumerate(dist.proportions):
            x0 = LEFT + plot_w * (edges[i] - lo) / span
            x1 = LEFT + plot_w * (edges[i + 1] - lo) / span
            parts.append(_bar(x0, x1 - x0, value, top, plot_h, side))
    base = TOP + plot_h
    for i in range(5):
        value = lo + span * i / 4
        x = LEFT + plot_w * i / 4
        # The outer labels lean inwards so that they stay inside the picture.
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(
            f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}"/>'
            f'<text class="tick" x="{x:.1f}" y="{base + 17}" text-anchor="{anchor}">'
            f"{escape(_fmt(value))}</text>"
        )
    return parts


def _categorical_body(
    reference: Distribution, current: Distribution | None, top: float, plot_w: float, plot_h: float
) -> list[str]:
    labels = reference.labels
    slot = plot_w / max(len(labels), 1)
    # One bar per category when the reference is drawn alone, else a pair.
    bar_w = slot * (0.38 if current is not None else 0.76)
    base = TOP + plot_h
    parts: list[str] = []
    for i, label in enumerate(labels):
        x = LEFT + slot * i + slot * 0.12
        parts.append(_bar(x, bar_w, reference.proportions[i], top, plot_h, "reference"))
        if current is not None:
            parts.append(_bar(x + bar_w, bar_w, current.proportions[i], top, plot_h, "current"))
        short = label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"
        cx = LEFT + slot * (i + 0.5)
        parts.append(
            f'<text class="tick" x="{cx:.1f}" y="{base + 14}" text-anchor="end" '
            f'transform="rotate(-35 {cx:.1f} {base + 14})"><title>{escape(label)}</title>'
            f"{escape(short)}</text>"
        )
    return parts


def feature_chart(column: str, reference: Distribution, current: Distribution | None) -> str:
    """An ``<svg>`` overlaying ``reference`` and ``current`` for feature ``column``, or
    the reference alone when ``current`` is ``None`` (a baseline profile's chart)."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    shares = (*reference.proportions, *(current.proportions if current is not None else ()))
    top = _nice_max(max((*shares, 0.0)))
    body = (
        _numeric_body(reference, current, top, plot_w, plot_h)
        if reference.kind == "numeric"
        else _categorical_body(reference, current, top, plot_w, plot_h)
    )
    base = TOP + plot_h
    x_title = "value" if reference.kind == "numeric" else "category"
    missing = ""
    if current is None:
        if reference.missing:
            missing = f" · missing: {reference.missing:.1%}"
    elif reference.missing or current.missing:
        missing = f" · missing: reference {reference.missing:.1%}, current {current.missing:.1%}"
    name = escape(column)
    shown = "reference and current" if current is not None else "reference"
    return "".join(
        [
            f'<svg class="chart" data-column="{name}" role="img" '
            f'aria-label="Distribution of {name}: {shown}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
            f'xmlns="http://www.w3.org/2000/svg">',
            f'<text class="chart-title" x="{LEFT}" y="20">{name}</text>',
            _legend(reference, current),
            *_y_axis(top, plot_h),
            *body,
            f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}"/>',
            f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{base}"/>',
            f'<text class="axis-title" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 8}" '
            f'text-anchor="middle">{x_title}{escape(missing)}</text>',
            "</svg>",
        ]
    )
