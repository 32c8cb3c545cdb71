"""Off-policy evaluation: what another routing policy would have earned, from the log of
the one that ran.

A bandit endpoint logs, for every routed request, the arm it chose, the probability the
policy gave that arm (its *propensity*) and, once feedback arrives, the reward. Reweighting
each logged reward by ``target probability / logged propensity`` gives an unbiased estimate
of a different policy's mean reward (for instance "always the challenger", or a greedier
epsilon), as long as the logging policy gave every arm the target uses a non-zero chance.

- :func:`ips_estimate`: inverse propensity scoring, unbiased; its variance grows with the
  weights.
- :func:`snips_estimate`: self-normalised IPS: divides by the sum of weights instead of
  ``n``; slightly biased, far steadier when weights are large.
- :func:`doubly_robust_estimate`: a reward model's prediction for the target policy plus
  the IPS-weighted residuals of the logged rewards: unbiased when either the propensities
  or the reward model are right, and with lower variance than IPS when the model is good.

Every estimate comes with a normal-approximation confidence interval from the per-request
terms (the delta method for SNIPS), and with the effective sample size of the weights,
``(sum w)**2 / sum w**2``, which says how many logged requests the estimate really rests
on.

References
----------
Horvitz, D. G. and Thompson, D. J. (1952). A generalization of sampling without
replacement from a finite universe. *JASA* 47, 663-685.
Swaminathan, A. and Joachims, T. (2015). The self-normalized estimator for counterfactual
learning. *NeurIPS*.
Dudík, M., Langford, J. and Li, L. (2011). Doubly robust policy evaluation and learning.
*ICML*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from vigil.params import check_probability, fail
from vigil.stats.results import _Record

__all__ = [
    "OffPolicyEstimate",
    "doubly_robust_estimate",
    "ips_estimate",
    "snips_estimate",
]


@dataclass(frozen=True)
class OffPolicyEstimate(_Record):
    """The estimated mean reward of the target policy, its interval, and the effective
    number of logged requests behind it."""

    value: float
    low: float
    high: float
    level: float
    method: str
    n: int
    effective_n: float


def _arrays(owner: str, **named: Any) -> dict[str, np.ndarray]:
    out = {k: np.asarray(v, dtype=float) for k, v in named.items()}
    n = len(next(iter(out.values())))
    for name, a in out.items():
        if a.ndim != 1 or len(a) != n:
            fail(owner, name, "one-dimensional, one value per logged request", a.shape)
        if not np.isfinite(a).all():
            fail(owner, name, "finite", "NaN or infinity")
    if n < 2:
        fail(owner, "the log", "at least 2 requests", n)
    propensity = out["logged_propensity"]
    if (propensity <= 0).any() or (propensity > 1).any():
        fail(owner, "logged_propensity", "in (0, 1] (the chance the logged arm had)", "outside")
    target = out["target_probability"]
    if (target < 0).any() or (target > 1).any():
        fail(owner, "target_probability", "in [0, 1]", "outside")
    return out


def _logged(
    owner: str, level: float, rewards: Any, logged: Any, target: Any, **more: Any
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The checked arrays of a log and the importance weights ``target / logged``."""
    check_probability(owner, "level", level)
    a = _arrays(owner, rewards=rewards, logged_propensity=logged, target_probability=target, **more)
    return a, a["target_probability"] / a["logged_propensity"]


def _normal(
    terms: np.ndarray, value: float, level: float, method: str, weights: np.ndarray
) -> OffPolicyEstimate:
    n = len(terms)
    se = float(np.std(terms, ddof=1)) / math.sqrt(n)
    z = float(sps.norm.ppf(0.5 + level / 2))
    effective_n = float(weights.sum() ** 2 / (weights**2).sum()) if weights.any() else 0.0
    return OffPolicyEstimate(value, value - z * se, value + z * se, level, method, n, effective_n)


