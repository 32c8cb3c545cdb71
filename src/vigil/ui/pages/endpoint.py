"""The endpoint page: routing policy and variants, live traffic, the experiment's status,
the canary's ramp and guards, a bandit's arm estimates over time.

:func:`endpoint_view` reads through what ``vigil endpoint show`` and ``vigil experiment
status`` read: the endpoint store, the shared policy state
(:func:`~vigil.experiments.status.live_state`) and, for the per-variant statistics,
:func:`~vigil.experiments.status.experiment_status` itself, so the page shows the numbers
the CLI prints, computed by the same code. A bandit's arm estimates over time are the same
counts (:func:`~vigil.experiments.status.counts_from_frames`) of the requests logged up to
each of :data:`POINTS` moments between the first and the last request.

:data:`ACTIONS` update a split's weights (``PUT /v1/admin/endpoints/{endpoint}``'s
:meth:`~vigil.experiments.store.EndpointStore.put`), conclude the experiment
(:func:`~vigil.experiments.status.conclude`, as ``POST .../conclude``) and promote a
variant (point an alias of its model at the version it serves, as the registry's admin
API does); every one is audited under the signed-in actor, and conclude and promote ask
for a ticked ``confirm`` field.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from vigil.errors import ValidationError, VigilError
from vigil.experiments.config import BanditTrafficPolicy, CanaryPolicy, SplitPolicy
from vigil.experiments.store import EndpointStore
from vigil.names import check_alias
from vigil.serving.admin_routes import unknown_fields
from vigil.ui import charts

if TYPE_CHECKING:
    from vigil.experiments.services import ExperimentServices
    from vigil.experiments.status import ExperimentStatus, VariantStatus

__all__ = ["ACTIONS", "Action", "EndpointView", "VariantView", "endpoint_view"]

log = logging.getLogger("vigil.ui")

POINTS = 12
"""Moments a bandit's arm estimates are shown at."""
MAX_WEIGHT = 1e9

Action = Callable[[Any, str, Mapping[str, str], str], str]
"""(services, endpoint name, the form's fields without ``csrf``, actor) → a message."""


@dataclass(frozen=True)
class VariantView:
    """One variant: its model reference, the version it resolves to, its live counters."""

    name: str
    model: str
    resolved: str | None
    weight: float | None
    """A split's weight as configured (relative), else ``None``."""
    requests: int
    errors: int
    p99_ms: float | None
    status: VariantStatus


@dataclass(frozen=True)
class CanaryView:
    """Where the ramp stands and each guard's limit beside the live values it judges."""

    step: int
    steps: list[float]
    percent: float
    status: str
    reason: str | None
    guards: list[tuple[str, str, str, str]]
    """``(guard, limit, canary, stable)``, as text."""


@dataclass(frozen=True)
class EndpointView:
    """Everything the endpoint page shows (see the module docstring)."""

    name: str
    policy: str
    policy_settings: dict[str, Any]
    revision: int
    updated_at: datetime
    updated_by: str
    variants: list[VariantView]
    experiment: ExperimentStatus
    traffic: Markup | None
    metric: Markup | None
    lift: Markup | None
    canary: CanaryView | None
    bandit: Markup | None
    live_available: bool
    can_update_weights: bool


def _rate(stats: Any) -> float | None:
    """A variant's metric from its sufficient statistics: a proportion's rate, else a mean
    (read by name: SciPy behind :mod:`vigil.stats.sufficient` stays off start-up)."""
    if stats is None:
        return None
    return float(stats.rate if hasattr(stats, "rate") else stats.mean)


def _pct(value: float | None) -> str:
    return charts.number(value, ".2%")


def _canary(policy: CanaryPolicy, live: dict[str, Any]) -> CanaryView:
    ramp = live.get("canary") or {}
    stats = live.get("stats") or {}
    c, s = stats.get(policy.canary) or {}, stats.get(policy.stable) or {}

    def error_rate(v: Mapping[str, Any]) -> float | None:
        return v["errors"] / v["requests"] if v.get("requests") else None

    g = policy.guards
    guards = [
        (
            "error rate increase",
            f"≤ {g.max_error_rate_increase:.2%} points",
            _pct(error_rate(c)),
            _pct(error_rate(s)),
        ),
        (
            "latency ratio (tail)",
            f"≤ {g.max_latency_ratio:g}×",
            charts.number(c.get("p99_ms"), ".1f") + " ms p99",
            charts.number(s.get("p99_ms"), ".1f") + " ms p99",
        ),
        (
            "quality drop",
            "off" if g.max_quality_drop is None else f"≤ {g.max_quality_drop:g}",
            charts.number(c.get("accuracy") if c.get("label_count") else c.get("reward_mean")),
            charts.number(s.get("accuracy") if s.get("label_count") else s.get("reward_mean")),
        ),
        (
            "requests before judging",
            f"≥ {g.min_requests}",
            f"{c.get('requests', 0):,}",
            f"{s.get('requests', 0):,}",
        ),
    ]
    return CanaryView(
        step=int(ramp.get("step", 0)),
        steps=[float(step.percent) for step in policy.steps],
        percent=float(ramp.get("percent", policy.steps[0].percent)),
        status=str(ramp.get("status", "ramping")),
        reason=ramp.get("reason"),
        guards=guards,
    )


