"""The console's charts: inline SVG drawn on the server, each with its numbers in a table.

The console's Content-Security-Policy allows no inline script and no ``style=`` attribute,
so every chart is plain SVG markup with presentation attributes (``fill``, ``stroke``)
only, and every piece of user text (model, feature, group names) is escaped here. A chart
is accessible: the ``<svg>`` has ``role="img"`` and a ``<title>``, and the numbers it draws
follow in a ``<details>`` table, so the page reads fully without the picture.

The feature distributions of a drift drill-down are the HTML report's own charts
(:func:`vigil.report.svg.feature_chart`), given a title here.

>>> html = bar_chart("Importance of <b>", [("age", 0.5), ("<i>", 0.25)])
>>> 'role="img"' in html and "<title>Importance of &lt;b&gt;</title>" in html
True
>>> "<i>" in html, "style=" in html
(False, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

if TYPE_CHECKING:
    from vigil.report.distributions import Distribution

__all__ = [
    "Cell",
    "Series",
    "bar_chart",
    "column_chart",
    "distribution_chart",
    "heatmap",
    "interval_chart",
    "line_chart",
    "number",
]

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d", "#bab0ac")
"""Tableau 10's first colours: distinct for the colour-blind in most pairs."""
DRIFTED = "#d62728"
STABLE = "#cfe8cf"
EMPTY = "#eeeeee"
SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'


def number(value: float | None, spec: str = ".4g") -> str:
    """A value as the tables print it: ``-`` for none or NaN.

    >>> number(0.123456), number(None), number(float("nan")), number(3.0, ".1%")
    ('0.1235', '-', '-', '300.0%')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _open(title: str, width: float, height: float, css: str) -> str:
    return (
        f'<svg class="chart {css}" role="img" viewBox="0 0 {width:g} {height:g}" '
        f'width="{width:g}" height="{height:g}" font-family="sans-serif" font-size="11" '
        f"{SVG_NS}><title>{escape(title)}</title>"
    )


def _built(markup: str) -> Markup:
    """Markup assembled in this module, where every piece of user text was escaped."""
    return Markup(markup)  # noqa: S704  # escaped piece by piece where it was built


def _figure(svg: str, table: str, caption: str) -> Markup:
    return Markup(
        '<figure class="chart">{}<figcaption>{}</figcaption>'
        "<details><summary>Numbers</summary>{}</details></figure>"
    ).format(_built(svg), caption, _built(table))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f'<th scope="col">{escape(h)}</th>' for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<th scope="row">{escape(c)}</th>' if i == 0 else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _short(text: str, limit: int = 18) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- bars -----------------------------------------------------------------------------------


def bar_chart(
    title: str, items: Sequence[tuple[str, float]], *, spec: str = ".4g", label: str = "value"
) -> Markup:
    """Horizontal bars, one per ``(name, value)`` (values ≥ 0; a negative one draws as 0)."""
    row_h, left, right = 22, 150, 70
    width = 560
    height = 12 + row_h * max(len(items), 1)
    peak = max((v for _, v in items if math.isfinite(v)), default=0.0) or 1.0
    plot = width - left - right
    parts = [_open(title, width, height, "bars")]
    for i, (name, value) in enumerate(items):
        y = 6 + row_h * i
        w = plot * max(value, 0.0) / peak if math.isfinite(value) else 0.0
        parts.append(
            f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(_short(name))}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
            f'fill="{PALETTE[0]}"><title>{escape(name)}: {number(value, spec)}</title></rect>'
            f'<text x="{left + w + 4:.1f}" y="{y + 15}">{number(value, spec)}</text>'
        )
    parts.append("</svg>")
    table = _table(["name", label], [(n, number(v, spec)) for n, v in items])
    return _figure("".join(parts), table, title)


def column_chart(
    title: str, items: Sequence[tuple[str, float]], *, spec: str = ".4g", label: str = "value"
) -> Markup:
    """Vertical bars in order (a histogram's bins, a profile's categories); the first and
    last names under the axis, or every name when there are at most 12."""
    width, height, left, right, top, bottom = 560, 200, 56, 12, 12, 62
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((v for _, v in items if math.isfinite(v)), default=0.0) or 1.0
    slot = plot_w / max(len(items), 1)
    parts = [_open(title, width, height, "columns")]
    base = top + plot_h
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{base}" y2="{base}" stroke="#888"/>'
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{number(peak, spec)}</text>'
        f'<text x="{left - 4}" y="{base}" text-anchor="end">0</text>'
    )
    shown = set(range(len(items))) if len(items) <= 12 else {0, len(items) - 1}
    for i, (name, value) in enumerate(items):
        h = plot_h * max(value, 0.0) / peak if math.isfinite(value) else 0.0
        x = left + slot * i
        parts.append(
            f'<rect x="{x + slot * 0.1:.1f}" y="{base - h:.1f}" width="{slot * 0.8:.1f}" '
            f'height="{h:.1f}" fill="{PALETTE[0]}"><title>{escape(name)}: '
            f"{number(value, spec)}</title></rect>"
        )
        if i in shown:
            cx, cy = x + slot / 2, base + 12
            parts.append(
                f'<text x="{cx:.1f}" y="{cy}" text-anchor="end" '
                f'transform="rotate(-30 {cx:.1f} {cy})">{escape(_short(name, 16))}</text>'
            )
    parts.append("</svg>")
    table = _table(["name", label], [(n, number(v, spec)) for n, v in items])
    return _figure("".join(parts), table, title)


# -- lines over windows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One line: a value per x position (``None`` where the window has none), with an
    optional band (``low``/``high``, same length)."""

    name: str
    values: Sequence[float | None]
    low: Sequence[float | None] | None = None
    high: Sequence[float | None] | None = None


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def line_chart(
    title: str, x_labels: Sequence[str], series: Sequence[Series], *, spec: str = ".4g"
) -> Markup:
    """Lines over ``x_labels`` (windows, oldest first), each series in its own colour; a
    band is drawn behind its line where both ends are known."""
    width, height = 640, 220
    left, right, top, bottom = 56, 170, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    every = [
        v for s in series for seq in (s.values, s.low or (), s.high or ()) for v in _finite(seq)
    ]
    lo, hi = (min(every), max(every)) if every else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    n = max(len(x_labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    parts = [_open(title, width, height, "lines")]
    for i in range(3):
        v = lo + (hi - lo) * i / 2
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            f'stroke="#ddd"/><text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end">'
            f"{number(v)}</text>"
        )
    for i in sorted({0, n - 1}) if x_labels else ():
        anchor = "start" if i == 0 else "end"
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - 12}" text-anchor="{anchor}">'
            f"{escape(x_labels[i])}</text>"
        )
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        if s.low is not None and s.high is not None:
            for i in range(len(s.values)):
                lo_i, hi_i = s.low[i], s.high[i]
                if lo_i is None or hi_i is None:
                    continue
                parts.append(
                    f'<rect x="{x(i) - 3:.1f}" y="{y(hi_i):.1f}" width="6" '
                    f'height="{max(y(lo_i) - y(hi_i), 1):.1f}" fill="{colour}" fill-opacity="0.3"/>'
                )
        points = [
            (x(i), y(v)) for i, v in enumerate(s.values) if v is not None and math.isfinite(v)
        ]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        for i, value in enumerate(s.values):
            if value is not None and math.isfinite(value):
                parts.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="3" fill="{colour}">'
                    f"<title>{escape(s.name)} at {escape(x_labels[i])}: {number(value, spec)}</title>"
                    "</circle>"
                )
        ly = top + 14 * k + 8
        parts.append(
            f'<rect x="{width - right + 8}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{width - right + 22}" y="{ly + 1}">{escape(_short(s.name, 26))}</text>'
        )
    parts.append("</svg>")
    head = ["window", *(s.name for s in series)]
    rows = []
    for i, label in enumerate(x_labels):
        row = [label]
        for s in series:
            cell = number(s.values[i], spec)
            if s.low is not None and s.high is not None and s.low[i] is not None:
                cell += f" ({number(s.low[i], spec)} to {number(s.high[i], spec)})"
            row.append(cell)
        rows.append(row)
    return _figure("".join(parts), _table(head, rows), title)


