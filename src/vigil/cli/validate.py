"""``vigil validate CANDIDATE --against CURRENT --data FILE``: a gate for CI pipelines.

Scores both models on the labelled rows of FILE and says whether the candidate may replace
the current model (:mod:`vigil.batch.gate` has the rules). Exits 0 when it may, 1 when it
may not (the table or JSON says why), so a pipeline stops a worse model before it is
registered or promoted; bad input is one ``error:`` line, also exit 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vigil.cli._options import JSON, services
from vigil.console import console, print_json, progress, shown, styled, table

if TYPE_CHECKING:
    from vigil.batch.gate import GateVerdict


def _show(v: GateVerdict) -> None:
    imp = v.improvement
    test = f"McNemar p = {v.test.p_value:.3g}" if v.test is not None else "paired bootstrap"
    table(
        f"Validation gate on {v.rows:,} labelled rows",
        ["", v.current_model + " (current)", v.candidate_model + " (candidate)"],
        [
            (v.metric, f"{v.current:.4f}", f"{v.candidate:.4f}"),
            (
                "improvement",
                "",
                f"{imp.value:+.4f} (one-sided {imp.level:.0%} bound {imp.low:+.4f}; {test})",
            ),
            *(
                (
                    f"{g.name} guard",
                    "",
                    styled(("✓ " if g.passed else "✗ ") + g.detail, "green" if g.passed else "red"),
                )
                for g in v.guards
            ),
        ],
    )
    rule = (
        f"better by at least {v.min_improvement:g} and shown better at alpha {v.alpha:g}"
        if v.min_improvement >= 0
        else f"not worse by more than {-v.min_improvement:g} (alpha {v.alpha:g})"
    )
    if v.passed:
        console.print(f"[bold green]passed[/]: the candidate is {rule}.", highlight=False)
    else:
        console.print(f"[bold red]rejected[/] (rule: {rule}):", highlight=False)
        for reason in v.reasons:
            console.print(f"  - {shown(reason)}", highlight=False, soft_wrap=True)


def validate(
    candidate: str = typer.Argument(
        ..., metavar="CANDIDATE", help="The candidate: models:/NAME/VERSION or models:/NAME@ALIAS."
    ),
    against: str = typer.Option(
        ..., "--against", help="The model it would replace, e.g. models:/NAME@production."
    ),
    data: Path = typer.Option(
        ..., "--data", help="Labelled rows (.csv, .parquet or .jsonl) both models score."
    ),
    target: str = typer.Option(
        None,
        "--target",
        help="The label column (default: the one the current model was registered with).",
    ),
    metric: str = typer.Option(
        None,
        "--metric",
        help="accuracy, f1, precision, recall, roc_auc, log_loss, mae, rmse or r2 "
        "(default: accuracy for a classifier, rmse for a regressor).",
    ),
    min_improvement: float = typer.Option(
        0.0,
        "--min-improvement",
        help="Required improvement in the metric's units (higher accuracy, lower error); "
        "negative: a tolerated loss (non-inferiority).",
    ),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level of the paired test."),
    max_latency_ratio: float = typer.Option(
        2.0, "--max-latency-ratio", help="Largest candidate/current prediction time per row."
    ),
    json_out: bool = JSON,
) -> None:
    """Should CANDIDATE replace the current model? Exit 0 if so, 1 if not."""
    from vigil.batch.gate import validate_candidate
    from vigil.errors import InvalidParameterError

    app = services()
    current, new = app.load(against), app.load(candidate)
    label = target or (current.manifest.get("reference") or {}).get("target")
    if not label:
        raise InvalidParameterError(
            f"{against} was registered without a label column; name it with --target"
        )
    with progress(not json_out) as display:
        step = display.step("scoring both models", unit="rows") if display else None
        verdict = validate_candidate(
            current,
            new,
            data,
            target=str(label),
            metric=metric,
            min_improvement=min_improvement,
            alpha=alpha,
            max_latency_ratio=max_latency_ratio,
            progress=step,
        )
    if json_out:
        print_json(verdict.to_dict())
    else:
        _show(verdict)
    if not verdict.passed:
        raise typer.Exit(1)


def install(app: typer.Typer) -> None:
    app.command()(validate)
