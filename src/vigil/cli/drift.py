"""``vigil drift REFERENCE CURRENT``: compare two data files, print or write the report.

The exit status is 0 whether or not drift is found (drift is a finding, not a failure;
scripts read ``dataset_drifted`` from ``--json``), unless ``--fail-on`` names checks a
pipeline should stop on (:mod:`vigil.report.gates`): then 1 when any of them fails, with
the reasons. Bad input is one line on stderr, also non-zero.
"""

from __future__ import annotations

from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vigil.cli._options import JSON, print_report
from vigil.console import console, progress, shown, styled, table

if TYPE_CHECKING:
    from rich.text import Text

    from vigil.drift import ColumnDrift, DriftReport
    from vigil.report import DriftRun

LARGE_INPUT_BYTES = 8 << 20
"""Show a progress bar when the two files together are at least this big."""

SHORT_EFFECT = {"wasserstein_normalised": "W/σ", "js": "JS", "psi": "PSI"}
"""Effect-size names short enough for a terminal table (the JSON has the full ones)."""


class FailOn(StrEnum):
    drift = "drift"
    columns = "columns"
    quality = "quality"


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [n.strip() for n in value.split(",") if n.strip()]


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "—" if value is None else format(value, spec)


def _row(c: ColumnDrift) -> tuple[str | Text, ...]:
    from vigil.report.html import threshold_text

    effect = _fmt(c.effect_size)
    if c.effect_size is not None and c.effect_size_method:
        effect += f" {SHORT_EFFECT.get(c.effect_size_method, c.effect_size_method)}"
    return (
        c.column,
        c.kind,
        c.method,
        _fmt(c.statistic),
        _fmt(c.p_value_adjusted, ".3g"),
        effect,
        threshold_text(c),
        styled("✓", "bold red") if c.drifted else styled("✗", "green"),
    )


def show_drift(title: str, report: DriftReport, extra: ColumnDrift | None, *, noun: str) -> None:
    """The per-column table (drifted first, ``extra`` last: the target or the model output)
    and the verdict line, as ``vigil drift`` and ``vigil report`` print them."""
    from vigil.report.ordering import drifted_first

    columns = list(drifted_first(report.columns))
    if extra is not None:
        columns.append(extra)
    table(
        title,
        [
            "column",
            "kind",
            "method",
            "statistic",
            "p-value (BH)",
            "effect size",
            "threshold",
            "drifted",
        ],
        [_row(c) for c in columns],
    )
    head, _, rest = report.verdict(noun).partition(": ")
    colour = "red" if report.dataset_drifted else "green"
    console.print(
        f"[bold {colour}]{shown(head)}[/]: {shown(rest)}. Rule: {shown(report.rule)}.",
        highlight=False,
    )


def _show(run: DriftRun) -> None:
    show_drift(
        f"Drift: {run.current_rows:,} current rows against {run.reference_rows:,} reference rows",
        run.report,
        run.target,
        noun="columns",
    )
    if run.target is not None:
        moved = "drifted" if run.target.drifted else "did not drift"
        console.print(
            f"target {shown(repr(run.target.column))} {moved} (not counted in the verdict)"
        )
    for side, names in (("reference", run.only_in_reference), ("current", run.only_in_current)):
        if names:
            console.print(
                f"[dim]not compared, only in the {side} data: {shown(', '.join(names))}[/]"
            )


def drift(
    reference: Path = typer.Argument(..., help="Reference data: CSV or Parquet."),
    current: Path = typer.Argument(..., help="Current data: CSV or Parquet."),
    html: Path = typer.Option(None, "--html", help="Write a self-contained HTML report here."),
    json_out: bool = JSON,
    columns: str = typer.Option(
        None, "--columns", help="Compare only these columns (comma-separated)."
    ),
    categorical: str = typer.Option(
        None,
        "--categorical",
        help="Treat these columns as categorical (comma-separated; default: text and booleans).",
    ),
    target: str = typer.Option(
        None, "--target", help="Label column: its drift is shown apart, not in the verdict."
    ),
    fail_on: list[FailOn] = typer.Option(
        [],
        "--fail-on",
        help="Exit 1 when this check fails (repeatable): drift (the dataset verdict), "
        "columns (any column drifted), quality (a column missing, or its missing share "
        "up by more than --max-missing-increase).",
    ),
    max_missing_increase: float = typer.Option(
        0.05,
        "--max-missing-increase",
        min=0.0,
        max=1.0,
        help="--fail-on quality: largest allowed rise of a column's missing share.",
    ),
) -> None:
    """Compare CURRENT data with REFERENCE data, column by column.

    Exits 0 whether or not drift is found, unless --fail-on names checks to stop on;
    non-zero on bad input.
    """
    from vigil.report import render_html, run_drift
    from vigil.report.gates import gate_failures

    size = sum(p.stat().st_size for p in (reference, current) if p.is_file())
    with progress(size >= LARGE_INPUT_BYTES and not json_out) as display:
        run = run_drift(
            reference,
            current,
            columns=_names(columns),
            categorical=_names(categorical),
            target=target,
            progress=partial(display.step, unit="rows") if display else None,
        )
    if html is not None:
        page = render_html(
            run.report,
            run.reference_summary,
            run.current_summary,
            title=f"Drift report: {current.name} vs {reference.name}",
            subtitle=(
                f"{run.current_rows:,} current rows ({current.name}) compared with "
                f"{run.reference_rows:,} reference rows ({reference.name})"
            ),
            target=run.target,
        )
        html.write_text(page, encoding="utf-8")
    failures = gate_failures(
        run, [f.value for f in fail_on], max_missing_increase=max_missing_increase
    )
    payload = run.to_dict()
    if fail_on:
        payload["failed"] = [{"check": f.check, "message": f.message} for f in failures]
    print_report(payload, html, as_json=json_out, show=lambda: _show(run))
    if failures:
        if not json_out:
            console.print(
                f"[bold red]failed[/] ({', '.join(f.value for f in fail_on)}):", highlight=False
            )
            for failure in failures:
                console.print(f"  - {shown(failure.message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def install(app: typer.Typer) -> None:
    app.command()(drift)
