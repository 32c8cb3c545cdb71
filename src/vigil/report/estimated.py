"""The report's section on performance estimated before labels arrive: one row per metric,
its value, its 95 % interval drawn on a 0-1 scale, and the value on the labelled reference.

>>> from vigil.monitor.estimated import EstimatedMetric
>>> html = estimated_section({"accuracy": EstimatedMetric(0.8, 0.78, 0.82, 0.95)},
...                          {"accuracy": 0.85})
>>> "accuracy" in html and "<svg" in html and "0.850" in html
True
>>> estimated_section(None, {})
''
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from vigil.monitor.estimated import EstimatedMetric

_W, _H, _PAD = 240.0, 18.0, 4.0


def _x(value: float) -> float:
    return _PAD + max(0.0, min(1.0, value)) * (_W - 2 * _PAD)


def interval_svg(e: EstimatedMetric, reference: float | None) -> str:
    """A 0-1 scale with the interval as a bar, the estimate as a dot and the reference as
    a tick."""
    assert e.value is not None and e.low is not None and e.high is not None
    mid = _H / 2
    parts = [
        f'<svg class="interval" width="{_W:g}" height="{_H:g}" viewBox="0 0 {_W:g} {_H:g}" '
        f'role="img" aria-label="estimate {e.value:.3f}, interval {e.low:.3f} to {e.high:.3f}">',
        f'<line x1="{_x(0):.1f}" y1="{mid}" x2="{_x(1):.1f}" y2="{mid}" stroke="#ccc"/>',
        f'<rect x="{_x(e.low):.1f}" y="{mid - 3}" width="{max(_x(e.high) - _x(e.low), 1):.1f}" '
        'height="6" fill="#7aa6d8"/>',
        f'<circle cx="{_x(e.value):.1f}" cy="{mid}" r="3.5" fill="#1f4e8c"/>',
    ]
    if reference is not None:
        x = _x(reference)
        parts.append(f'<line x1="{x:.1f}" y1="2" x2="{x:.1f}" y2="{_H - 2}" stroke="#333"/>')
    return "".join(parts) + "</svg>"


def estimated_section(
    estimated: Mapping[str, EstimatedMetric] | None, reference: Mapping[str, float]
) -> str:
    """The section's HTML, or nothing when there is no estimate."""
    rows = [(m, e) for m, e in (estimated or {}).items() if e.value is not None]
    if not rows:
        return ""
    body = ""
    for m, e in rows:
        if e.low is None or e.high is None:
            continue
        ref = f"{reference[m]:.3f}" if m in reference else "-"
        body += (
            f"<tr><td>{escape(m)}</td><td>{e.value:.3f}</td><td>{e.low:.3f} to {e.high:.3f}</td>"
            f"<td>{ref}</td><td>{interval_svg(e, reference.get(m))}</td></tr>"
        )
    return (
        "<h2>Performance estimated before labels</h2>"
        "<p>From the logged class probabilities, calibrated on the reference labels (CBPE): "
        "what the labels of these predictions should show, with the 95 % interval of the "
        "value they will realise; the tick is the value on the labelled reference.</p>"
        '<table id="estimated"><thead><tr><th scope="col">metric</th>'
        '<th scope="col">estimate</th><th scope="col">95 % interval</th>'
        '<th scope="col">reference</th><th scope="col">0 to 1</th></tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )
