"""``vigil monitor run|show`` and ``vigil alert list``: monitoring on demand and its results.

``monitor run`` computes every window that is due (the same cycle the server runs on its
schedule), evaluates the alert rules and notifies the webhooks, then prints the windows
it computed (the last :data:`~vigil.monitor.computed.KEPT` of them when it computed more:
every one is stored, ``monitor show`` lists them). Drift or an alert is a finding, not a
failure: the exit status is 0 either way, and non-zero (one line on stderr) only for bad
input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from vigil.cli._options import JSON, WINDOW, rows_option, services, since_option, time_option
from vigil.console import console, print_json, progress, shown, styled, table, when

if TYPE_CHECKING:
    from rich.text import Text

    from vigil.console import Step
    from vigil.monitor.alerts import AlertEvent
    from vigil.monitor.cycle import CycleResult
    from vigil.monitor.engine import OpenWindow, Progress
    from vigil.monitor.measure import WindowResult
    from vigil.monitor.series import StoredWindow

monitor_app = typer.Typer(
    help="Compute drift, data quality and performance windows from the inference log.",
    no_args_is_help=True,
)
alert_app = typer.Typer(help="Alerts raised by the monitoring rules.", no_args_is_help=True)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def _verdict(drifted: bool | None) -> str | Text:
    if drifted is None:
        return "—"
    return styled("drift", "bold red") if drifted else styled("ok", "green")


def _main_metric(perf: dict[str, Any] | None) -> str:
    if not perf:
        return "—"
    for name in ("accuracy", "rmse", "mae"):
        if perf.get(name) is not None:
            return f"{name} {perf[name]:.3f}"
    return "—"


def _drifted(by_impact: list[dict[str, Any]], names: list[str]) -> str:
    """The drifted features, largest impact first with it (drift effect size × importance
    share) when the version has a global importance, else as the report lists them."""
    if by_impact:
        return ", ".join(f"{f['feature']} ({f['impact']:.2g})" for f in by_impact)
    return ", ".join(names) or "—"


def _window_row(r: WindowResult) -> tuple[str | Text, ...]:
    perf = r.performance.metrics if r.performance is not None else None
    return (
        r.key.model,
        str(r.key.version),
        r.key.route,
        f"{when(r.start)} → {when(r.end)}" + (" (partial)" if r.partial else ""),
        str(r.n_rows),
        _fmt(r.error_rate),
        _verdict(r.dataset_drifted),
        _drifted([f.to_dict() for f in r.drifted_by_impact], r.drifted_features),
        _main_metric(perf) + (f" ({r.n_labelled} labels)" if r.n_labelled else ""),
    )


def _window_json(r: WindowResult) -> dict[str, Any]:
    return {
        "model": r.key.model,
        "version": r.key.version,
        "route": r.key.route,
        "window": r.window,
        "start": r.start.isoformat(),
        "end": r.end.isoformat(),
        "partial": r.partial,
        "rows": r.n_rows,
        "requests": r.n_requests,
        "rejected": r.n_rejected,
        "labelled": r.n_labelled,
        **r.summary(),
        "points": [{"metric": p.metric, "feature": p.feature, "value": p.value} for p in r.points],
    }


_WINDOW_COLUMNS = [
    "model",
    "version",
    "route",
    "window",
    "rows",
    "error rate",
    "drift",
    "drifted features (impact)",
    "performance",
]


def _state(e: AlertEvent, silenced: dict[int, str]) -> str:
    """``firing``, with ``silenced until …`` and ``acked by …`` when they apply."""
    notes = [e.status]
    if e.id in silenced:
        notes.append(f"silenced until {silenced[e.id]}")
    if e.acknowledged_by:
        notes.append(f"acked by {e.acknowledged_by}")
    return " · ".join(notes)


def _alert_rows(
    events: list[AlertEvent], silenced: dict[int, str] | None = None
) -> list[tuple[str | Text, ...]]:
    colour = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
    silenced = silenced or {}
    return [
        (
            str(e.id),
            _state(e, silenced),
            styled(e.severity, colour.get(e.severity, "white")),
            e.rule,
            e.summary,
            when(e.starts_at),
            when(e.ends_at) if e.ends_at else "",
            "yes"
            if e.delivered_at
            else "silenced"
            if e.silenced_by
            else ("failed" if e.last_error else "pending"),
        )
        for e in events
    ]


_ALERT_COLUMNS = ["id", "status", "severity", "rule", "summary", "since", "until", "delivered"]


@monitor_app.command("run")
def run(
    model: str = typer.Argument(None, help="Only this model (default: every model in the log)."),
    window: str = WINDOW,
    since: str = since_option(None, "Start"),
    partial: bool = typer.Option(
        False, "--partial", help="Also compute the current, incomplete window (marked partial)."
    ),
    json_out: bool = JSON,
) -> None:
    """Compute every due window, evaluate the alert rules and notify the webhooks."""
    from vigil.monitor.cycle import monitor_once
    from vigil.monitor.windows import parse_window

    app = services()
    # Bad input fails here, in one line, before any progress bar is drawn.
    start = time_option(since, "--since")
    if window is not None:
        parse_window(window)
    if model is not None:
        app.registry.get_model(model)
    with progress(not json_out) as display:
        result = monitor_once(
            app,
            model=model,
            since=start,
            window=window,
            partial=partial,
            progress=_progress(display.step("computing windows")) if display else None,
        )
    if json_out:
        print_json(
            {
                "computed": result.n_computed,
                "windows": [_window_json(r) for r in result.windows],
                "alerts": [e.to_dict() for e in result.events],
            }
        )
        return
    if result.windows:
        table(
            f"{result.n_computed:,} window(s) computed",
            _WINDOW_COLUMNS,
            [_window_row(r) for r in result.windows],
        )
        if result.n_computed > len(result.windows):
            console.print(
                shown(
                    f"the last {len(result.windows):,} shown; every window is stored: "
                    f"`vigil monitor show {model or 'MODEL'} --last {result.n_computed}`"
                ),
                highlight=False,
            )
    _explain_what_was_not_computed(result, model)
    if result.events:
        table("Alerts", _ALERT_COLUMNS, _alert_rows(result.events))
    else:
        console.print("no alert fired or resolved", highlight=False)


def _progress(step: Step) -> Progress:
    """The run's progress on ``step``, in the unit the engine counts: windows judged from
    summaries, or, for windows read as rows (cut from slices of the log, many to a
    slice), the rows of the log read of the total its first pass found."""

    def advance(done: int, total: int, unit: str) -> None:
        step.update(done, total, note=f"{done:,} of {total:,} {unit}")

    return advance


def _open_line(w: OpenWindow) -> str:
    closes = []
    if w.rows_to_go is not None:
        closes.append(f"after {w.rows_to_go:,} more rows")
    if w.closes_at is not None:
        closes.append(f"at {w.closes_at:%Y-%m-%d %H:%M} UTC")
    return (
        f"{w.key.model} v{w.key.version} ({w.key.route}): the current window ({w.window}) is "
        f"incomplete, {w.n_rows:,} rows so far; it closes {' or '.join(closes)}"
    )


def _explain_what_was_not_computed(result: CycleResult, model: str | None) -> None:
    """Why a run computed nothing (or not everything), and what to run instead."""
    for w in result.waiting:
        console.print(shown(_open_line(w)), highlight=False)
    if result.waiting:
        names = sorted({w.key.model for w in result.waiting})
        target = model or (names[0] if len(names) == 1 else "MODEL")
        console.print(
            shown(
                f"to see it now, run `vigil monitor run {target} --partial` (stored as "
                "partial; alerts wait for complete windows), or set a smaller window "
                "(VIGIL_MONITOR_WINDOW, e.g. 500 predictions: docs/monitoring.md)"
            ),
            highlight=False,
        )
        return
    if result.windows:
        return
    log = result.log
    if log is not None and log.n_records == 0:
        about = f" for {model}" if model else ""
        console.print(
            shown(
                f"nothing in the inference log{about} since {log.since:%Y-%m-%d %H:%M} UTC: "
                "predictions answered by `vigil serve` (capture on) land there"
            ),
            highlight=False,
        )
        return
    console.print(
        shown(
            "no new window: every window in the inference log is stored; see them with "
            f"`vigil monitor show {model or 'MODEL'}`"
        ),
        highlight=False,
    )


def _stored_row(w: StoredWindow) -> tuple[str | Text, ...]:
    s = w.summary
    return (
        w.key.model,
        str(w.key.version),
        w.key.route,
        f"{when(w.start)} → {when(w.end)}" + (" (partial)" if w.partial else ""),
        str(w.n_rows),
        _fmt(s.get("error_rate")),
        _verdict(s.get("dataset_drifted")),
        _drifted(s.get("drifted_by_impact") or [], s.get("drifted_features") or []),
        _main_metric(s.get("performance")) + (f" ({w.n_labelled} labels)" if w.n_labelled else ""),
    )


@monitor_app.command("show")
def show(
    model: str = typer.Argument(..., help="Model name."),
    window: str = WINDOW,
    last: int = rows_option(20, "--last", "Show the newest N windows."),
    json_out: bool = JSON,
) -> None:
    """Show the stored windows of MODEL, newest last."""
    from vigil.monitor.series import stored_windows
    from vigil.monitor.windows import parse_window

    app = services()
    app.registry.get_model(model)
    spec = parse_window(window) if window else app.monitor_settings.window_spec
    windows = stored_windows(app.database, window=spec.text, model=model)[-last:]
    if json_out:
        print_json(
            [
                {
                    "model": w.key.model,
                    "version": w.key.version,
                    "route": w.key.route,
                    "window": w.window,
                    "start": w.start.isoformat(),
                    "end": w.end.isoformat(),
                    "partial": w.partial,
                    "rows": w.n_rows,
                    "requests": w.n_requests,
                    "labelled": w.n_labelled,
                    **w.summary,
                }
                for w in windows
            ]
        )
        return
    if not windows:
        console.print(
            shown(f"no {spec.text} windows stored for {model}; run `vigil monitor run {model}`"),
            highlight=False,
        )
        return
    table(f"{model}: {spec.text} windows", _WINDOW_COLUMNS, [_stored_row(w) for w in windows])


@alert_app.command("list")
def list_alerts_command(
    all_events: bool = typer.Option(
        False, "--all", help="Every firing and resolution, not only alerts firing now."
    ),
    model: str = typer.Option(None, "--model", help="Only alerts about this model."),
    limit: int = rows_option(200),
    json_out: bool = JSON,
) -> None:
    """List the alerts firing now (or, with --all, the whole history)."""
    from vigil.monitor.alerts import list_alerts
    from vigil.monitor.silences import silenced_now

    database = services().database
    events = list_alerts(database, include_resolved=all_events, model=model, limit=limit)
    silenced = silenced_now(database, events)
    if json_out:
        print_json([{**e.to_dict(), "silenced_until": silenced.get(e.id)} for e in events])
        return
    if not events:
        console.print("no alert is firing" if not all_events else "no alert yet", highlight=False)
        return
    title = "Alert history" if all_events else f"{len(events)} alert(s) firing"
    table(title, _ALERT_COLUMNS, _alert_rows(events, silenced))


def install(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")
    app.add_typer(alert_app, name="alert")
    app.add_typer(alert_app, name="alerts", hidden=True)  # the plural, as it was first named
