"""``vigil alert ack|silence|silences|unsilence``: taking alerts on, and quieting them.

``vigil alert list`` lives with the monitoring commands (:mod:`vigil.cli.monitor`); these
commands add to the same ``alert`` group.
"""

from __future__ import annotations

import typer

from vigil.cli._options import JSON, services
from vigil.cli.monitor import alert_app
from vigil.console import console, print_json, shown, table, when

COMMENT = typer.Option(None, "--comment", help="Why, for the audit log and the list.")


@alert_app.command("ack")
def ack(
    alert_id: int = typer.Argument(..., min=1, help="Alert id, as `vigil alert list` shows."),
    comment: str = COMMENT,
    json_out: bool = JSON,
) -> None:
    """Acknowledge a firing alert: you are on it (its resolution is still delivered)."""
    from vigil.monitor.silences import acknowledge

    app = services()
    done = acknowledge(app.database, alert_id, actor=app.settings.resolved_actor, comment=comment)
    if json_out:
        print_json(done)
        return
    console.print(
        f"[green]acknowledged[/] alert {alert_id} by {shown(done['acknowledged_by'])}",
        highlight=False,
    )


@alert_app.command("silence")
def silence(
    matchers: str = typer.Argument(
        ...,
        metavar="RULE_OR_LABELS",
        help="A rule name (dataset_drift) or label=value pairs separated by commas "
        "(model=churn,severity=warning); labels: alertname, severity, model, version, "
        "route, feature.",
    ),
    duration: str = typer.Option(..., "--for", help="How long: 30m, 2h, 1d (at most 90d)."),
    comment: str = COMMENT,
    json_out: bool = JSON,
) -> None:
    """Keep matching alerts from the webhooks for a period (recorded, shown as silenced)."""
    from vigil.durations import parse_duration
    from vigil.monitor.silences import create_silence, matchers_from

    app = services()
    made = create_silence(
        app.database,
        matchers_from(matchers),
        parse_duration(duration, what="--for"),
        actor=app.settings.resolved_actor,
        comment=comment,
    )
    if json_out:
        print_json(made.to_dict())
        return
    labels = ", ".join(f"{k}={v}" for k, v in made.matchers.items())
    console.print(
        f"[green]silence {made.id}[/]: {shown(labels)} until {when(made.ends_at)} "
        f"(end it early: vigil alert unsilence {made.id})",
        highlight=False,
    )


@alert_app.command("silences")
def silences(
    all_silences: bool = typer.Option(False, "--all", help="Ended silences too."),
    json_out: bool = JSON,
) -> None:
    """List the active silences (with --all, ended ones too)."""
    from vigil.monitor.silences import list_silences

    found = list_silences(services().database, include_expired=all_silences)
    if json_out:
        print_json([s.to_dict() for s in found])
        return
    if not found:
        console.print("no silence is active" if not all_silences else "no silence yet")
        return
    table(
        "Silences",
        ["id", "matches", "from", "until", "by", "comment"],
        [
            (
                str(s.id),
                ", ".join(f"{k}={v}" for k, v in s.matchers.items()),
                when(s.starts_at),
                when(s.ends_at),
                s.created_by,
                s.comment or "",
            )
            for s in found
        ],
    )


@alert_app.command("unsilence")
def unsilence(
    silence_id: int = typer.Argument(..., min=1, help="Silence id (vigil alert silences)."),
    json_out: bool = JSON,
) -> None:
    """End a silence now."""
    from vigil.monitor.silences import expire_silence

    app = services()
    ended = expire_silence(app.database, silence_id, actor=app.settings.resolved_actor)
    if json_out:
        print_json(ended.to_dict())
        return
    console.print(f"[green]ended[/] silence {silence_id}", highlight=False)


def install(app: typer.Typer) -> None:
    """The commands register on import into the ``alert`` group :mod:`vigil.cli.monitor`
    installs; nothing more to add."""
