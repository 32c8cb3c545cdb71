"""Where an experiment stands, per variant, and how to end it.

:func:`experiment_status` counts, for one endpoint, each variant's requests (its share of
traffic), server errors and feedback, then hands the feedback to
:func:`~vigil.stats.experiment.summarize_experiment` for the metric with its interval, the
lift over the control variant, the fixed-horizon and always-valid (mSPRT) p-values, the
probability of being best and a recommendation.

Sources. By default the inference log joined with feedback by ``(request_id, row)``: every
captured request carries its endpoint and variant, so feedback needs only the request id.
The log is streamed (:mod:`vigil.experiments.log_counts`): memory holds a record batch and
what the endpoint's own requests and feedback need, never the whole log or store.
Without captured traffic (capture off), the shared policy-state counters are used instead
(:mod:`vigil.experiments.state`): they hold the same requests, rewards and labels as sums.

The metric is the reward when any feedback has one (a rate when every reward is 0 or 1,
else a mean), otherwise the accuracy of the predictions against the labels.

The control variant is the stable one of a canary, the primary of a shadow policy, the
fixed policy's variant, and otherwise the first variant listed.

Sample-ratio mismatch is checked on *request* counts against the split's weights (only a
``split`` policy promises fixed shares; ramps and bandits move them on purpose). A mismatch
turns every treatment's recommendation into ``check assignment``, as
:func:`~vigil.stats.experiment.summarize_experiment` does with its own check, which here is
neutralised: it would run on feedback counts, which also depend on how often each
variant's callers send feedback, not only on assignment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from vigil.errors import InvalidParameterError
from vigil.experiments._counts import (
    Counts,
    Metric,
    MetricStats,
    counts_from_frames,
    counts_from_state,
)
from vigil.experiments.canary import canary_percent
from vigil.experiments.config import (
    CanaryPolicy,
    EndpointConfig,
    FixedPolicy,
    ShadowPolicy,
    SplitPolicy,
)
from vigil.experiments.log_counts import counts_from_log
from vigil.experiments.store import EndpointStore
from vigil.names import check_alias
from vigil.stats.experiment import ExperimentSummary, Recommendation, summarize_experiment
from vigil.stats.results import jsonable
from vigil.stats.srm import SRMResult, sample_ratio_mismatch
from vigil.stats.sufficient import ProportionStats

if TYPE_CHECKING:
    import pandas as pd

    from vigil.experiments.services import ExperimentServices

__all__ = [
    "Conclusion",
    "Counts",
    "ExperimentStatus",
    "VariantStatus",
    "conclude",
    "control_variant",
    "counts_from_frames",
    "counts_from_state",
    "experiment_status",
    "live_state",
    "read_frames",
    "summarize_counts",
]

log = logging.getLogger("vigil.experiments")


@dataclass(frozen=True)
class VariantStatus:
    """One row of the status table."""

    name: str
    model: str
    expected_share: float | None
    requests: int
    share: float | None
    errors: int
    feedback: int
    value: float | None
    low: float | None
    high: float | None
    lift: float | None
    """Relative lift over the control (``0.05`` = 5 % better), with its interval."""
    lift_low: float | None
    lift_high: float | None
    p_value: float | None
    always_valid_p_value: float | None
    prob_best: float | None
    recommendation: str


@dataclass(frozen=True)
class ExperimentStatus:
    """The status of an endpoint's experiment (see the module docstring)."""

    endpoint: str
    policy: str
    control: str
    metric: Metric | None
    source: Literal["capture", "state"]
    variants: tuple[VariantStatus, ...]
    srm: SRMResult | None
    decision: str
    summary: ExperimentSummary | None = None
    live: dict[str, Any] | None = None
    """The canary's live control record (step, percent, status) when there is one."""

    def variant(self, name: str) -> VariantStatus:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as ``None``); ``summary`` is the full statistics record."""
        out: dict[str, Any] = jsonable(
            {
                "endpoint": self.endpoint,
                "policy": self.policy,
                "control": self.control,
                "metric": self.metric,
                "source": self.source,
                "variants": self.variants,
                "srm": self.srm,
                "decision": self.decision,
                "live": self.live,
            }
        )
        out["summary"] = self.summary.to_dict() if self.summary is not None else None
        return out


def control_variant(config: EndpointConfig) -> str:
    """The variant the others are compared with (see the module docstring).

    >>> from vigil.experiments.config import parse_endpoint
    >>> control_variant(parse_endpoint({"name": "e", "variants": [
    ...     {"name": "a", "model": "models:/m/1"}, {"name": "b", "model": "models:/m/2"}],
    ...     "policy": {"kind": "canary", "stable": "b", "canary": "a"}}))
    'b'
    """
    policy = config.policy
    if isinstance(policy, CanaryPolicy):
        return policy.stable
    if isinstance(policy, ShadowPolicy):
        return policy.primary
    if isinstance(policy, FixedPolicy):
        return policy.variant
    return config.variants[0].name


def expected_shares(config: EndpointConfig) -> dict[str, float] | None:
    """Traffic shares the policy promises, for the SRM check (only ``split`` promises any)."""
    policy = config.policy
    if not isinstance(policy, SplitPolicy):
        return None
    shares = policy.normalised_weights(config.variant_names)
    return {v: w for v, w in shares.items() if w > 0}


def _check_assignment(rec: Recommendation, srm: SRMResult | None) -> str:
    if srm is not None and srm.mismatch and rec is not Recommendation.CONTROL:
        return Recommendation.CHECK_ASSIGNMENT.value
    return rec.value


def summarize_counts(
    config: EndpointConfig,
    counts: Counts,
    *,
    source: Literal["capture", "state"] = "capture",
    alpha: float = 0.05,
    live: dict[str, Any] | None = None,
) -> ExperimentStatus:
    """The status table from ``counts`` (pure: no I/O)."""
    control = control_variant(config)
    names = config.variant_names
    total = sum(counts.requests.values())
    expected = expected_shares(config)
    srm: SRMResult | None = None
    if expected is not None and len(expected) >= 2:
        srm = sample_ratio_mismatch({v: counts.requests[v] for v in expected}, expected)
    summary: ExperimentSummary | None = None
    with_data = counts.stats
    if control in with_data and len(with_data) >= 2:
        # Neutral weights: the assignment is checked on request counts above, not here.
        weights = {v: float(s.n) for v, s in with_data.items()}
        summary = summarize_experiment(
            with_data,  # type: ignore[arg-type]  # one kind per endpoint, by _metric_stats
            control,
            alpha=alpha,
            weights=weights,
        )
    rows = []
    for v in names:
        est = lift = None
        p = av = best = None
        if summary is not None and v in with_data:
            row = summary.variant(v)
            est, lift = row.estimate, row.relative_lift
            p, av, best = row.p_value, row.always_valid_p_value, row.prob_best
            rec = _check_assignment(row.recommendation, srm)
        elif v == control:
            rec = Recommendation.CONTROL.value
        elif v in with_data:
            rec = "waiting for feedback on the control"
        else:
            rec = "waiting for feedback"
        rows.append(
            VariantStatus(
                name=v,
                model=config.variant(v).model,
                expected_share=expected.get(v, 0.0) if expected is not None else None,
                requests=counts.requests[v],
                share=counts.requests[v] / total if total else None,
                errors=counts.errors[v],
                feedback=counts.feedback[v],
                value=est.value if est is not None else _plain_value(with_data.get(v)),
                low=est.low if est is not None else None,
                high=est.high if est is not None else None,
                lift=lift.value if lift is not None else None,
                lift_low=lift.low if lift is not None else None,
                lift_high=lift.high if lift is not None else None,
                p_value=p,
                always_valid_p_value=av,
                prob_best=best,
                recommendation=rec,
            )
        )
    if srm is not None and srm.mismatch:
        decision = "check assignment: the traffic split does not match its weights"
    elif summary is not None:
        decision = summary.decision
    elif counts.metric is None:
        decision = "waiting for feedback"
    else:
        decision = "keep collecting"
    return ExperimentStatus(
        endpoint=config.name,
        policy=config.policy.kind,
        control=control,
        metric=counts.metric,
        source=source,
        variants=tuple(rows),
        srm=srm,
        decision=decision,
        summary=summary,
        live=live,
    )


def _plain_value(stats: MetricStats | None) -> float | None:
    if stats is None:
        return None
    return stats.rate if isinstance(stats, ProportionStats) else stats.mean


def live_state(app: ExperimentServices, config: EndpointConfig) -> dict[str, Any] | None:
    """The endpoint's shared counters per variant, its control record and, for a canary,
    where the ramp stands; ``None`` (logged) when the state store cannot be reached."""
    try:
        state = app.policy_state()
        stats = state.stats(config.name)
        control = state.control(config.name).data
    except Exception as exc:  # a status page must not fail because Redis is away
        log.warning("could not read the live state of %s: %s", config.name, exc)
        return None
    out: dict[str, Any] = {
        "stats": {
            v: {
                "requests": s.requests,
                "errors": s.errors,
                "p99_ms": None if s.requests == 0 else s.p99_ms,
                "reward_count": s.reward_count,
                "reward_mean": None if s.reward_count == 0 else s.reward_mean,
                "label_count": s.label_count,
                "accuracy": None if s.label_count == 0 else s.accuracy,
            }
            for v, s in stats.items()
        },
        "control": control or None,
        "canary": None,
    }
    if isinstance(config.policy, CanaryPolicy):
        out["canary"] = {
            "step": int(control.get("step", 0)),
            "steps": len(config.policy.steps),
            "percent": canary_percent(config.policy, control),
            "status": control.get("status", "ramping"),
            "reason": control.get("reason"),
            "step_started_at": control.get("step_started_at"),
        }
    plain: dict[str, Any] = jsonable(out)  # NaN p99 of an empty histogram → None
    return plain


def read_frames(
    app: ExperimentServices, since: datetime | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole capture log (every model, from ``since``) and the whole feedback store as
    two frames: what :func:`counts_from_frames` takes. The status itself streams the log
    instead (:func:`~vigil.experiments.log_counts.counts_from_log`); this stays as the
    reference its tests compare with, on small logs."""
    import pandas as pd  # the statistics stack, for a status: not on the serving path

    from vigil.capture.reader import read_capture_table  # PyArrow, as pandas above

    table = read_capture_table(None, since, None, store=app.artifacts, log_dir=app.capture_dir)
    captured = table.to_pandas() if table is not None else pd.DataFrame()
    if captured.empty:
        return captured, pd.DataFrame()
    store = app.feedback_store()
    try:
        return captured, store.read()
    finally:
        store.close()


