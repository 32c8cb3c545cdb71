"""``vigil endpoint create|update|show|list|delete``: experiment endpoints from the shell.

Options build the same JSON document the admin REST API takes, and
:func:`~vigil.experiments.config.parse_endpoint` checks it, so both refuse the same
configurations with the same messages. ``--file`` reads that document from YAML or JSON
instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vigil.cli._endpoint_options import POLICIES, collect_options, endpoint_document
from vigil.console import console, print_json, shown, styled, table, when

if TYPE_CHECKING:
    from rich.text import Text

endpoint_app = typer.Typer(
    help="Experiment endpoints: variants (model versions) and a traffic policy.",
    no_args_is_help=True,
)

JSON_OPT = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")


def _vigil() -> Any:
    from vigil.app import default

    return default()


# typer reads the options from the signature, so the two commands spell them out.
_FILE = typer.Option(None, "--file", "-f", help="The whole configuration as YAML or JSON.")
_VARIANT = typer.Option(
    None, "--variant", "-v", help="Variant NAME=models:/MODEL@ALIAS or NAME=models:/MODEL/N."
)
_POLICY = typer.Option(None, "--policy", "-p", help=f"One of: {', '.join(POLICIES)}.")
_WEIGHT = typer.Option(None, "--weight", "-w", help="split: NAME=WEIGHT (relative).")
_PRIMARY = typer.Option(None, "--primary", help="fixed: the variant; shadow: who answers.")
_SHADOW = typer.Option(None, "--shadow", help="shadow: a variant receiving copies.")
_SAMPLE = typer.Option(None, "--sample-rate", help="shadow: share of requests copied.")
_STABLE = typer.Option(None, "--stable", help="canary: the variant serving now.")
_CANARY = typer.Option(None, "--canary", help="canary: the variant being ramped up.")
_STEPS = typer.Option(None, "--canary-steps", help="canary: percents, e.g. 5,25,50,100.")
_DURATION = typer.Option(None, "--step-duration", help="canary: least seconds per step.")
_REQUESTS = typer.Option(None, "--step-requests", help="canary: least requests per step.")
_ERR = typer.Option(None, "--max-error-rate-increase", help="canary guard, e.g. 0.01.")
_LAT = typer.Option(None, "--max-latency-ratio", help="canary guard: p99 ratio, e.g. 2.")
_QUAL = typer.Option(None, "--max-quality-drop", help="canary guard: accuracy/reward drop.")
_GMIN = typer.Option(None, "--guard-min-requests", help="canary: requests before judging.")
_ALIAS = typer.Option(
    None, "--promote-alias", help="canary: alias moved on completion ('none': no move)."
)
_EPS = typer.Option(None, "--epsilon", help="epsilon_greedy: exploration rate.")
_REWARD = typer.Option(None, "--reward", help="bandits: bernoulli or gaussian.")
_REFRESH = typer.Option(None, "--refresh", help="bandits: seconds between state reads.")
_UHEADER = typer.Option(None, "--unit-header", help="Header with the unit id ('none': off).")
_UFIELD = typer.Option(None, "--unit-field", help="JSON body field with the unit id.")
_SALT = typer.Option(None, "--salt", help="Salt of the unit hash (changing it reshuffles).")
_HOOK = typer.Option(None, "--alert-webhook", help="URL told of rollbacks and promotions.")


def _actor(vigil: Any) -> str:
    actor: str = vigil.settings.resolved_actor
    return actor


@endpoint_app.command("create")
def create(
    name: str = typer.Argument(None, help="Endpoint name (or the name in --file)."),
    file: Path = _FILE,
    variant: list[str] = _VARIANT,
    policy: str = _POLICY,
    weight: list[str] = _WEIGHT,
    primary: str = _PRIMARY,
    shadow: list[str] = _SHADOW,
    sample_rate: float = _SAMPLE,
    stable: str = _STABLE,
    canary: str = _CANARY,
    canary_steps: str = _STEPS,
    step_duration: float = _DURATION,
    step_requests: int = _REQUESTS,
    max_error_rate_increase: float = _ERR,
    max_latency_ratio: float = _LAT,
    max_quality_drop: float = _QUAL,
    guard_min_requests: int = _GMIN,
    promote_alias: str = _ALIAS,
    epsilon: float = _EPS,
    reward: str = _REWARD,
    refresh: float = _REFRESH,
    unit_header: str = _UHEADER,
    unit_field: str = _UFIELD,
    salt: str = _SALT,
    alert_webhook: list[str] = _HOOK,
    json_out: bool = JSON_OPT,
) -> None:
    """Create an endpoint over model variants with a traffic policy.

    Example: vigil endpoint create checkout --variant a=models:/churn@production
    --variant b=models:/churn/3 --policy split --weight a=90 --weight b=10
    """
    opts = collect_options(**{k: v for k, v in locals().items() if k not in ("name", "json_out")})
    from vigil.experiments.config import parse_endpoint
    from vigil.experiments.store import EndpointStore

    config = parse_endpoint(endpoint_document(name, None, opts))
    v = _vigil()
    EndpointStore(v).create(config, actor=_actor(v))
    _report(v, config.name, json_out, "created")


@endpoint_app.command("update")
def update(
    name: str = typer.Argument(..., help="Endpoint name."),
    file: Path = _FILE,
    variant: list[str] = _VARIANT,
    policy: str = _POLICY,
    weight: list[str] = _WEIGHT,
    primary: str = _PRIMARY,
    shadow: list[str] = _SHADOW,
    sample_rate: float = _SAMPLE,
    stable: str = _STABLE,
    canary: str = _CANARY,
    canary_steps: str = _STEPS,
    step_duration: float = _DURATION,
    step_requests: int = _REQUESTS,
    max_error_rate_increase: float = _ERR,
    max_latency_ratio: float = _LAT,
    max_quality_drop: float = _QUAL,
    guard_min_requests: int = _GMIN,
    promote_alias: str = _ALIAS,
    epsilon: float = _EPS,
    reward: str = _REWARD,
    refresh: float = _REFRESH,
    unit_header: str = _UHEADER,
    unit_field: str = _UFIELD,
    salt: str = _SALT,
    alert_webhook: list[str] = _HOOK,
    json_out: bool = JSON_OPT,
) -> None:
    """Change an endpoint: the options given replace those parts of its configuration
    (--variant adds a variant or points an existing one at another model)."""
    opts = collect_options(**{k: v for k, v in locals().items() if k not in ("name", "json_out")})
    from vigil.experiments.config import parse_endpoint
    from vigil.experiments.store import EndpointStore

    v = _vigil()
    store = EndpointStore(v)
    current = store.get(name).model_dump(mode="json")
    store.update(name, parse_endpoint(endpoint_document(name, current, opts)), actor=_actor(v))
    _report(v, name, json_out, "updated")


def _report(vigil: Any, name: str, json_out: bool, verb: str) -> None:
    from vigil.experiments.store import EndpointStore

    stored = EndpointStore(vigil).describe(name)
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
def show(name: str = typer.Argument(..., help="Endpoint name."), json_out: bool = JSON_OPT) -> None:
    """Show an endpoint: variants and what they serve now, policy, and its live state."""
    from vigil.errors import NotFoundError
    from vigil.experiments.status import live_state
    from vigil.experiments.store import EndpointStore

    v = _vigil()
    stored = EndpointStore(v).describe(name)
    config = stored.config
    live = live_state(v, config)
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
            mv = v.registry.resolve(variant.model)
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
def list_endpoints(json_out: bool = JSON_OPT) -> None:
    """List every endpoint with its policy."""
    from vigil.experiments.store import EndpointStore

    stored = EndpointStore(_vigil()).list_stored()
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
def delete(name: str = typer.Argument(..., help="Endpoint name.")) -> None:
    """Delete an endpoint (its audit trail stays)."""
    from vigil.experiments.store import EndpointStore

    v = _vigil()
    EndpointStore(v).delete(name, actor=_actor(v))
    console.print(f"[green]deleted[/] endpoint {shown(name)}")


def install(app: typer.Typer) -> None:
    app.add_typer(endpoint_app, name="endpoint")
