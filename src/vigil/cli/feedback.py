"""``vigil feedback FILE``: load labels and rewards in bulk, joined to the capture log.

The file is CSV, Parquet or JSON Lines with a ``request_id`` column, a ``label`` and/or a
``reward`` column, and optionally ``row`` (row of a batch request, default 0) and ``time``
(when the label was observed, ISO 8601 with a time zone; default now). Every row is
checked before anything is stored: one bad row stops the load with its line number.
"""

from __future__ import annotations

from pathlib import Path

import typer

from vigil.cli._options import JSON, services
from vigil.console import console, print_json, progress, shown, table


def feedback(
    path: Path = typer.Argument(
        ..., help="CSV, Parquet or JSONL file with request_id + label/reward."
    ),
    as_json: bool = JSON,
) -> None:
    """Store the labels/rewards of FILE; print how many were accepted, duplicates, unknown
    (no captured prediction with that request id) and late."""
    from vigil.feedback import load_feedback_file

    app = services()
    records = load_feedback_file(path)
    store = app.feedback_store()
    try:
        with progress(not as_json) as display:
            step = display.step("storing feedback", len(records), unit="rows") if display else None
            result = store.submit(records, progress=step.update if step else None)
    finally:
        store.close()
    summary = {
        "file": str(path),
        "rows": len(records),
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "unknown": result.unknown,
        "late": result.late,
        "unknown_request_ids": result.unknown_request_ids[:20],
    }
    if as_json:
        print_json(summary)
        return
    table(
        f"feedback from {path.name}",
        ["rows", "accepted", "duplicates", "unknown", "late"],
        [[len(records), result.accepted, result.duplicates, result.unknown, result.late]],
    )
    if result.unknown_request_ids:
        ids = shown(", ".join(result.unknown_request_ids[:5]))
        more = "…" if len(result.unknown_request_ids) > 5 else ""
        console.print(
            f"no captured prediction for {len(result.unknown_request_ids)} request id(s): "
            f"{ids}{more} (stored anyway; they join if their predictions show up)",
            highlight=False,
        )


def install(app: typer.Typer) -> None:
    app.command("feedback")(feedback)