# -- intervals ------------------------------------------------------------------------------


def interval_chart(
    title: str,
    rows: Sequence[tuple[str, float | None, float | None, float | None]],
    *,
    spec: str = ".4g",
) -> Markup:
    """One row per ``(name, value, low, high)``: the interval as a bar, the value as a dot,
    on a scale shared by every row (rows without a value are listed, not drawn)."""
    width, row_h, left, right = 560, 26, 150, 20
    height = 30 + row_h * max(len(rows), 1)
    every = [v for _, *vals in rows for v in _finite(vals)]
    lo, hi = (min(every), max(every)) if every else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    plot = width - left - right

    def x(v: float) -> float:
        return left + plot * (v - lo) / (hi - lo)

    parts = [_open(title, width, height, "intervals")]
    parts.append(
        f'<text x="{left}" y="{height - 6}">{number(lo)}</text>'
        f'<text x="{width - right}" y="{height - 6}" text-anchor="end">{number(hi)}</text>'
    )
    for i, (name, value, low, high) in enumerate(rows):
        cy = 14 + row_h * i
        parts.append(
            f'<text x="{left - 6}" y="{cy + 4}" text-anchor="end">{escape(_short(name))}</text>'
        )
        if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
            parts.append(
                f'<rect x="{x(low):.1f}" y="{cy - 4}" width="{max(x(high) - x(low), 1):.1f}" '
                f'height="8" fill="{PALETTE[0]}" fill-opacity="0.45"/>'
            )
        if value is not None and math.isfinite(value):
            parts.append(
                f'<circle cx="{x(value):.1f}" cy="{cy}" r="4" fill="{PALETTE[0]}">'
                f"<title>{escape(name)}: {number(value, spec)} ({number(low, spec)} to "
                f"{number(high, spec)})</title></circle>"
            )
    parts.append("</svg>")
    table = _table(
        ["name", "value", "low", "high"],
        [(n, number(v, spec), number(a, spec), number(b, spec)) for n, v, a, b in rows],
    )
    return _figure("".join(parts), table, title)