def _bandit_history(services: ExperimentServices, name: str, config: Any) -> Markup | None:
    """Each arm's metric over the logged requests up to each of :data:`POINTS` moments."""
    import pandas as pd  # the statistics stack: only for this page

    from vigil.capture.reader import read_capture_table  # PyArrow, as pandas above
    from vigil.experiments.status import counts_from_frames  # SciPy, as pandas above

    table = read_capture_table(
        None, None, None, store=services.artifacts, log_dir=services.capture_dir
    )
    if table is None:
        return None
    captured = table.to_pandas()
    if "endpoint" not in captured.columns:
        return None
    captured = captured[captured["endpoint"] == name]
    if captured.empty:
        return None
    store = services.feedback_store()
    try:
        feedback = store.read()
    finally:
        store.close()
    times = pd.to_datetime(captured["time"], utc=True)
    first, last = times.min(), times.max()
    n = POINTS if last > first else 1
    cuts = [first + (last - first) * (i + 1) / n for i in range(n)]
    series: dict[str, list[float | None]] = {v: [] for v in config.variant_names}
    metric = None
    for cut in cuts:
        counts = counts_from_frames(config, captured[times <= cut], feedback)
        metric = counts.metric or metric
        for v in config.variant_names:
            series[v].append(_rate(counts.stats.get(v)))
    if metric is None:
        return None
    labels = [f"{cut:%m-%d %H:%M:%S}" for cut in cuts]
    return charts.line_chart(
        f"Arm estimates over time ({metric}, requests logged up to each moment)",
        labels,
        [charts.Series(v, values) for v, values in series.items()],
    )


def endpoint_view(services: ExperimentServices, name: str) -> EndpointView:
    """The endpoint page of ``name`` (raises :class:`~vigil.errors.NotFoundError` for an
    unknown endpoint)."""
    # SciPy behind the statistics: loaded by the first endpoint page, not at start-up.
    from vigil.experiments.status import experiment_status, live_state

    store = EndpointStore(services)
    stored = store.describe(name)
    config = stored.config
    try:
        resolved = {v: mv.uri for v, mv in store.resolve_variants(config).items()}
    except VigilError as exc:  # a variant's alias was removed: show the rest
        log.warning("could not resolve the variants of %s: %s", name, exc.message)
        resolved = {}
    live = live_state(services, config)
    status = experiment_status(services, name)
    stats = (live or {}).get("stats") or {}
    weights = (
        config.policy.normalised_weights(config.variant_names)
        if isinstance(config.policy, SplitPolicy)
        else {}
    )
    variants = []
    for v in config.variants:
        counters = stats.get(v.name) or {}
        variants.append(
            VariantView(
                name=v.name,
                model=v.model,
                resolved=resolved.get(v.name),
                weight=(
                    config.policy.weights.get(v.name, 0.0)
                    if isinstance(config.policy, SplitPolicy)
                    else None
                ),
                requests=int(counters.get("requests", 0)),
                errors=int(counters.get("errors", 0)),
                p99_ms=counters.get("p99_ms"),
                status=status.variant(v.name),
            )
        )
    total = sum(v.requests for v in variants)
    traffic = (
        charts.bar_chart(
            "Live traffic split (share of requests"
            + (
                ", configured: " + ", ".join(f"{k} {w:.0%}" for k, w in weights.items())
                if weights
                else ""
            )
            + ")",
            [(v.name, v.requests / total) for v in variants],
            spec=".1%",
            label="share of requests",
        )
        if total
        else None
    )
    with_value = [s for s in status.variants if s.value is not None]
    metric = (
        charts.interval_chart(
            f"{status.metric or 'metric'} per variant (95 % interval)",
            [(s.name, s.value, s.low, s.high) for s in with_value],
        )
        if with_value
        else None
    )
    with_lift = [s for s in status.variants if s.lift is not None]
    lift = (
        charts.interval_chart(
            f"Lift over {status.control} (95 % interval)",
            [(s.name, s.lift, s.lift_low, s.lift_high) for s in with_lift],
            spec="+.2%",
        )
        if with_lift
        else None
    )
    policy = config.policy
    canary = _canary(policy, live or {}) if isinstance(policy, CanaryPolicy) else None
    bandit = (
        _bandit_history(services, name, config) if isinstance(policy, BanditTrafficPolicy) else None
    )
    return EndpointView(
        name=config.name,
        policy=policy.kind,
        policy_settings=policy.model_dump(mode="json"),
        revision=stored.revision,
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
        variants=variants,
        experiment=status,
        traffic=traffic,
        metric=metric,
        lift=lift,
        canary=canary,
        bandit=bandit,
        live_available=live is not None,
        can_update_weights=isinstance(policy, SplitPolicy),
    )


