"""``vigil experiment status|evaluate|conclude``: is the new variant better, what another
routing policy would have earned, and ending the test."""

from __future__ import annotations

from typing import Any, Literal, cast

import typer

from vigil.cli._options import JSON, services, since_option, time_option
from vigil.console import console, print_json, shown
from vigil.errors import InvalidParameterError

experiment_app = typer.Typer(
    help="Experiments on endpoints: per-variant results and concluding them.",
    no_args_is_help=True,
)

_BAR = 20


def share_bar(share: float | None, width: int = _BAR) -> str:
    """A bar of ``width`` cells showing a share of traffic.

    >>> share_bar(0.25, 8)
    '██░░░░░░  25.0%'
    """
    if share is None:
        return "-"
    full = round(share * width)
    return "█" * full + "░" * (width - full) + f" {100 * share:5.1f}%"


def _num(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _interval(
    value: float | None, low: float | None, high: float | None, pct: bool, sign: bool = False
) -> str:
    if value is None:
        return "-"
    scale, unit, spec = (100.0, "%", ".1f") if pct else (1.0, "", ".4g")
    text = f"{format(value * scale, ('+' if sign else '') + spec)}{unit}"
    if low is not None and high is not None:
        text += f" ({format(low * scale, spec)} to {format(high * scale, spec)})"
    return text


def _print_table(result: Any) -> None:
    """One column per variant, one row per number: fits a terminal for two to five arms."""
    from rich.table import Table

    pct = result.metric in ("reward rate", "accuracy")
    source = "inference log" if result.source == "capture" else "shared counters"
    t = Table(
        title=shown(f"{result.endpoint}: {result.policy} experiment (from the {source})"),
        title_justify="left",
        header_style="bold",
    )
    t.add_column("", style="bold", no_wrap=True)
    for v in result.variants:
        role = " (control)" if v.name == result.control else ""
        t.add_column(shown(f"{v.name}{role}"), no_wrap=True)
    rows: list[tuple[str, Any]] = [
        ("model", lambda v: v.model),
        ("traffic", lambda v: share_bar(v.share, 10)),
        ("requests", lambda v: f"{v.requests:,}"),
        ("errors", lambda v: f"{v.errors:,}"),
        ("feedback", lambda v: f"{v.feedback:,}"),
        (result.metric or "metric", lambda v: _interval(v.value, v.low, v.high, pct)),
        ("lift", lambda v: _interval(v.lift, v.lift_low, v.lift_high, True, sign=True)),
        ("p-value", lambda v: _num(v.p_value)),
        ("always-valid p", lambda v: _num(v.always_valid_p_value)),
        ("P(best)", lambda v: _num(v.prob_best, ".3f")),
        ("recommendation", lambda v: v.recommendation),
    ]
    for label, cell in rows:
        t.add_row(shown(label), *(shown(cell(v)) for v in result.variants))
    console.print(t)


@experiment_app.command("status")
def status(
    endpoint: str = typer.Argument(..., help="Endpoint name."),
    since: str = since_option(None, "Only requests since"),
    source: str = typer.Option(
        "auto", "--source", help="auto, capture (inference log) or state (shared counters)."
    ),
    json_out: bool = JSON,
) -> None:
    """Per variant: traffic share, requests, feedback, the metric with its 95% interval,
    lift over the control, p-value, always-valid p-value, probability of being best and
    what to do."""
    from vigil.experiments.status import experiment_status

    if source not in ("auto", "capture", "state"):
        raise InvalidParameterError(
            f"--source must be auto, capture or state, got {source!r}", detail={"option": "source"}
        )
    chosen = cast(Literal["auto", "capture", "state"], source)
    result = experiment_status(
        services(), endpoint, since=time_option(since, "--since"), source=chosen
    )
    if json_out:
        print_json(result.to_dict())
        return
    _print_table(result)
    if result.srm is not None:
        expected = ", ".join(
            f"{v.name} {100 * (v.expected_share or 0):.4g}%" for v in result.variants
        )
        verdict = "[red]MISMATCH[/]" if result.srm.mismatch else "ok"
        console.print(
            f"split check (SRM) against {expected}: chi² {result.srm.statistic:.2f}, "
            f"p {result.srm.p_value:.3g}: {verdict}"
        )
    if result.live is not None:
        live = result.live
        console.print(
            f"canary: {live['status']} at {live['percent']:g}% (step {live['step'] + 1})"
            + (f": {shown(live['reason'])}" if live.get("reason") else "")
        )
    console.print(f"[bold]decision:[/] {shown(result.decision)}")


@experiment_app.command("conclude")
def conclude(
    endpoint: str = typer.Argument(..., help="Endpoint name."),
    promote: str = typer.Option(..., "--promote", help="The variant that wins."),
    alias: str = typer.Option(
        None, "--alias", "-a", help="Also point this alias of its model at its version."
    ),
    json_out: bool = JSON,
) -> None:
    """End the experiment: every request goes to the --promote variant from now on (and
    --alias moves to its version). Both changes are audited."""
    from vigil.experiments.status import conclude as conclude_experiment

    app = services()
    done = conclude_experiment(
        app, endpoint, promote=promote, actor=app.settings.resolved_actor, alias=alias
    )
    if json_out:
        from dataclasses import asdict

        print_json(asdict(done))
        return
    console.print(
        f"[green]concluded[/] {shown(endpoint)}: every request now goes to "
        + shown(
            f"{done.variant} (models:/{done.model}/{done.version})"
            + (f"; {done.model}@{done.alias} → version {done.version}" if done.alias else "")
        )
    )


@experiment_app.command("evaluate")
def evaluate(
    endpoint: str = typer.Argument(..., help="Endpoint name."),
    policy: str = typer.Option(
        ..., "--policy", "-p", help="Target policy: uniform, variant:NAME or weights:a=3,b=1."
    ),
    since: str = since_option(None, "Only requests since"),
    json_out: bool = JSON,
) -> None:
    """Off-policy evaluation: the mean reward another routing policy would have earned on
    the requests the endpoint's bandit (or split) logged with their propensities, by
    inverse propensity (IPS), self-normalised IPS and doubly robust estimates with 95%
    intervals."""
    from vigil.experiments.off_policy import evaluate_policy

    report = evaluate_policy(services(), endpoint, policy, since=time_option(since, "--since"))
    if json_out:
        print_json(report.to_dict())
        return
    target = ", ".join(f"{a} {100 * p:.4g}%" for a, p in report.target.items())
    logged = _num(report.logged_value)
    console.print(
        shown(
            f"{report.endpoint}: {report.rewarded:,} rewarded of {report.requests:,} requests "
            f"logged by {report.logging_policy} (mean reward {logged}); target {target}"
        )
    )
    if report.estimates:
        from rich.table import Table

        t = Table(title=shown(f"mean reward under {report.policy}"), title_justify="left")
        for column in ("method", "estimate", "95% interval", "effective n"):
            t.add_column(column, no_wrap=True)
        for e in report.estimates:
            t.add_row(
                e.method, f"{e.value:.4f}", f"{e.low:.4f} to {e.high:.4f}", f"{e.effective_n:,.0f}"
            )
        console.print(t)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {shown(note)}")


def install(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")
