"""``vigil policy set|show|list|delete|run|status``: update policies from the shell.

``set`` reads the same document the admin REST API takes (``PUT /v1/admin/policies/{model}``)
from a YAML or JSON file, and :func:`~vigil.policy.config.parse_policy` checks it, so both
refuse the same configurations with the same messages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vigil.cli._options import JSON, services
from vigil.console import console, print_json, shown, table, when

if TYPE_CHECKING:
    from vigil.policy.runs import Run

policy_app = typer.Typer(
    help="Update policies: retrain on alerts or a schedule, gate, shadow, canary, promote.",
    no_args_is_help=True,
)


def _read(path: Path) -> dict[str, Any]:
    import yaml

    from vigil.errors import InvalidParameterError

    if not path.is_file():
        raise InvalidParameterError(f"--file {str(path)!r} is not a file")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        reason = str(exc).replace("\n", " ")
        raise InvalidParameterError(f"--file {path.name} is not valid {kind}: {reason}") from None
    if not isinstance(data, dict):
        raise InvalidParameterError(
            f"--file {path.name}: expected a mapping (model, triggers, action...)"
        )
    return data


@policy_app.command("set")
def set_policy(
    model: str = typer.Argument(..., help="The registered model the policy acts on."),
    file: Path = typer.Option(
        ..., "--file", "-f", help="The policy as YAML or JSON (see docs/policies.md)."
    ),
    json_out: bool = JSON,
) -> None:
    """Create or replace a model's update policy."""
    from vigil.errors import InvalidParameterError
    from vigil.policy.config import parse_policy
    from vigil.policy.store import PolicyStore

    data = _read(file)
    given = data.setdefault("model", model)
    if given != model:
        raise InvalidParameterError(
            f"--file names model {str(given)[:80]!r} but the command names {model!r}"
        )
    app = services()
    stored, created = PolicyStore(app).set(parse_policy(data), actor=app.settings.resolved_actor)
    if json_out:
        print_json({**stored.to_dict(), "created": created})
        return
    verb = "created" if created else "set"
    console.print(
        f"[green]{verb}[/] the update policy of [bold]{shown(model)}[/] "
        f"(revision {stored.revision})",
        highlight=False,
    )


@policy_app.command("show")
def show(model: str = typer.Argument(..., help="The model."), json_out: bool = JSON) -> None:
    """A model's update policy (secrets hidden)."""
    from vigil.policy.store import PolicyStore

    stored = PolicyStore(services()).get(model)
    if json_out:
        print_json(stored.to_dict())
        return
    import yaml

    console.print(
        f"[bold]{shown(model)}[/] (revision {stored.revision}, {when(stored.updated_at)} by "
        f"{shown(stored.updated_by)})",
        highlight=False,
    )
    console.print(yaml.safe_dump(stored.config.public(), sort_keys=False), highlight=False)


def _triggers(doc: dict[str, Any]) -> str:
    t = doc.get("triggers") or {}
    parts = [f"alert {a}" for a in t.get("alerts") or []]
    if t.get("schedule"):
        parts.append(f"cron {t['schedule']}")
    parts += [f"{x['metric']} {x['comparison']} {x['value']:g}" for x in t.get("thresholds") or []]
    return ", ".join(parts) or "manual only"


@policy_app.command("list")
def list_policies(json_out: bool = JSON) -> None:
    """Every update policy."""
    from vigil.policy.store import PolicyStore

    stored = PolicyStore(services()).list()
    if json_out:
        print_json({"policies": [s.to_dict() for s in stored]})
        return
    table(
        "Update policies",
        ["model", "triggers", "action", "enabled", "revision", "updated"],
        [
            (
                s.config.model,
                _triggers(s.config.public()),
                s.config.action.kind,
                "yes" if s.config.enabled else "no",
                s.revision,
                when(s.updated_at),
            )
            for s in stored
        ],
    )


@policy_app.command("delete")
def delete(model: str = typer.Argument(..., help="The model."), json_out: bool = JSON) -> None:
    """Delete a model's update policy (its runs stay, for the record)."""
    from vigil.policy.store import PolicyStore

    app = services()
    PolicyStore(app).delete(model, actor=app.settings.resolved_actor)
    if json_out:
        print_json({"model": model, "deleted": True})
        return
    console.print(f"[green]deleted[/] the update policy of [bold]{shown(model)}[/]")


def _show_runs(runs: list[Run]) -> None:
    table(
        "Policy runs",
        ["run", "model", "state", "trigger", "served", "candidate", "started", "note"],
        [
            (
                r.run_id,
                r.model,
                r.state,
                r.trigger.get("kind", "?"),
                r.served_version if r.served_version is not None else "",
                r.candidate_version if r.candidate_version is not None else "",
                when(r.created_at),
                shown(r.error or r.data.get("note") or ""),
            )
            for r in runs
        ],
    )


@policy_app.command("run")
def run(
    model: str = typer.Argument(..., help="The model whose policy runs."),
    wait: float = typer.Option(
        None,
        "--wait",
        min=0,
        help="Carry the run on from here for up to this many seconds (rather than leave "
        "it to the server's policy loop), then show where it stands.",
    ),
    json_out: bool = JSON,
) -> None:
    """Start a run of a model's policy by hand (the server's policy loop carries it on)."""
    from vigil.policy.engine import PolicyEngine

    app = services()
    engine = PolicyEngine(app, actor=app.settings.resolved_actor)
    started = engine.start(model, {"kind": "manual"}, actor=app.settings.resolved_actor)
    assert started is not None  # a manual start raises instead
    if wait is not None:
        started = engine.drive(started.run_id, timeout=wait)
    if json_out:
        print_json(started.to_dict())
        return
    console.print(
        f"run [bold]{started.run_id}[/] of {shown(model)}'s policy: {started.state}"
        + (f" ({shown(started.error)})" if started.error else ""),
        highlight=False,
    )


@policy_app.command("status")
def status(
    model: str = typer.Argument(None, help="Only this model's runs."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Show at most N runs."),
    json_out: bool = JSON,
) -> None:
    """Policy runs, newest first: state, trigger, versions and what stopped them."""
    from vigil.policy.runs import RunStore

    runs = RunStore(services().database).list(model, limit=limit)
    if json_out:
        print_json({"runs": [r.to_dict() for r in runs]})
        return
    _show_runs(runs)


def install(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
