"""The report's section on fairness by group: for each sensitive attribute of the latest
monitored window, each group's selection rate with its 95 % Wilson interval, drawn against
four fifths of the highest rate (below it, a group suffers adverse impact), then the
comparison between groups and every group's numbers.

``fairness`` is what a stored window keeps (``summary["fairness"]``:
:meth:`vigil.stats.fairness.FairnessReport.to_dict` per attribute).

>>> from vigil.stats.fairness import GroupCounts, fairness_report
>>> r = fairness_report({"f": GroupCounts(80, 20), "m": GroupCounts(90, 45),
...                      "x": GroupCounts(5, 1)}, min_group_size=30)
>>> html = fairness_section({"sex": r.to_dict()}, "window of 2025-03-01 10:00 UTC")
>>> "<svg" in html and "four fifths" in html and "x (small)" in html
True
>>> fairness_section(None, "")
''
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from vigil.monitor.points import BETWEEN_METRICS, FOUR_FIFTHS

_W, _ROW, _LABEL, _PAD = 360.0, 18.0, 110.0, 6.0


def _num(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(float(value), spec)


def _x(value: float) -> float:
    return _LABEL + max(0.0, min(1.0, value)) * (_W - _LABEL - _PAD)


def selection_svg(attribute: str, groups: Mapping[str, Mapping[str, Any]]) -> str:
    """Selection rate per group (bar), its interval (whisker) and the four-fifths line."""
    shown = [(g, v) for g, v in groups.items() if v.get("selection_rate") is not None]
    height = _ROW * len(shown) + 2 * _PAD
    judged = [float(v["selection_rate"]) for _, v in shown if not v.get("small")]
    parts = [
        f'<svg class="fairness" width="{_W:g}" height="{height:g}" '
        f'viewBox="0 0 {_W:g} {height:g}" role="img">'
        f"<title>Selection rate by {escape(attribute)}, with 95 % intervals</title>"
    ]
    for i, (group, v) in enumerate(shown):
        y = _PAD + i * _ROW
        rate = float(v["selection_rate"])
        fill = "#bbb" if v.get("small") else "#7aa6d8"
        label = f"{group} (small)" if v.get("small") else group
        parts.append(
            f'<text x="{_LABEL - 4:g}" y="{y + 12:g}" text-anchor="end" font-size="11">'
            f"{escape(label[:18])}</text>"
            f'<rect x="{_x(0):.1f}" y="{y + 3:g}" width="{max(_x(rate) - _x(0), 1):.1f}" '
            f'height="{_ROW - 6:g}" fill="{fill}"/>'
        )
        low, high = v.get("selection_rate_low"), v.get("selection_rate_high")
        if low is not None and high is not None:
            mid = y + _ROW / 2
            parts.append(
                f'<line x1="{_x(float(low)):.1f}" y1="{mid:g}" x2="{_x(float(high)):.1f}" '
                f'y2="{mid:g}" stroke="#1f4e8c" stroke-width="1.5"/>'
            )
    if judged:
        x = _x(FOUR_FIFTHS * max(judged))
        parts.append(
            f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height:g}" stroke="#c0392b" '
            'stroke-dasharray="4 3"/>'
        )
    return "".join(parts) + "</svg>"


def _attribute(attribute: str, data: Mapping[str, Any]) -> str:
    groups: Mapping[str, Mapping[str, Any]] = data.get("groups") or {}
    between: Mapping[str, Any] = data.get("between") or {}
    rows = "".join(
        f"<tr><td>{escape(g)}{' (small)' if v.get('small') else ''}</td>"
        f"<td>{int(v.get('count') or 0):,}</td><td>{int(v.get('labelled') or 0):,}</td>"
        f"<td>{_num(v.get('selection_rate'))} ({_num(v.get('selection_rate_low'))} to "
        f"{_num(v.get('selection_rate_high'))})</td>"
        f"<td>{_num(v.get('accuracy'))}</td><td>{_num(v.get('tpr'))}</td>"
        f"<td>{_num(v.get('fpr'))}</td></tr>"
        for g, v in groups.items()
    )
    comparison = "".join(
        f"<tr><td>{escape(m)}</td><td>{_num(between.get(m), '.4g')}</td></tr>"
        for m in BETWEEN_METRICS
    )
    return (
        f"<h3>By {escape(attribute)}</h3>"
        f"<figure>{selection_svg(attribute, groups)}<figcaption>Selection rate by "
        f"{escape(attribute)}: bars, 95 % Wilson intervals as lines, the dashed line at four "
        "fifths of the highest rate among groups large enough to compare (grey: below the "
        f"minimum of {int(data.get('min_group_size') or 0)} rows, not compared).</figcaption>"
        "</figure>"
        '<table class="fairness-groups"><thead><tr><th scope="col">group</th>'
        '<th scope="col">rows</th><th scope="col">labelled</th>'
        '<th scope="col">selection rate (95 %)</th><th scope="col">accuracy</th>'
        '<th scope="col">TPR</th><th scope="col">FPR</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        '<table class="fairness-between"><thead><tr><th scope="col">between groups</th>'
        f'<th scope="col">value</th></tr></thead><tbody>{comparison}</tbody></table>'
    )


def fairness_section(fairness: Mapping[str, Mapping[str, Any]] | None, where: str) -> str:
    """The section's HTML (``where`` names the window it shows), or nothing."""
    if not fairness:
        return ""
    body = "".join(_attribute(a, d) for a, d in fairness.items())
    return (
        "<h2>Fairness by group</h2>"
        f"<p>{escape(where)}: selection rates over every prediction, accuracy and true and "
        "false positive rates over the labelled ones; differences and ratios between the "
        "groups large enough to compare (docs/fairness.md).</p>"
        f"{body}"
    )
