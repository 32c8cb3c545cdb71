"""``vigil monitor backfill MODEL``: build the stored window summaries of past capture parts.

Only translates options into :func:`vigil.batch.backfill.backfill` (``--engine local``
or ``ray``) and its result into one line (or JSON). Parts built already are skipped, so
running it again is safe and cheap.
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from vigil.cli._options import JSON, services, since_option, time_option
from vigil.cli.monitor import monitor_app
from vigil.cli.predict import Engine
from vigil.console import console, print_json, progress, shown


def backfill(
    model: str = typer.Argument(..., help="Model name."),
    since: str = since_option(None, "First day to build (default: the oldest part)"),
    until: str = typer.Option(
        None, "--until", help="Last day to build, as --since (default: now)."
    ),
    engine: Engine = typer.Option(
        Engine.local, "--engine", help="local (this process) or ray (one Ray task per part)."
    ),
    ray_address: str = typer.Option(
        None,
        "--ray-address",
        "--address",
        help="Ray cluster to use, e.g. ray://head:10001 (default: start a local instance).",
    ),
    num_cpus: int = typer.Option(
        None, "--num-cpus", min=1, help="CPUs of the local Ray instance (default: all)."
    ),
    json_out: bool = JSON,
) -> None:
    """Build the window summaries of every compacted capture part of MODEL between
    --since and --until (whole days), skipping the parts built already.

    The monitor builds a part's summaries when a window first reads it; a backfill does it
    ahead of time, for a long history at once, in this process or on Ray.
    """
    from vigil.batch.backfill import backfill as run_backfill

    app = services()
    now = datetime.now(UTC)
    # Bad input fails here, in one line, before any progress bar is drawn.
    start = time_option(since, "--since", now=now)
    end = time_option(until, "--until", now=now)
    app.registry.get_model(model)
    with progress(not json_out) as display:
        step = display.step("building summaries", unit="parts") if display else None
        result = run_backfill(
            app,
            model,
            since=start,
            until=end,
            engine=engine.value,
            address=ray_address,
            num_cpus=num_cpus,
            progress=step.update if step else None,
        )
    if json_out:
        print_json(result.to_dict())
        return
    if not result.parts:
        console.print(
            shown(
                f"no compacted capture part of {model} in that range: the server compacts "
                "the inference log into parts every VIGIL_CAPTURE_COMPACT_INTERVAL_S"
            ),
            highlight=False,
        )
        return
    unanchored = result.count("unanchored")
    note = (
        f"; {unanchored} hold a version that is not registered (summarised, not stored)"
        if unanchored
        else ""
    )
    console.print(
        f"{model}: {len(result.parts):,} part(s), {result.count('built'):,} built "
        f"({result.rows:,} rows), {result.count('skipped'):,} already built, in "
        f"{result.seconds:.2f} s with the {result.engine} engine{note}",
        highlight=False,
        soft_wrap=True,
    )


def install(app: typer.Typer) -> None:
    """Add ``backfill`` to the ``vigil monitor`` group (which :mod:`vigil.cli.monitor`
    installs on ``app``)."""
    del app
    monitor_app.command("backfill")(backfill)
