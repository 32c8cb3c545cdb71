"""``vigil predict MODEL_URI INPUT -o OUTPUT``: score a data file with a registered model.

Only translates options into :func:`vigil.batch.score_file` (``--engine local``) or
:func:`vigil.batch.ray_engine.score_with_ray` (``--engine ray``) and the summary into a
line (or JSON); a bad row is one line on stderr naming the row and the feature.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING

import typer

from vigil.cli._options import JSON, services
from vigil.console import console, print_json, progress, shown

if TYPE_CHECKING:
    from vigil.batch import BatchSummary, Tick
    from vigil.console import Progress


class Engine(StrEnum):
    local = "local"
    ray = "ray"


def _ticks(display: Progress | None) -> Callable[[Tick], None] | None:
    """Scoring progress: bytes (text formats) or rows (Parquet) done, with rows/s."""
    if display is None:
        return None
    step = display.step("scoring")
    started = perf_counter()

    def update(tick: Tick) -> None:
        elapsed = perf_counter() - started
        rate = f" · {tick.rows / elapsed:,.0f} rows/s" if elapsed > 0 else ""
        step.update(tick.done, tick.total, note=f"{tick.rows:,} rows{rate}")

    return update


def _show(summary: BatchSummary) -> None:
    console.print(
        f"scored {summary.rows:,} rows in {summary.seconds:.2f} s "
        f"({summary.rows_per_second:,.0f} rows/s) with the {summary.engine} engine → "
        f"{shown(summary.output)}",
        highlight=False,
        soft_wrap=True,
    )


def predict(
    model_uri: str = typer.Argument(
        ..., metavar="MODEL_URI", help="models:/NAME@ALIAS, models:/NAME/VERSION or NAME."
    ),
    input: Path = typer.Argument(
        ..., metavar="INPUT", help="Rows to score: .csv, .parquet or .jsonl."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the scored rows."),
    format: str = typer.Option(
        None, "--format", help="Output format: csv, parquet or jsonl (default: OUTPUT's suffix)."
    ),
    chunk_rows: int = typer.Option(
        65_536, "--chunk-rows", min=1, help="Rows read, checked and scored at a time."
    ),
    proba: bool = typer.Option(
        False, "--proba", help="Add one proba_<class> column per class (classifiers)."
    ),
    allow_inf: bool = typer.Option(False, "--allow-inf", help="Accept +/-Inf in numeric features."),
    engine: Engine = typer.Option(
        Engine.local, "--engine", help="local (this process) or ray (Ray Data)."
    ),
    ray_address: str = typer.Option(
        None, "--ray-address", help="Ray cluster to use (default: start a local instance)."
    ),
    num_cpus: int = typer.Option(
        None, "--num-cpus", min=1, help="CPUs of the local Ray instance (default: all)."
    ),
    json_out: bool = JSON,
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Score every row of INPUT with a registered model and write OUTPUT.

    OUTPUT holds the input columns, a prediction column and (--proba) one column per class.
    A row the model cannot accept stops the job, naming the row (from 0) and the feature.
    No output is left behind on failure. With --engine ray, OUTPUT is a new directory.
    """
    from vigil.batch import score_file
    from vigil.batch.score import check_paths, formats_of
    from vigil.errors import InvalidParameterError

    if engine is Engine.local and (ray_address is not None or num_cpus is not None):
        raise InvalidParameterError("--ray-address and --num-cpus need --engine ray")
    app = services()
    if engine is Engine.ray:
        from vigil.batch.ray_engine import score_with_ray

        summary = score_with_ray(
            model_uri,
            input,
            output,
            app=app,
            output_format=format,
            chunk_rows=chunk_rows,
            proba=proba,
            allow_inf=allow_inf,
            address=ray_address,
            num_cpus=num_cpus,
        )
    else:
        # Bad paths fail before the model is fetched and loaded.
        formats_of(input, output, format)
        check_paths(input, output)
        model = app.load(model_uri)
        with progress(not (json_out or no_progress)) as display:
            summary = score_file(
                model,
                input,
                output,
                output_format=format,
                chunk_rows=chunk_rows,
                proba=proba,
                allow_inf=allow_inf,
                progress=_ticks(display),
            )
    if json_out:
        print_json(summary.to_dict())
    else:
        _show(summary)


def install(app: typer.Typer) -> None:
    app.command()(predict)