# -- heatmap --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One feature in one window: its adjusted p-value (or ``None``), statistic, verdict
    and the page it drills down to."""

    p_value: float | None
    statistic: float | None
    drifted: bool | None
    href: str | None = None


def _fill(cell: Cell | None) -> tuple[str, str]:
    """The cell's colour and opacity: red for drifted (darker as p falls), green for not."""
    if cell is None or cell.drifted is None:
        return EMPTY, "1"
    if not cell.drifted:
        return STABLE, "1"
    p = cell.p_value if cell.p_value is not None and cell.p_value > 0 else 1e-12
    strength = min(1.0, 0.45 + 0.55 * min(-math.log10(p), 12) / 12)
    return DRIFTED, f"{strength:.2f}"


def _verdict(cell: Cell | None) -> str:
    if cell is None or cell.drifted is None:
        return "no data"
    text = "drifted" if cell.drifted else "stable"
    if cell.p_value is not None:
        text += f", p {number(cell.p_value, '.3g')}"
    elif cell.statistic is not None:
        text += f", statistic {number(cell.statistic, '.3g')}"
    return text


def heatmap(
    title: str,
    features: Sequence[str],
    windows: Sequence[str],
    cells: Mapping[tuple[str, int], Cell],
) -> Markup:
    """Features (rows) × windows (columns, oldest first); ``cells[(feature, column)]``.

    Every feature × window pair gets a cell, ``no data`` where the window has none; a cell
    with an ``href`` links to its drill-down, in the picture and in the table.
    """
    cell_w, cell_h, left, top = 28, 20, 150, 84
    width = left + cell_w * max(len(windows), 1) + 60
    height = top + cell_h * max(len(features), 1) + 8
    parts = [_open(title, width, height, "heatmap")]
    every = max(1, math.ceil(len(windows) / 40))  # a label for at most 40 columns
    for j in range(0, len(windows), every):
        x, y = left + cell_w * j + cell_w / 2, top - 6
        parts.append(
            f'<text x="{x:.1f}" y="{y}" transform="rotate(-50 {x:.1f} {y})">'
            f"{escape(_short(windows[j], 16))}</text>"
        )
    for i, feature in enumerate(features):
        y = top + cell_h * i
        parts.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(_short(feature))}</text>'
        )
        for j, window in enumerate(windows):
            cell = cells.get((feature, j))
            fill, opacity = _fill(cell)
            rect = (
                f'<rect class="cell" x="{left + cell_w * j}" y="{y}" width="{cell_w - 2}" '
                f'height="{cell_h - 2}" fill="{fill}" fill-opacity="{opacity}">'
                f"<title>{escape(feature)} in {escape(window)}: {escape(_verdict(cell))}</title>"
                "</rect>"
            )
            if cell is not None and cell.href:
                rect = f'<a href="{escape(cell.href)}">{rect}</a>'
            parts.append(rect)
    parts.append("</svg>")
    th = "".join(f'<th scope="col">{escape(w)}</th>' for w in windows)
    body = []
    for feature in features:
        tds = []
        for j in range(len(windows)):
            cell = cells.get((feature, j))
            text = escape(_verdict(cell))
            if cell is not None and cell.href:
                text = Markup('<a href="{}">{}</a>').format(cell.href, text)
            tds.append(f"<td>{text}</td>")
        body.append(f'<tr><th scope="row">{escape(feature)}</th>{"".join(tds)}</tr>')
    table = (
        f'<table class="heatmap-numbers"><thead><tr><th scope="col">feature</th>{th}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table>"
    )
    return _figure("".join(parts), table, title)


# -- distributions --------------------------------------------------------------------------


def distribution_chart(feature: str, reference: Distribution, current: Distribution) -> Markup:
    """The HTML report's reference-against-current chart of one feature, with a
    ``<title>`` and its numbers."""
    from vigil.report.svg import feature_chart  # NumPy and pandas: only for a drill-down

    svg = feature_chart(feature, reference, current)
    # The report sizes its text in its stylesheet; here the attributes do it.
    cut = svg.index(">")
    svg = (
        svg[:cut]
        + ' font-family="sans-serif" font-size="11">'
        + f"<title>Distribution of {escape(feature)}</title>"
        + svg[cut + 1 :]
    )
    if reference.kind == "numeric":
        edges = reference.edges
        names = [f"{number(edges[i])} to {number(edges[i + 1])}" for i in range(len(edges) - 1)]
    else:
        names = list(reference.labels)
    rows = [
        (name, number(r, ".2%"), number(c, ".2%"))
        for name, r, c in zip(names, reference.proportions, current.proportions, strict=False)
    ]
    rows.append(("missing", number(reference.missing, ".2%"), number(current.missing, ".2%")))
    table = _table(
        ["bin" if reference.kind == "numeric" else "category", "reference", "current"], rows
    )
    return _figure(
        svg, table, f"{feature}: reference (n={reference.n:,}) and current (n={current.n:,})"
    )
