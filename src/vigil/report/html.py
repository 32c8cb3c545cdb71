"""The drift report as ONE self-contained HTML page (no CDN, no fonts, no chart library).

The page shows the dataset verdict first, then a sortable table of every compared
feature, then one inline SVG chart per feature overlaying the reference and current
distributions (:mod:`vigil.report.svg`). The numbers are embedded once more as JSON in a
``<script type="application/json" id="vigil-data">`` block, from which the page's small
script sorts the table and which scripts may read back. All user text is escaped.

>>> import numpy as np
>>> from vigil.drift import compare
>>> from vigil.report.distributions import chart_distributions
>>> rng = np.random.default_rng(0)
>>> ref = {"x": rng.normal(0, 1, 400)}
>>> cur = {"x": rng.normal(1, 1, 400)}
>>> page = render_html(compare(ref, cur), *chart_distributions(ref, cur, set()), title="x <shift>")
>>> page.startswith("<!DOCTYPE html>"), "<title>x &lt;shift&gt;</title>" in page
(True, True)
>>> page.count('<svg class="chart"'), "http" in page.replace("http://www.w3.org/2000/svg", "")
(1, False)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any

from vigil.drift import ColumnDrift, DriftReport
from vigil.drift.impact import rank_by_impact
from vigil.monitor.estimated import EstimatedMetric
from vigil.report.assets import CSS, JS
from vigil.report.distributions import Distribution
from vigil.report.estimated import estimated_section
from vigil.report.fairness import fairness_section
from vigil.report.ordering import drifted_by_impact
from vigil.report.svg import feature_chart

HEADERS: tuple[tuple[str, str, str], ...] = (
    ("column", "column", "text"),
    ("kind", "kind", "text"),
    ("method", "method", "text"),
    ("statistic", "statistic", "number"),
    ("p_value_adjusted", "p-value (BH)", "number"),
    ("effect_size", "effect size", "number"),
    ("threshold", "threshold", "number"),
    ("drifted", "drifted", "number"),
)


def _num(value: float | None, spec: str = ".4g") -> str:
    return "—" if value is None else format(value, spec)


def threshold_text(c: ColumnDrift) -> str:
    """How the column's threshold reads: ``p < 0.05`` for tests, ``> 0.1`` for distances."""
    if c.method == "none":
        return "—"
    return f"p < {c.threshold:g}" if c.p_value is not None else f"> {c.threshold:g}"


def script_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>``, no HTML specials).

    >>> script_json({"a": "</script><b>&"})
    '{"a": "\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e\\\\u0026"}'
    """
    text = json.dumps(data, allow_nan=False, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


IMPACT_HEADER = ("impact", "impact", "number")
"""Shown after the effect size when the model's global importance is known."""


def _row(c: ColumnDrift, anchor: str, impact: float | None = None) -> str:
    name = escape(c.column)
    p_title = f' title="raw p-value {_num(c.p_value)}"' if c.p_value is not None else ""
    effect = _num(c.effect_size)
    if c.effect_size_method and c.effect_size is not None:
        effect += f' <span class="method">{escape(c.effect_size_method)}</span>'
    badge = (
        '<span class="badge yes">✓ drifted</span>'
        if c.drifted
        else '<span class="badge no">✗ stable</span>'
    )
    return (
        f'<tr data-column="{name}" class="{"drifted" if c.drifted else "stable"}">'
        f'<td><a href="#{anchor}">{name}</a></td><td>{c.kind}</td>'
        f'<td title="{escape(c.reason)}">{escape(c.method)}</td>'
        f'<td class="num">{_num(c.statistic)}</td>'
        f'<td class="num"{p_title}>{_num(c.p_value_adjusted, ".3g")}</td>'
        f'<td class="num">{effect}</td>'
        + (
            f'<td class="num" title="effect size × importance share">{_num(impact, ".3g")}</td>'
            if impact is not None
            else ""
        )
        + f'<td class="num">{escape(threshold_text(c))}</td>'
        f"<td>{badge}</td></tr>"
    )


def _aside(c: ColumnDrift, element_id: str, what: str) -> str:
    """One line on a column judged beside the verdict (the target, the predictions)."""
    moved = "drifted" if c.drifted else "did not drift"
    return (
        f'<p id="{element_id}" data-drifted="{str(c.drifted).lower()}">{what} '
        f"<strong>{escape(c.column)}</strong> {moved} "
        f"({escape(c.method)} = {_num(c.statistic)}, {escape(threshold_text(c))}).</p>"
    )