def experiment_status(
    app: ExperimentServices,
    name: str,
    *,
    since: datetime | None = None,
    source: Literal["auto", "capture", "state"] = "auto",
    alpha: float = 0.05,
) -> ExperimentStatus:
    """The status of endpoint ``name``'s experiment (see the module docstring).

    ``source="auto"`` reads the inference log and falls back to the policy-state counters
    when the log holds no request of this endpoint. ``since`` (timezone-aware) limits the
    log to requests from then on.
    """
    config = EndpointStore(app).get(name)
    state = live_state(app, config)
    live = state["canary"] if state is not None else None
    counts: Counts | None = None
    used: Literal["capture", "state"] = "capture"
    if source in ("auto", "capture"):
        counts = counts_from_log(
            config,
            store=app.artifacts,
            log_dir=app.capture_dir,
            feedback=app.feedback_store,
            since=since,
        )
        if source == "auto" and not any(counts.requests.values()):
            counts = None
    if counts is None:
        counts = counts_from_state(config, app.policy_state().stats(name))
        used = "state"
    return summarize_counts(config, counts, source=used, alpha=alpha, live=live)


@dataclass(frozen=True)
class Conclusion:
    """What :func:`conclude` did."""

    endpoint: str
    variant: str
    model: str
    version: int
    alias: str | None
    previous_policy: dict[str, Any]


