"""``vigil endpoint create|update|show|list|delete``: experiment endpoints from the shell.

Options build the same JSON document the admin REST API takes, and
:func:`~vigil.experiments.config.parse_endpoint` checks it, so both refuse the same
configurations with the same messages. ``--file`` reads that document from YAML or JSON
instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from vigil.cli._endpoint_options import EndpointOptions, endpoint_document, with_endpoint_options
from vigil.cli._options import JSON, services
from vigil.console import console, print_json, shown, styled, table, when

if TYPE_CHECKING:
    from rich.text import Text

    from vigil.app import Vigil

endpoint_app = typer.Typer(
    help="Experiment endpoints: variants (model versions) and a traffic policy.",
    no_args_is_help=True,
)


def _actor(app: Vigil) -> str:
    return app.settings.resolved_actor


@endpoint_app.command("create")
@with_endpoint_options
def create(
    name: str = typer.Argument(None, help="Endpoint name (or the name in --file)."),
    json_out: bool = JSON,
    *,
    options: EndpointOptions,
) -> None:
    """Create an endpoint over model variants with a traffic policy.

    Example: vigil endpoint create checkout --variant a=models:/churn@production
    --variant b=models:/churn/3 --policy split --weight a=90 --weight b=10
    """
    from vigil.experiments.config import parse_endpoint
    from vigil.experiments.store import EndpointStore

    config = parse_endpoint(endpoint_document(name, None, options))
    app = services()
    EndpointStore(app).create(config, actor=_actor(app))
    _report(app, config.name, json_out, "created")


@endpoint_app.command("update")
@with_endpoint_options
def update(
    name: str = typer.Argument(..., help="Endpoint name."),
    json_out: bool = JSON,
    *,
    options: EndpointOptions,
) -> None:
    """Change an endpoint: the options given replace those parts of its configuration
    (--variant adds a variant or points an existing one at another model)."""
    from vigil.experiments.config import parse_endpoint
    from vigil.experiments.store import EndpointStore

    app = services()
    store = EndpointStore(app)
    current = store.get(name).model_dump(mode="json")
    store.update(name, parse_endpoint(endpoint_document(name, current, options)), actor=_actor(app))
    _report(app, name, json_out, "updated")


def _report(app: Vigil, name: str, json_out: bool, verb: str) -> None:
    from vigil.experiments.store import EndpointStore

    stored = EndpointStore(app).describe(name)
    if json_out:
        print_json(stored.to_dict())
        return
    console.print(
        f"[green]{verb}[/] endpoint [bold]{shown(name)}[/] (revision {stored.revision}): "
        f"{shown(describe_policy(stored.config))}"
    )


def describe_policy(config: Any) -> str:
    """One line saying what the policy does, e.g. ``split a 90% / b 10%``."""
    from vigil.experiments.config import (
        BanditTrafficPolicy,
        CanaryPolicy,
        FixedPolicy,
        ShadowPolicy,
        SplitPolicy,
    )

    p = config.policy
    if isinstance(p, FixedPolicy):
        return f"fixed: every request to {p.variant}"
    if isinstance(p, SplitPolicy):
        shares = p.normalised_weights(config.variant_names)
        return "split " + " / ".join(f"{v} {100 * w:.4g}%" for v, w in shares.items())
    if isinstance(p, CanaryPolicy):
        ramp = " → ".join(f"{s.percent:g}%" for s in p.steps)
        alias = f", then {p.promote_alias} moves" if p.promote_alias else ""
        return f"canary {p.canary} against {p.stable}: {ramp}{alias}"
    if isinstance(p, ShadowPolicy):
        return (
            f"shadow: {p.primary} answers, {', '.join(p.shadows)} get "
            f"{100 * p.sample_rate:g}% of requests as copies"
        )
    assert isinstance(p, BanditTrafficPolicy)
    extra = f" epsilon={p.epsilon:g}" if p.kind == "epsilon_greedy" else ""
    return f"{p.kind} bandit over {', '.join(config.variant_names)} ({p.reward} rewards{extra})"


@endpoint_app.command("show")
def show(name: str = typer.Argument(..., help="Endpoint name."), json_out: bool = JSON) -> None:
    """Show an endpoint: variants and what they serve now, policy, and its live state."""
    from vigil.errors import NotFoundError
    from vigil.experiments.status import live_state
    from vigil.experiments.store import EndpointStore

    app = services()
    stored = EndpointStore(app).describe(name)
    config = stored.config
    live = live_state(app, config)
    if json_out:
        print_json({**stored.to_dict(), "live": live})
        return
    console.print(
        f"[bold]{shown(name)}[/]  revision {stored.revision}, updated {when(stored.updated_at)} "
        f"by {shown(stored.updated_by)}"
    )
    console.print(f"policy: {shown(describe_policy(config))}")
    unit = config.unit
    keys = [f"header {unit.header}"] if unit.header else []
    keys += [f"field {unit.field}"] if unit.field else []
    console.print("sticky unit: " + shown(" or ".join(keys) or "none (random per request)"))
    if config.alert_webhooks:
        console.print("alert webhooks: " + shown(", ".join(config.public()["alert_webhooks"])))
    rows: list[tuple[str, str, str | Text]] = []
    for variant in config.variants:
        try:
            mv = app.registry.resolve(variant.model)
            serves: str | Text = f"{mv.name}/{mv.version}"
        except NotFoundError as exc:
            serves = styled(exc.message, "red")
        rows.append((variant.name, variant.model, serves))
    table("Variants", ["variant", "model", "serves now"], rows)
    if live is None:
        console.print("[yellow]live state unavailable[/] (see the log)")
        return
    if live.get("canary"):
        c = live["canary"]
        console.print(
            f"canary: step {c['step'] + 1} of {c['steps']}, "
            f"{c['percent']:g}% of traffic, {c['status']}"
            + (f" ({shown(c['reason'])})" if c.get("reason") else "")
        )
    stats = live["stats"]
    if stats:
        table(
            "Live counters (all workers)",
            ["variant", "requests", "errors", "p99 ms", "rewards", "mean reward", "accuracy"],
            [
                (
                    vname,
                    s["requests"],
                    s["errors"],
                    _fmt(s["p99_ms"], ".1f"),
                    s["reward_count"],
                    _fmt(s["reward_mean"], ".4g"),
                    _fmt(s["accuracy"], ".3f"),
                )
                for vname, s in stats.items()
            ],
        )


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@endpoint_app.command("list")
def list_endpoints(json_out: bool = JSON) -> None:
    """List every endpoint with its policy."""
    from vigil.experiments.store import EndpointStore

    stored = EndpointStore(services()).list_stored()
    if json_out:
        print_json([s.to_dict() for s in stored])
        return
    if not stored:
        console.print(
            "no endpoints yet; try: vigil endpoint create NAME --variant a=models:/M@production "
            "--variant b=models:/M/2 --policy split --weight a=90 --weight b=10"
        )
        return
    table(
        "Endpoints",
        ["name", "policy", "variants", "revision", "updated", "by"],
        [
            (
                s.config.name,
                describe_policy(s.config),
                ", ".join(f"{v.name}={v.model}" for v in s.config.variants),
                s.revision,
                when(s.updated_at),
                s.updated_by,
            )
            for s in stored
        ],
    )


@endpoint_app.command("delete")
def delete(name: str = typer.Argument(..., help="Endpoint name."), json_out: bool = JSON) -> None:
    """Delete an endpoint (its audit trail stays)."""
    from vigil.experiments.store import EndpointStore

    app = services()
    EndpointStore(app).delete(name, actor=_actor(app))
    if json_out:
        print_json({"endpoint": name, "deleted": True})
        return
    console.print(f"[green]deleted[/] endpoint {shown(name)}")


def install(app: typer.Typer) -> None:
    app.add_typer(endpoint_app, name="endpoint")