# -- actions --------------------------------------------------------------------------------


def _unknown(form: Mapping[str, str], allowed: tuple[str, ...], action: str) -> None:
    unknown = unknown_fields(dict(form), allowed)
    if unknown:
        raise ValidationError(
            f"unknown field(s) {', '.join(map(repr, unknown))} for {action}",
            detail={"field": unknown[0], "expected": list(allowed), "got": unknown},
        )


def _confirmed(form: Mapping[str, str], action: str) -> None:
    if form.get("confirm") != "yes":
        raise ValidationError(
            f"tick the confirmation box to {action}",
            detail={"field": "confirm", "expected": "yes", "got": str(form.get("confirm"))[:40]},
        )


def _variant(form: Mapping[str, str], names: list[str]) -> str:
    variant = (form.get("variant") or "").strip()
    if variant not in names:
        raise ValidationError(
            f"'variant' must name one of the endpoint's variants: {', '.join(names)}; "
            f"got {variant[:40]!r}",
            detail={"field": "variant", "expected": names, "got": variant[:40]},
        )
    return variant


def update_weights(
    services: ExperimentServices, name: str, form: Mapping[str, str], actor: str
) -> str:
    """Set a split's weights from the fields ``weight.<variant>`` (relative, ≥ 0)."""
    store = EndpointStore(services)
    config = store.get(name)
    if not isinstance(config.policy, SplitPolicy):
        raise ValidationError(
            f"endpoint {name!r} routes by a {config.policy.kind} policy, which has no weights; "
            "change its policy with vigil endpoint update",
            detail={"field": "policy", "expected": "split", "got": config.policy.kind},
        )
    allowed = tuple(f"weight.{v}" for v in config.variant_names)
    _unknown(form, allowed, "update weights")
    weights: dict[str, float] = {}
    for v in config.variant_names:
        text = (form.get(f"weight.{v}") or "").strip()
        try:
            weight = float(text[:40])
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or not 0 <= weight <= MAX_WEIGHT:
            raise ValidationError(
                f"the weight of {v!r} must be a number from 0 to {MAX_WEIGHT:g}, got {text[:40]!r}",
                detail={"field": f"weight.{v}", "expected": "number >= 0", "got": text[:40]},
            )
        weights[v] = weight
    if sum(weights.values()) <= 0:
        raise ValidationError(
            "at least one weight must be positive", detail={"field": "weights", "got": weights}
        )
    store.put(config.model_copy(update={"policy": SplitPolicy(weights=weights)}), actor=actor)
    shown = ", ".join(f"{v} {w:g}" for v, w in weights.items())
    return f"{name} now splits traffic {shown}"


def conclude(services: ExperimentServices, name: str, form: Mapping[str, str], actor: str) -> str:
    """End the experiment: every request to ``variant``; with ``alias``, point that alias of
    its model at its version (as ``POST /v1/admin/endpoints/{endpoint}/conclude``)."""
    _unknown(form, ("variant", "alias", "confirm"), "conclude")
    _confirmed(form, "conclude the experiment")
    from vigil.experiments.status import conclude as conclude_experiment  # SciPy, on use

    config = EndpointStore(services).get(name)
    variant = _variant(form, config.variant_names)
    alias = (form.get("alias") or "").strip() or None
    done = conclude_experiment(services, name, promote=variant, actor=actor, alias=alias)
    moved = (
        f"; {done.model}@{done.alias} now points at version {done.version}" if done.alias else ""
    )
    return f"{name} concluded: every request goes to {variant}{moved}"


def promote(services: ExperimentServices, name: str, form: Mapping[str, str], actor: str) -> str:
    """Point an alias (``production`` unless named) of a variant's model at the version the
    variant serves, as the registry's admin API does; the endpoint's policy is unchanged."""
    _unknown(form, ("variant", "alias", "confirm"), "promote")
    _confirmed(form, "promote")
    store = EndpointStore(services)
    config = store.get(name)
    variant = _variant(form, config.variant_names)
    alias = check_alias((form.get("alias") or "production").strip())
    mv = store.resolve_variants(config)[variant]
    services.registry.acting_as(actor).set_alias(
        mv.name, alias, mv.version, reason=f"promoted from endpoint {name}, variant {variant}"
    )
    return f"{mv.name}@{alias} now points at version {mv.version} (variant {variant})"


ACTIONS: dict[str, Action] = {
    "weights": update_weights,
    "conclude": conclude,
    "promote": promote,
}
