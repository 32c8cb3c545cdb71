"""``vigil replay CANDIDATE --since 7d``: score a model on the traffic the served model got.

Only translates options into :func:`vigil.batch.replay.replay` and its report into tables
(or JSON): metrics on the labelled rows for the candidate, what was served and ``--against``,
agreement, and the drift of the candidate's predictions from the served ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from vigil.cli._options import JSON, services, since_option, time_option
from vigil.console import console, print_json, progress, shown, table

if TYPE_CHECKING:
    from vigil.batch.replay import ReplayReport


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _show(r: ReplayReport, candidate: str, against: str | None) -> None:
    console.print(
        f"replayed {r.replayed:,} of {r.rows:,} answered rows of {shown(r.model)} "
        f"({r.since:%Y-%m-%d %H:%M} to {r.until:%Y-%m-%d %H:%M} UTC); "
        f"{r.labelled:,} have a label, {r.rejected:,} refused by the candidate",
        highlight=False,
        soft_wrap=True,
    )
    if r.rows == 0:
        console.print(
            f"nothing answered for {shown(r.model)} was captured in this window: widen "
            "--since, or check that the server serves it with capture on "
            "(VIGIL_CAPTURE_ENABLED)",
            highlight=False,
            soft_wrap=True,
        )
        return
    labels = {"candidate": candidate, "served": "served", "against": against or ""}
    names = sorted({k for res in r.results for k, v in res.metrics.items() if v is not None})
    if r.labelled:
        table(
            f"Metrics on {r.labelled:,} labelled rows",
            ["metric", *(labels[res.name] for res in r.results)],
            [(m, *(_fmt(res.metrics.get(m)) for res in r.results)) for m in names],
        )
    for name, value in r.agreement.items():
        what = "agrees with" if r.task != "regression" else "differs on average by"
        shown_value = (
            f"{value:.1%}" if r.task != "regression" and value is not None else _fmt(value)
        )
        console.print(f"candidate {what} {labels[name]}: {shown_value}", highlight=False)
    if r.prediction_drift is not None:
        d = r.prediction_drift
        verdict = "drifted" if d["drifted"] else "did not drift"
        console.print(
            f"the candidate's predictions {verdict} from the served ones ({d['method']}, "
            f"statistic {_fmt(d['statistic'])})",
            highlight=False,
        )
    for reason in r.rejections:
        console.print(f"[dim]refused: {shown(reason)}[/]", highlight=False, soft_wrap=True)


def replay(
    candidate: str = typer.Argument(
        ..., metavar="CANDIDATE", help="The model to replay: models:/NAME/VERSION or @ALIAS."
    ),
    since: str = since_option("7d", "Replay traffic since"),
    until: str = typer.Option(
        None, "--until", help="Replay traffic before this time (default: now)."
    ),
    model: str = typer.Option(
        None, "--model", help="Whose traffic to replay (default: the candidate's model)."
    ),
    against: str = typer.Option(
        None, "--against", help="Also score this model (e.g. models:/NAME@production)."
    ),
    json_out: bool = JSON,
) -> None:
    """Score CANDIDATE on captured traffic: metrics on labelled rows, agreement with what
    was served, and the drift of its predictions."""
    from vigil.batch.replay import replay as run_replay

    now = datetime.now(UTC)
    start = time_option(since, "--since", now=now)
    end = time_option(until, "--until", now=now) or now
    assert start is not None
    app = services()
    bundle = app.load(candidate)
    other = app.load(against) if against else None
    feedback_store = app.feedback_store()
    try:
        labels = feedback_store.read(since=start)
    finally:
        feedback_store.close()
    with progress(not json_out) as display:
        step = display.step("replaying day by day") if display else None
        report = run_replay(
            bundle,
            model=model or str(bundle.name),
            since=start,
            until=end,
            feedback=labels,
            store=app.artifacts,
            log_dir=app.capture_dir,
            against=other,
            progress=(lambda done, total: step.update(done, total)) if step else None,
        )
    if json_out:
        print_json(report.to_dict())
    else:
        _show(report, candidate, against)


def install(app: typer.Typer) -> None:
    app.command()(replay)
