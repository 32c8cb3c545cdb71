"""Drift reports people read: chart summaries, inline SVG charts and one HTML page.

:func:`render_html` turns a :class:`vigil.drift.DriftReport` and the per-feature
distributions of :func:`chart_distributions` into a self-contained page; :func:`run_drift` reads two
CSV / Parquet files and produces everything the ``vigil drift`` command shows;
:func:`capture_report` compares a model's captured traffic with its baseline profile
(``vigil report``).
"""

from __future__ import annotations

from vigil.report.capture_report import CaptureReport, capture_report
from vigil.report.distributions import Distribution, chart_distributions
from vigil.report.html import render_html
from vigil.report.run import DriftRun, run_drift

__all__ = [
    "CaptureReport",
    "Distribution",
    "DriftRun",
    "capture_report",
    "chart_distributions",
    "render_html",
    "run_drift",
]
