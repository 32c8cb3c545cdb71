"""One call that answers "is the new variant better?" from per-variant sufficient statistics.

:func:`summarize_experiment` takes the counters serving keeps (``ProportionStats`` for a
rate, ``MeanStats`` for a mean) and a control name, and returns per variant: the rate or
mean with its interval, the absolute and relative lift over control with intervals, the
fixed-horizon p-value, the always-valid (mSPRT) p-value, the probability of being best,
and a :class:`Recommendation`; plus the sample-ratio-mismatch check.

Decision rule (per treatment, evaluated in this order):

1. Sample-ratio mismatch (``p < srm_threshold``) → ``CHECK_ASSIGNMENT`` for every
   treatment: with a broken split no other number can be trusted.
2. The always-valid p-values are adjusted across treatments (Holm by default). Because
   they stay valid under continuous monitoring, the rule may be applied at every look.
   Adjusted ``p <= alpha`` and the treatment better than control → ``SHIP``; worse →
   ``STOP_WORSE``. "Better" means higher unless ``higher_is_better=False`` (latency).
3. Otherwise, if ``min_effect`` (an absolute difference too small to matter) is given and
   the interval of the difference lies inside ``(-min_effect, +min_effect)`` →
   ``NO_DIFFERENCE``.
4. Otherwise, if ``planned_n`` is given and control and treatment both reached it →
   ``NO_DIFFERENCE`` (the planned sample found nothing).
5. Otherwise → ``KEEP_COLLECTING``.

The intervals and the fixed-horizon p-value are reported for reading, not for deciding:
they are only valid at a sample size fixed in advance.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

from vigil.params import check_choice, check_count, check_positive, check_probability, fail
from vigil.stats.bayes_binomial import beta_binomial_comparison, prob_best_beta
from vigil.stats.bayes_gaussian import gaussian_comparison, prob_best_normal
from vigil.stats.means import (
    mean_ci_t,
    mean_difference_ci_welch,
    relative_lift_ci_delta,
    welch_ttest,
)
from vigil.stats.multiple_testing import METHODS, adjust_p_values
from vigil.stats.proportions import (
    difference_ci_newcombe,
    rate_ci_wilson,
    relative_lift_ci_katz,
    two_proportion_ztest,
)
from vigil.stats.results import Estimate, _Record
from vigil.stats.sequential import DEFAULT_TAU, msprt_p_value
from vigil.stats.srm import SRMResult, sample_ratio_mismatch
from vigil.stats.sufficient import MeanStats, ProportionStats

__all__ = ["ExperimentSummary", "Recommendation", "VariantSummary", "summarize_experiment"]


class Recommendation(enum.StrEnum):
    """What to do with one treatment (see the module docstring for the rule)."""

    CONTROL = "control"
    KEEP_COLLECTING = "keep collecting"
    SHIP = "ship"
    NO_DIFFERENCE = "no difference"
    STOP_WORSE = "stop: worse"
    CHECK_ASSIGNMENT = "check assignment"


@dataclass(frozen=True)
class VariantSummary(_Record):
    """Everything known about one variant; comparison fields are ``None`` for the control."""

    name: str
    n: int
    estimate: Estimate
    difference: Estimate | None
    relative_lift: Estimate | None
    p_value: float | None
    always_valid_p_value: float | None
    always_valid_p_adjusted: float | None
    prob_beats_control: float | None
    expected_loss: float | None
    prob_best: float
    recommendation: Recommendation


@dataclass(frozen=True)
class ExperimentSummary(_Record):
    """Per-variant summaries, the SRM check and the overall decision in one sentence."""

    metric: str
    control: str
    alpha: float
    correction: str
    variants: tuple[VariantSummary, ...]
    srm: SRMResult
    decision: str

    def variant(self, name: str) -> VariantSummary:
        """The summary of one variant by name."""
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


def _decide(
    *,
    srm: bool,
    p_adj: float,
    diff: Estimate,
    alpha: float,
    higher_is_better: bool,
    min_effect: float | None,
    reached_plan: bool,
) -> Recommendation:
    if srm:
        return Recommendation.CHECK_ASSIGNMENT
    if not math.isnan(p_adj) and p_adj <= alpha and diff.value != 0:
        better = (diff.value > 0) == higher_is_better
        return Recommendation.SHIP if better else Recommendation.STOP_WORSE
    if min_effect is not None and -min_effect < diff.low and diff.high < min_effect:
        return Recommendation.NO_DIFFERENCE
    if reached_plan:
        return Recommendation.NO_DIFFERENCE
    return Recommendation.KEEP_COLLECTING


def _overall(rows: list[VariantSummary], prob_best: Mapping[str, float]) -> str:
    recs = [r.recommendation for r in rows]
    if Recommendation.CHECK_ASSIGNMENT in recs:
        return "check assignment: the traffic split does not match its weights"
    ship = [r.name for r in rows if r.recommendation is Recommendation.SHIP]
    if ship:
        return f"ship {max(ship, key=lambda name: prob_best[name])}"
    if all(r in (Recommendation.NO_DIFFERENCE, Recommendation.STOP_WORSE) for r in recs):
        return "keep control"
    return "keep collecting"


def summarize_experiment(
    variants: Mapping[str, ProportionStats] | Mapping[str, MeanStats],
    control: str,
    *,
    alpha: float = 0.05,
    tau: float = DEFAULT_TAU,
    weights: Mapping[str, float] | None = None,
    srm_threshold: float = 0.001,
    correction: str = "holm",
    min_effect: float | None = None,
    planned_n: int | None = None,
    higher_is_better: bool = True,
    previous_p_values: Mapping[str, float] | None = None,
    draws: int = 100_000,
    seed: int = 0,
) -> ExperimentSummary:
    """Summarise an A/B/n experiment and recommend what to do with each treatment.

    ``previous_p_values`` are the always-valid p-values returned at the last look (by
    variant name); passing them keeps the running minimum across calls. Intervals are at
    level ``1 - alpha``; ``prob_best`` is seeded Monte Carlo with ``draws`` draws.

    >>> s = summarize_experiment(
    ...     {"a": ProportionStats(20_000, 1_000), "b": ProportionStats(20_000, 1_160)},
    ...     control="a",
    ... )
    >>> b = s.variant("b")
    >>> round(b.relative_lift.value, 3), round(b.always_valid_p_value, 4), b.recommendation
    (0.16, 0.0123, <Recommendation.SHIP: 'ship'>)
    >>> s.decision
    'ship b'
    """
    owner = "summarize_experiment"
    check_probability(owner, "alpha", alpha)
    check_choice(owner, "correction", correction, METHODS)
    if control not in variants:
        fail(owner, "control", f"one of the variants {sorted(variants)}", control)
    if len(variants) < 2:
        fail(owner, "variants", "at least 2 (a control and a treatment)", sorted(variants))
    kinds = {type(s) for s in variants.values()}
    if kinds not in ({ProportionStats}, {MeanStats}):
        fail(
            owner,
            "variants",
            "all ProportionStats or all MeanStats",
            sorted(k.__name__ for k in kinds),
        )
    if min_effect is not None:
        min_effect = check_positive(owner, "min_effect", min_effect)
    if planned_n is not None:
        planned_n = check_count(owner, "planned_n", planned_n, minimum=1)
    level = 1.0 - alpha
    is_rate = kinds == {ProportionStats}
    srm = sample_ratio_mismatch(
        {name: s.n for name, s in variants.items()}, weights, threshold=srm_threshold
    )
    # "Best" is the highest value; for lower-is-better metrics rank the mirrored metric
    # (failures instead of successes, negated sums), which has the same posterior shape.
    if is_rate:
        rates = {
            k: v if higher_is_better else ProportionStats(v.n, v.n - v.successes)
            for k, v in variants.items()
            if isinstance(v, ProportionStats)
        }
        prob_best = prob_best_beta(rates, draws=draws, seed=seed)
    else:
        means = {
            k: v if higher_is_better else -v
            for k, v in variants.items()
            if isinstance(v, MeanStats)
        }
        prob_best = prob_best_normal(means, draws=draws, seed=seed)

    ctrl = variants[control]
    treatments = [name for name in variants if name != control]
    previous = previous_p_values or {}
    parts = {}
    for name in treatments:
        s = variants[name]
        if isinstance(ctrl, ProportionStats) and isinstance(s, ProportionStats):
            diff = difference_ci_newcombe(ctrl, s, level)
            lift = relative_lift_ci_katz(ctrl, s, level)
            p = two_proportion_ztest(ctrl, s).p_value
            bayes = beta_binomial_comparison(ctrl, s)
        elif isinstance(ctrl, MeanStats) and isinstance(s, MeanStats):
            diff = mean_difference_ci_welch(ctrl, s, level)
            lift = relative_lift_ci_delta(ctrl, s, level)
            p = welch_ttest(ctrl, s).p_value
            bayes = gaussian_comparison(ctrl, s)
        av = min(msprt_p_value(ctrl, s, tau=tau), previous.get(name, 1.0))
        parts[name] = (diff, lift, p, av, bayes)
    adjusted = adjust_p_values([parts[n][3] for n in treatments], method=correction, alpha=alpha)

    rows = []
    for name in variants:
        s = variants[name]
        est = rate_ci_wilson(s, level) if isinstance(s, ProportionStats) else mean_ci_t(s, level)
        if name == control:
            rows.append(
                VariantSummary(
                    name,
                    s.n,
                    est,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    prob_best[name],
                    Recommendation.CONTROL,
                )
            )
            continue
        diff, lift, p, av, bayes = parts[name]
        p_adj = adjusted.p_adjusted[treatments.index(name)]
        reached = planned_n is not None and min(ctrl.n, s.n) >= planned_n
        rec = _decide(
            srm=srm.mismatch,
            p_adj=p_adj,
            diff=diff,
            alpha=alpha,
            higher_is_better=higher_is_better,
            min_effect=min_effect,
            reached_plan=reached,
        )
        prob_beats = bayes.prob_treatment_better
        loss = bayes.expected_loss_treatment
        if not higher_is_better:
            prob_beats, loss = 1.0 - prob_beats, bayes.expected_loss_control
        rows.append(
            VariantSummary(
                name, s.n, est, diff, lift, p, av, p_adj, prob_beats, loss, prob_best[name], rec
            )
        )
    best = {r.name: r.prob_best for r in rows}
    return ExperimentSummary(
        metric="proportion" if is_rate else "mean",
        control=control,
        alpha=alpha,
        correction=correction,
        variants=tuple(rows),
        srm=srm,
        decision=_overall([r for r in rows if r.name != control], best),
    )