def ips_estimate(
    rewards: Any, logged_propensity: Any, target_probability: Any, *, level: float = 0.95
) -> OffPolicyEstimate:
    """Inverse propensity scoring: ``mean(w * reward)`` with ``w = target / logged``.

    ``logged_propensity[i]`` is the probability the logging policy gave the arm it chose
    for request ``i``; ``target_probability[i]`` the probability the evaluated policy
    gives that same arm.

    >>> rng = np.random.default_rng(0)
    >>> arm = rng.integers(0, 2, 20_000)             # logged: a fair coin between two arms
    >>> reward = rng.random(20_000) < np.where(arm == 1, 0.3, 0.1)
    >>> e = ips_estimate(reward, np.full(20_000, 0.5), (arm == 1).astype(float))
    >>> round(e.value, 3), round(e.low, 3), round(e.high, 3), round(e.effective_n)
    (0.297, 0.287, 0.307, 10017)
    """
    owner = "ips_estimate"
    a, w = _logged(owner, level, rewards, logged_propensity, target_probability)
    terms = w * a["rewards"]
    return _normal(terms, float(terms.mean()), level, "ips", w)


def snips_estimate(
    rewards: Any, logged_propensity: Any, target_probability: Any, *, level: float = 0.95
) -> OffPolicyEstimate:
    """Self-normalised IPS: ``sum(w * reward) / sum(w)``, with a delta-method interval.

    >>> rng = np.random.default_rng(0)
    >>> arm = rng.integers(0, 2, 20_000)
    >>> reward = rng.random(20_000) < np.where(arm == 1, 0.3, 0.1)
    >>> e = snips_estimate(reward, np.full(20_000, 0.5), (arm == 1).astype(float))
    >>> round(e.value, 3), round(e.low, 3), round(e.high, 3)
    (0.297, 0.288, 0.306)
    """
    owner = "snips_estimate"
    a, w = _logged(owner, level, rewards, logged_propensity, target_probability)
    if w.sum() <= 0:
        fail(owner, "target_probability", "positive for some logged arm", "all zero")
    value = float((w * a["rewards"]).sum() / w.sum())
    # The ratio estimator's influence terms: w (r - value) / mean(w).
    terms = w * (a["rewards"] - value) / w.mean()
    return _normal(terms, value, level, "snips", w)


def doubly_robust_estimate(
    rewards: Any,
    logged_propensity: Any,
    target_probability: Any,
    predicted_logged: Any,
    predicted_target: Any,
    *,
    level: float = 0.95,
) -> OffPolicyEstimate:
    """Doubly robust: ``mean(predicted_target + w * (reward - predicted_logged))``.

    ``predicted_logged[i]`` is a reward model's prediction for request ``i`` and the arm
    it was given; ``predicted_target[i]`` the model's expected reward under the target
    policy for that request (the sum over arms of ``target probability * prediction``).
    Without contexts, a reward model is simply each arm's mean reward.

    >>> rng = np.random.default_rng(0)
    >>> arm = rng.integers(0, 2, 20_000)
    >>> reward = rng.random(20_000) < np.where(arm == 1, 0.3, 0.1)
    >>> model = np.where(arm == 1, 0.28, 0.12)        # a slightly wrong reward model
    >>> e = doubly_robust_estimate(
    ...     reward, np.full(20_000, 0.5), (arm == 1).astype(float), model, np.full(20_000, 0.28)
    ... )
    >>> round(e.value, 3), round(e.low, 3), round(e.high, 3)
    (0.297, 0.288, 0.306)
    """
    a, w = _logged(
        "doubly_robust_estimate",
        level,
        rewards,
        logged_propensity,
        target_probability,
        predicted_logged=predicted_logged,
        predicted_target=predicted_target,
    )
    terms = a["predicted_target"] + w * (a["rewards"] - a["predicted_logged"])
    return _normal(terms, float(terms.mean()), level, "doubly-robust", w)
