"""``vigil report MODEL_URI``: drift of a model's captured traffic against its baseline.

Like ``vigil drift``, the exit status is 0 whether or not drift is found; it is non-zero,
with one line on stderr, when there is nothing to compare (no captured predictions in the
window, a version without a baseline profile) or the arguments are bad.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vigil.console import console, err_console, print_json, shown
from vigil.uri import MAX_VERSION

if TYPE_CHECKING:
    from vigil.report.capture_report import CaptureReport


@contextmanager
def _progress(show: bool) -> Iterator[Callable[[str, int | None], Callable[[int], None]] | None]:
    """A transient rich progress display on stderr: a spinner while the log is read, then
    a bar over the compared features."""
    if not show:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        previous: list[TaskID] = []

        def start(label: str, total: int | None) -> Callable[[int], None]:
            for task in previous:  # a new step ends the one before it
                bar.update(task, visible=False)
            task = bar.add_task(label, total=total)
            previous.append(task)
            return lambda n: bar.advance(task, n)

        yield start


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
        drifted="dataset drift",
    )
    if result.prediction is not None:
        moved = "drifted" if result.prediction.drifted else "did not drift"
        console.print(f"model output {moved} (not counted in the verdict)")
    for name, reason in result.not_compared.items():
        console.print(f"[dim]not compared: {shown(name)}: {shown(reason)}[/]", highlight=False)


def report(
    model_uri: str = typer.Argument(
        ..., help="The model: models:/NAME@ALIAS, models:/NAME/VERSION or NAME."
    ),
    since: str = typer.Option(
        "24h", "--since", help="Start of the window: 30m, 24h, 7d, 2w ago, or an ISO date/time."
    ),
    until: str = typer.Option(
        None, "--until", help="End of the window (exclusive), same forms; default: now."
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
    json_out: bool = typer.Option(False, "--json", help="Print the numbers as JSON."),
) -> None:
    """Compare the predictions captured for MODEL_URI with its baseline profile.

    Exits 0 whether or not drift is found; non-zero when there is nothing to compare.
    """
    from vigil.app import default
    from vigil.report.capture_report import capture_report
    from vigil.report.html import render_html
    from vigil.report.window import describe_window, parse_when

    now = datetime.now(UTC)
    start = parse_when(since, now=now, option="--since")
    end = parse_when(until, now=now, option="--until") if until is not None else None
    with _progress(not json_out and err_console.is_terminal) as progress:
        result = capture_report(
            default(), model_uri, since=start, until=end, version=version, progress=progress
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
        )
        html.write_text(page, encoding="utf-8")
    if json_out:
        print_json({**result.to_dict(), "html": str(html) if html is not None else None})
        return
    _show(result)
    if html is not None:
        console.print(f"report written to {shown(html)}", highlight=False, soft_wrap=True)


def install(app: typer.Typer) -> None:
    app.command()(report)
