"""The canary's ramp: when to take the next step, when to roll back, when to promote.

:func:`decide` is a pure function of the endpoint's configuration, the shared control
record, the per-variant counters and the time; :class:`CanaryController` reads those from
the :class:`~vigil.experiments.state.PolicyStateStore`, applies the decision by
compare-and-set (so of every worker ticking at once exactly one applies it) and then does
the side effects: an audit row, an alert, the alias move on promotion.

The ramp
--------
The canary starts at step 0 (e.g. 5 % of traffic). A step is done once it has lasted its
``min_duration_s`` and the canary answered ``min_requests`` requests in it; then the ramp
advances, and after the last step (100 %) the canary is *promoted*: the configured alias
(``production``) moves to its version and it keeps all the traffic.

The guards
----------
Judged on the counts since the ramp started (the control record keeps a snapshot of the
counters at that moment, so earlier traffic of the same variants does not count), once the
canary has ``guards.min_requests`` requests:

* error rate: canary − stable > ``max_error_rate_increase``;
* latency: the canary's tail is more than ``max_latency_ratio`` times the stable's, with
  evidence. The tail is the stable variant's p99, or below 1,000 timed requests the
  highest quantile ``q`` with :data:`TAIL_POINTS` requests above it (p90 at 100); a
  breach needs significantly more than ``1 - q`` of the canary's requests above
  ``max_latency_ratio`` times that tail (one-sided binomial test at
  :data:`LATENCY_ALPHA`). A point ratio of two p99s is noise on a busy host: the p99 of
  50 requests is their maximum, and a pause of a few milliseconds rolled good canaries
  back. A tail under :data:`LATENCY_FLOOR_MS` counts as that floor (sub-millisecond
  differences are timer noise, not a slower model);
* quality, when ``max_quality_drop`` is set and both variants have ``guards.min_labels``
  labels (accuracy) or else rewards (mean reward): stable − canary > ``max_quality_drop``;
* fairness, when ``max_group_accuracy_drop`` is set and the model has sensitive
  attributes (``monitor.fairness``): in any group with ``guards.min_group_labels`` labels
  on both sides, stable − canary accuracy > ``max_group_accuracy_drop``
  (:mod:`vigil.experiments.group_guard`).

Any breach rolls the canary back to 0 % at once. A rolled-back or promoted canary stays so
until its configuration changes (a new canary version, other steps): then the ramp starts
over. A canary is never promoted before its guards could be judged.

>>> from vigil.experiments.config import parse_endpoint
>>> from vigil.experiments.state import VariantStats
>>> cfg = parse_endpoint({"name": "checkout", "variants": [
...     {"name": "stable", "model": "models:/churn/1"},
...     {"name": "canary", "model": "models:/churn/2"}],
...     "policy": {"kind": "canary", "stable": "stable", "canary": "canary",
...                "steps": [{"percent": 10, "min_duration_s": 60, "min_requests": 50},
...                          {"percent": 100, "min_duration_s": 60, "min_requests": 50}]}})
>>> start = decide(cfg, {}, {}, now=1000.0)
>>> start.action, start.percent
('start', 10.0)
>>> stats = {"stable": VariantStats().add(requests=900, errors=9, latency_ms=[4.0] * 900),
...          "canary": VariantStats().add(requests=100, errors=1, latency_ms=[4.0] * 100)}
>>> d = decide(cfg, start.control, stats, now=1061.0)
>>> d.action, d.step, d.percent
('advance', 1, 100.0)
>>> _ = stats["canary"].add(requests=100, errors=20, latency_ms=[4.0] * 100)
>>> d = decide(cfg, d.control, stats, now=1070.0)
>>> d.action, d.percent, d.reason
('rollback', 0.0, 'canary error rate 10.5% exceeds stable 1.0% by more than 1.0 points')
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from vigil.audit import record_audit
from vigil.experiments._alerts import send_alert
from vigil.experiments.config import CanaryPolicy, EndpointConfig
from vigil.experiments.group_guard import GroupAccuracy, GroupCounter, group_breach
from vigil.experiments.state import VariantStats
from vigil.uri import parse_model_ref

if TYPE_CHECKING:
    from vigil.experiments.services import ExperimentServices
    from vigil.experiments.state import PolicyStateStore

__all__ = [
    "LATENCY_FLOOR_MS",
    "CanaryController",
    "CanaryDecision",
    "canary_percent",
    "decide",
    "policy_fingerprint",
]

log = logging.getLogger("vigil.experiments")

LATENCY_FLOOR_MS = 1.0
"""Tail latencies below this are compared as this (the guard judges models, not timer noise)."""
TAIL_POINTS = 10
"""Requests the latency guard wants above the stable variant's tail quantile."""
LATENCY_ALPHA = 0.001
"""Level of the latency guard's test: how often a canary as fast as the stable breaches."""


