"""``vigil report MODEL_URI``: drift of a model's captured traffic against its baseline.

Like ``vigil drift``, the exit status is 0 whether or not drift is found; it is non-zero,
with one line on stderr, when there is nothing to compare (no captured predictions in the
window, a version without a baseline profile) or the arguments are bad.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vigil.cli._options import JSON, print_report, services, since_option, time_option
from vigil.console import console, progress, shown
from vigil.uri import MAX_VERSION

if TYPE_CHECKING:
    from vigil.report.capture_report import CaptureReport


def _show(result: CaptureReport) -> None:
    from vigil.cli.drift import show_drift
    from vigil.report.window import describe_window

    versions = ", ".join(f"v{v}: {n:,}" for v, n in sorted(result.rows_by_version.items()))
    show_drift(
        f"Drift of {result.uri}: {result.rows:,} captured rows "
        f"{describe_window(result.since, result.until)} ({versions}) against the baseline of "
        f"version {result.baseline_version} ({result.reference_rows:,} reference rows)",
        result.report,
        result.prediction,
        noun="features",
    )
    if result.prediction is not None:
        moved = "drifted" if result.prediction.drifted else "did not drift"
        console.print(f"model output {moved} (not counted in the verdict)")
    ranked = result.drifted_by_impact
    if ranked:
        console.print(
            "drifted features by impact (effect size × importance share): "
            + ", ".join(f"{shown(f.column)} ({f.impact:.2g})" for f in ranked),
            highlight=False,
            soft_wrap=True,
        )
    for name, reason in result.not_compared.items():
        console.print(f"[dim]not compared: {shown(name)}: {shown(reason)}[/]", highlight=False)


def report(
    model_uri: str = typer.Argument(
        ..., help="The model: models:/NAME@ALIAS, models:/NAME/VERSION or NAME."
    ),
    since: str = since_option("24h", "Start of the window"),
    until: str = typer.Option(
        None, "--until", help="End of the window (exclusive), as --since; default: now."
    ),
    version: int = typer.Option(
        None,
        "--version",
        min=1,
        max=MAX_VERSION,
        help="Only the traffic version N answered, against N's baseline "
        "(default: every captured version, against the URI's version's baseline).",
    ),
    html: Path = typer.Option(None, "--html", help="Write a self-contained HTML report here."),
    json_out: bool = JSON,
) -> None:
    """Compare the predictions captured for MODEL_URI with its baseline profile.

    Exits 0 whether or not drift is found; non-zero when there is nothing to compare.
    """
    from vigil.report.capture_report import capture_report
    from vigil.report.html import render_html
    from vigil.report.window import describe_window

    now = datetime.now(UTC)
    start = time_option(since, "--since", now=now)
    end = time_option(until, "--until", now=now)
    with progress(not json_out) as display:
        result = capture_report(
            services(),
            model_uri,
            since=start,
            until=end,
            version=version,
            progress=display.step if display else None,
        )
    if html is not None:
        page = render_html(
            result.report,
            result.reference_summary,
            result.current_summary,
            title=f"Drift report: {result.uri}",
            subtitle=(
                f"{result.rows:,} captured predictions {describe_window(start, end)} compared "
                f"with the baseline profile of version {result.baseline_version} "
                f"({result.reference_rows:,} reference rows)"
            ),
            prediction=result.prediction,
            prediction_summary=result.prediction_summary,
            estimated=result.estimated,
            estimated_reference=result.estimated_reference,
            fairness=result.fairness,
            fairness_window=result.fairness_window,
            importance=result.importance,
        )
        html.write_text(page, encoding="utf-8")
    print_report(result.to_dict(), html, as_json=json_out, show=lambda: _show(result))


def install(app: typer.Typer) -> None:
    app.command()(report)