def _verdict(
    report: DriftReport,
    target: ColumnDrift | None,
    prediction: ColumnDrift | None,
    impact: Mapping[str, float] | None = None,
) -> str:
    compared = sum(c.method != "none" for c in report.columns)
    state = "drifted" if report.dataset_drifted else "stable"
    line = report.verdict()
    headline = escape(line[0].upper() + line[1:])
    if impact:
        ranked = sorted(report.drifted_columns, key=lambda n: (-impact.get(n, 0.0), n))
        names = ", ".join(f"{escape(n)} ({impact.get(n, 0.0):.2g})" for n in ranked)
        names = (
            f'<span id="drifted-by-impact">{names or "none"}</span>, largest impact first '
            "(drift effect size × the feature's share of the model's global importance)"
        )
    else:
        names = ", ".join(escape(n) for n in report.drifted_columns) or "none"
    target_line = ""
    if target is not None:
        target_line += _aside(target, "target-verdict", "Target")
    if prediction is not None:
        target_line += _aside(prediction, "prediction-verdict", "Model output")
    return (
        f'<section class="verdict {state}" id="verdict" data-drifted="{str(report.dataset_drifted).lower()}">'
        f'<p class="headline">{headline}</p>'
        f"<p><strong>{report.n_drifted}</strong> of {compared} compared columns drifted "
        f"(<strong>{report.share_drifted:.0%}</strong>; the dataset counts as drifted at "
        f"{report.drift_share:.0%}). Drifted: {names}.</p>"
        f"{target_line}"
        f'<p class="rule">Rule: {escape(report.rule)}.</p>'
        f"</section>"
    )


def _figure(c: ColumnDrift, anchor: str, reference: Distribution, current: Distribution) -> str:
    caption = (
        f"{escape(c.method)} = {_num(c.statistic)} ({escape(threshold_text(c))})"
        f" · {'drifted' if c.drifted else 'stable'}"
    )
    return (
        f'<figure id="{anchor}" class="feature {"drifted" if c.drifted else "stable"}">'
        f"{feature_chart(c.column, reference, current)}<figcaption>{caption}</figcaption></figure>"
    )


def render_html(
    report: DriftReport,
    reference_summary: Mapping[str, Distribution],
    current_summary: Mapping[str, Distribution],
    *,
    title: str,
    subtitle: str = "",
    target: ColumnDrift | None = None,
    prediction: ColumnDrift | None = None,
    prediction_summary: tuple[Distribution, Distribution] | None = None,
    estimated: Mapping[str, EstimatedMetric] | None = None,
    estimated_reference: Mapping[str, float] | None = None,
    fairness: Mapping[str, Mapping[str, Any]] | None = None,
    fairness_window: str = "",
    importance: Mapping[str, float] | None = None,
) -> str:
    """The whole report page as one string.

    ``reference_summary``/``current_summary`` map column names to the chart data of
    :mod:`vigil.report.distributions`; a column without one gets no chart. ``target``
    is the label column's drift and ``prediction`` the model output's (with its chart
    data ``prediction_summary``), shown beside the verdict but not counted in it.
    ``estimated`` (with ``estimated_reference``) draws the performance estimated before
    labels: each metric's interval beside its value on the labelled reference.
    ``fairness`` (of the window ``fairness_window`` names) draws fairness by group
    (:mod:`vigil.report.fairness`).
    ``importance`` (the model's global importance) adds each column's impact, its drift
    weighted by importance (:mod:`vigil.drift.impact`), and ranks the drifted ones by it.
    """
    impact = {f.column: f.impact for f in rank_by_impact(report.columns, importance or {})}
    ordered = drifted_by_impact(report.columns, impact)
    # Column names may hold anything; element ids come from positions instead.
    anchors = {c.column: f"chart-{i}" for i, c in enumerate(report.columns)}
    report_data = report.to_dict()
    if impact:
        for record in report_data["columns"]:
            record["impact"] = impact.get(record["column"])
    data = {
        "title": title,
        "report": report_data,
        "target": target.to_dict() if target is not None else None,
        "prediction": prediction.to_dict() if prediction is not None else None,
        "prediction_chart": (
            {
                "reference": prediction_summary[0].to_dict(),
                "current": prediction_summary[1].to_dict(),
            }
            if prediction_summary is not None
            else None
        ),
        "charts": {
            name: {"reference": ref.to_dict(), "current": current_summary[name].to_dict()}
            for name, ref in reference_summary.items()
            if name in current_summary
        },
    }
    headers = list(HEADERS)
    if impact:
        headers.insert(headers.index(("effect_size", "effect size", "number")) + 1, IMPACT_HEADER)
    head = "".join(
        f'<th data-key="{key}" data-type="{kind}" scope="col" aria-sort="none">{label}</th>'
        for key, label, kind in headers
    )
    shown_impact = (lambda c: impact.get(c.column, 0.0)) if impact else (lambda c: None)
    figures = "".join(
        _figure(c, anchors[c.column], reference_summary[c.column], current_summary[c.column])
        for c in ordered
        if c.column in reference_summary and c.column in current_summary
    )
    if prediction is not None and prediction_summary is not None:
        figures = _figure(prediction, "chart-prediction", *prediction_summary) + figures
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>"
        f'<p class="subtitle">{escape(subtitle)}</p>'
        f"{_verdict(report, target, prediction, impact)}"
        f"{estimated_section(estimated, estimated_reference or {})}"
        f"{fairness_section(fairness, fairness_window)}"
        '<h2>Features</h2><table id="features">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(_row(c, anchors[c.column], shown_impact(c)) for c in ordered)}</tbody></table>"
        f'<h2>Distributions</h2><div class="charts">{figures}</div>'
        f"<footer>Generated by vigil on {generated}. Click a table header to sort.</footer>"
        f'</main><script type="application/json" id="vigil-data">{script_json(data)}</script>'
        f"<script>{JS}</script></body></html>\n"
    )