def tail_quantile(n: int) -> float | None:
    """The latency quantile ``n`` requests can estimate (None below ``2 * TAIL_POINTS``).

    >>> tail_quantile(50), tail_quantile(100), tail_quantile(5000), tail_quantile(15)
    (0.8, 0.9, 0.99, None)
    """
    if n < 2 * TAIL_POINTS:
        return None
    return min(0.99, round(1.0 - TAIL_POINTS / n, 4))


Action = Literal["start", "restart", "advance", "rollback", "promote"]


@dataclass(frozen=True)
class CanaryDecision:
    """One transition of the ramp and the numbers behind it.

    ``control`` is the new control record (what :meth:`PolicyStateStore.set_control` stores);
    ``percent`` the canary's share of traffic after the transition.
    """

    action: Action
    step: int
    percent: float
    reason: str
    control: dict[str, Any]
    evidence: dict[str, float | None] = field(default_factory=dict)


def policy_fingerprint(config: EndpointConfig) -> str:
    """A short digest of what makes a canary run *the same* run: the two variants, their
    models and the steps. Guards, webhooks or the alias may change without a restart."""
    policy = config.policy
    if not isinstance(policy, CanaryPolicy):
        return ""
    what = {
        "stable": [policy.stable, config.variant(policy.stable).model],
        "canary": [policy.canary, config.variant(policy.canary).model],
        "steps": [s.model_dump() for s in policy.steps],
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def canary_percent(policy: CanaryPolicy, control: Mapping[str, Any]) -> float:
    """The canary's share of traffic (0-100) that ``control`` gives it.

    >>> p = CanaryPolicy(stable="a", canary="b")
    >>> canary_percent(p, {}), canary_percent(p, {"step": 2, "status": "ramping"})
    (5.0, 50.0)
    >>> canary_percent(p, {"step": 2, "status": "rolled_back"})
    0.0
    """
    status = control.get("status", "ramping")
    if status == "rolled_back":
        return 0.0
    if status == "promoted":
        return 100.0
    step = min(max(int(control.get("step", 0)), 0), len(policy.steps) - 1)
    return float(policy.steps[step].percent)


def _since(current: VariantStats, base: Mapping[str, float]) -> VariantStats:
    """``current`` minus the snapshot ``base``; all of ``current`` if a counter went down
    (the counters were reset after the snapshot)."""
    now = current.counters()
    names = set(now) | set(base)
    if any(now.get(n, 0) < base.get(n, 0) for n in names):
        return current
    return VariantStats.from_counters({n: now.get(n, 0) - base.get(n, 0) for n in names})


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _breach(
    policy: CanaryPolicy, stable: VariantStats, canary: VariantStats
) -> tuple[str | None, dict[str, float | None]]:
    """The first guard the canary breaches (its reason) or ``None``, and the evidence."""
    g = policy.guards
    s_err = stable.error_rate if stable.requests else 0.0
    c_p99, s_p99 = canary.p99_ms, stable.p99_ms
    evidence: dict[str, float | None] = {
        "canary_requests": float(canary.requests),
        "stable_requests": float(stable.requests),
        "canary_error_rate": None if math.isnan(canary.error_rate) else canary.error_rate,
        "stable_error_rate": s_err,
        "canary_p99_ms": None if math.isnan(c_p99) else c_p99,
        "stable_p99_ms": None if math.isnan(s_p99) else s_p99,
    }
    if g.max_quality_drop is not None:
        if canary.label_count >= g.min_labels and stable.label_count >= g.min_labels:
            metric, s_q, c_q = "accuracy", stable.accuracy, canary.accuracy
        elif canary.reward_count >= g.min_labels and stable.reward_count >= g.min_labels:
            metric, s_q, c_q = "mean reward", stable.reward_mean, canary.reward_mean
        else:
            metric = ""
        if metric:
            evidence.update(canary_quality=c_q, stable_quality=s_q)
            if s_q - c_q > g.max_quality_drop:
                return (
                    f"canary {metric} {c_q:.4g} is below stable {s_q:.4g} by more than "
                    f"{g.max_quality_drop:g}",
                    evidence,
                )
    if canary.requests < g.min_requests:
        return None, evidence
    if canary.error_rate - s_err > g.max_error_rate_increase:
        return (
            f"canary error rate {_pct(canary.error_rate)} exceeds stable {_pct(s_err)} by "
            f"more than {100 * g.max_error_rate_increase:.1f} points",
            evidence,
        )
    q = tail_quantile(sum(stable.latency_buckets))
    n_timed = sum(canary.latency_buckets)
    if q is not None and stable.requests >= g.min_requests and n_timed:
        from scipy.stats import binom  # SciPy stays off the serving start-up path

        s_tail = max(stable.quantile_ms(q), LATENCY_FLOOR_MS)
        ratio = max(canary.quantile_ms(q), LATENCY_FLOOR_MS) / s_tail
        # Canary requests slower than the allowed multiple of the stable's tail: as fast
        # a canary has at most 1 - q of them.
        over = n_timed * canary.share_above_ms(g.max_latency_ratio * s_tail)
        p = float(binom.sf(math.ceil(over - 1e-9) - 1, n_timed, 1.0 - q))
        evidence.update(latency_quantile=q, latency_ratio=ratio, latency_p_value=p)
        if ratio > g.max_latency_ratio and p < LATENCY_ALPHA:
            return (
                f"canary p{100 * q:g} latency {canary.quantile_ms(q):.1f} ms is {ratio:.1f}x "
                f"the stable's {s_tail:.1f} ms (allowed {g.max_latency_ratio:g}x; "
                f"{over:.0f} of {n_timed} canary requests over {g.max_latency_ratio:g}x, "
                f"p = {p:.2g})",
                evidence,
            )
    return None, evidence


def decide(
    config: EndpointConfig,
    control: Mapping[str, Any],
    stats: Mapping[str, VariantStats],
    now: float,
    groups: GroupAccuracy | None = None,
) -> CanaryDecision | None:
    """What the ramp of ``config``'s canary should do now, or ``None`` (nothing).

    ``control`` is the control record's data (empty when never written), ``stats`` the
    cumulative counters per variant, ``now`` unix seconds, ``groups`` the labelled and
    correct rows per group of each variant since the ramp started (the fairness guard).
    Pure: reads nothing else.
    """
    policy = config.policy
    if not isinstance(policy, CanaryPolicy):
        return None
    steps = policy.steps
    totals = {v: stats.get(v) or VariantStats() for v in (policy.stable, policy.canary)}
    fingerprint = policy_fingerprint(config)
    if control.get("fingerprint") != fingerprint:
        first = not control
        data = {
            "step": 0,
            "status": "ramping",
            "started_at": now,
            "step_started_at": now,
            "fingerprint": fingerprint,
            "base": {v: s.counters() for v, s in totals.items()},
            "step_base_requests": totals[policy.canary].requests,
        }
        why = (
            f"ramp started at {steps[0].percent:g}%"
            if first
            else f"configuration changed: ramp restarted at {steps[0].percent:g}%"
        )
        return CanaryDecision("start" if first else "restart", 0, steps[0].percent, why, data)
    if control.get("status", "ramping") != "ramping":
        return None
    step = min(max(int(control.get("step", 0)), 0), len(steps) - 1)
    base = control.get("base") or {}
    canary = _since(totals[policy.canary], base.get(policy.canary, {}))
    stable = _since(totals[policy.stable], base.get(policy.stable, {}))
    reason, evidence = _breach(policy, stable, canary)
    margin = policy.guards.max_group_accuracy_drop
    if reason is None and margin is not None and groups is not None:
        reason, found = group_breach(
            groups,
            policy.stable,
            policy.canary,
            margin=margin,
            min_labels=policy.guards.min_group_labels,
        )
        evidence.update(found)
    if reason is not None:
        data = {**control, "status": "rolled_back", "reason": reason, "ended_at": now}
        return CanaryDecision("rollback", step, 0.0, reason, data, evidence)
    rung = steps[step]
    elapsed = now - float(control.get("step_started_at", now))
    in_step = totals[policy.canary].requests - int(control.get("step_base_requests", 0))
    if in_step < 0:  # counters were reset: everything counts as this step's
        in_step = totals[policy.canary].requests
    evidence.update(step_elapsed_s=elapsed, step_requests=float(in_step))
    if elapsed < rung.min_duration_s or in_step < rung.min_requests:
        return None
    if step == len(steps) - 1:
        if canary.requests < policy.guards.min_requests:
            return None
        data = {**control, "status": "promoted", "ended_at": now}
        return CanaryDecision(
            "promote", step, 100.0, f"ramp completed at {rung.percent:g}%", data, evidence
        )
    nxt = steps[step + 1]
    data = {
        **control,
        "step": step + 1,
        "step_started_at": now,
        "step_base_requests": totals[policy.canary].requests,
    }
    reason = f"step {step} ({rung.percent:g}%) done: {in_step} requests in {elapsed:.0f} s"
    return CanaryDecision("advance", step + 1, nxt.percent, reason, data, evidence)


class CanaryController:
    """Applies :func:`decide` to the shared state; call :meth:`tick` about every second.

    Every worker may tick the same endpoint: the transition is a compare-and-set on the
    control record, so exactly one of them applies it and does the side effects (audit,
    alert, alias move). ``actor`` names the controller in the audit log.
    """

    def __init__(
        self,
        app: ExperimentServices,
        store: PolicyStateStore,
        *,
        actor: str = "canary-controller",
    ) -> None:
        self.vigil = app
        self.store = store
        self.actor = actor
        self._groups = GroupCounter(app)

    def __repr__(self) -> str:
        return f"CanaryController({self.store!r})"

    def tick(self, config: EndpointConfig, now: float | None = None) -> CanaryDecision | None:
        """Decide and, if this caller wins the compare-and-set, apply; the decision applied
        (``None`` when there was nothing to do or another worker applied it)."""
        policy = config.policy
        if not isinstance(policy, CanaryPolicy):
            return None
        now = time.time() if now is None else now
        control = self.store.control(config.name)
        settled = control.data.get("status", "ramping") != "ramping"
        if settled and control.data.get("fingerprint") == policy_fingerprint(config):
            return None  # rolled back or promoted: nothing to read until the config changes
        groups = self._group_accuracy(config, policy, control.data)
        decision = decide(config, control.data, self.store.stats(config.name), now, groups)
        if decision is None:
            return None
        if not self.store.set_control(
            config.name, decision.control, expected_revision=control.revision
        ):
            return None
        self._apply(config, policy, decision, control.data)
        if decision.action in ("rollback", "promote"):
            self._settled(config.name, decision, control.revision + 1)
        return decision

    def _settled(self, endpoint: str, decision: CanaryDecision, revision: int) -> None:
        """Mark the ended ramp's side effects (alias move, audit, alert) done, so that a
        reader of the control record (the update policy) does not act before them."""
        data = {**decision.control, "applied_at": time.time()}
        try:
            self.store.set_control(endpoint, data, expected_revision=revision)
        except Exception:  # readers fall back on the grace period after ``ended_at``
            log.exception("could not mark the canary of endpoint %s settled", endpoint)

    def _group_accuracy(
        self, config: EndpointConfig, policy: CanaryPolicy, control: Mapping[str, Any]
    ) -> GroupAccuracy | None:
        """The fairness guard's counts, when it is on and the ramp is running."""
        if policy.guards.max_group_accuracy_drop is None or "started_at" not in control:
            return None
        if control.get("fingerprint") != policy_fingerprint(config):
            return None  # the ramp restarts: its counts start over
        model = parse_model_ref(config.variant(policy.canary).model).name
        fairness = self.vigil.monitor_settings.fairness.get(model)
        if fairness is None:
            return None
        stable = parse_model_ref(config.variant(policy.stable).model).name
        return self._groups.counts(
            config.name,
            (policy.stable, policy.canary),
            fairness,
            float(control["started_at"]),
            (stable, model),
        )

    def _apply(
        self,
        config: EndpointConfig,
        policy: CanaryPolicy,
        decision: CanaryDecision,
        before: Mapping[str, Any],
    ) -> None:
        canary_ref = parse_model_ref(config.variant(policy.canary).model)
        after: dict[str, Any] = {
            "step": decision.step,
            "percent": decision.percent,
            "status": decision.control.get("status"),
            "reason": decision.reason,
            "evidence": decision.evidence,
        }
        if decision.action == "promote" and policy.promote_alias is not None:
            after["alias"] = self._promote(config, policy, canary_ref.name)
        prior = (
            {
                "step": before.get("step", 0),
                "percent": canary_percent(policy, before),
                "status": before.get("status", "ramping"),
            }
            if before
            else None
        )
        try:
            with self.vigil.database.session(write=True) as session:
                record_audit(
                    session,
                    actor=self.actor,
                    action=f"canary.{decision.action}",
                    entity_type="endpoint",
                    entity_name=config.name,
                    model_name=canary_ref.name,
                    before=prior,
                    after=after,
                )
        except Exception:  # the transition stands; a lost audit row must not stop routing
            log.exception("could not audit canary %s of endpoint %s", decision.action, config.name)
        if decision.action in ("rollback", "promote"):
            rolled_back = decision.action == "rollback"
            ramp = f"{decision.control.get('fingerprint')}@{decision.control.get('started_at')}"
            send_alert(
                self.vigil,
                name=f"canary_{decision.action}",
                severity="critical" if rolled_back else "info",
                summary=(
                    f"endpoint {config.name}: canary {policy.canary} "
                    + ("rolled back: " if rolled_back else "promoted: ")
                    + decision.reason
                ),
                labels={
                    "endpoint": config.name,
                    "variant": policy.canary,
                    "model": canary_ref.name,
                    "action": decision.action,
                },
                value=decision.evidence.get("canary_error_rate"),
                webhooks=config.webhook_urls,
                # One alert per ramp and outcome, however many workers apply the same one.
                occurrence=ramp,
            )
        log.info("endpoint %s: canary %s (%s)", config.name, decision.action, decision.reason)

    def _promote(self, config: EndpointConfig, policy: CanaryPolicy, model: str) -> dict[str, Any]:
        """Move ``promote_alias`` of the canary's model to the version it serves."""
        alias = policy.promote_alias or ""
        try:
            version = self.vigil.registry.resolve(config.variant(policy.canary).model).version
            self.vigil.registry.acting_as(self.actor).set_alias(
                model, alias, version, reason=f"canary of endpoint {config.name} promoted"
            )
        except Exception as exc:
            log.exception("could not move %s@%s after promoting %s", model, alias, config.name)
            return {"model": model, "alias": alias, "error": str(exc)}
        return {"model": model, "alias": alias, "version": version}