def conclude(
    app: ExperimentServices,
    name: str,
    *,
    promote: str,
    actor: str,
    alias: str | None = None,
) -> Conclusion:
    """End the experiment: route every request of ``name`` to variant ``promote`` (a
    ``fixed`` policy) and, if ``alias`` is given, point that alias of the variant's model at
    the version it serves. Both changes are audited; nothing changes if a check fails."""
    store = EndpointStore(app)
    config = store.get(name)
    if promote not in config.variant_names:
        raise InvalidParameterError(
            f"endpoint {name!r} has no variant {promote!r}; its variants are: "
            + ", ".join(config.variant_names),
            detail={"field": "promote", "variant": promote},
        )
    if alias is not None:
        check_alias(alias)
    mv = store.resolve_variants(config)[promote]
    fixed = config.model_copy(update={"policy": FixedPolicy(variant=promote)})
    store.update(name, fixed, actor=actor, action="experiment.conclude")
    if alias is not None:
        app.registry.acting_as(actor).set_alias(
            mv.name, alias, mv.version, reason=f"experiment {name} concluded: {promote}"
        )
    return Conclusion(
        endpoint=name,
        variant=promote,
        model=mv.name,
        version=mv.version,
        alias=alias,
        previous_policy=config.policy.model_dump(mode="json"),
    )
