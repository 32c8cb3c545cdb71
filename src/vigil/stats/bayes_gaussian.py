"""Bayesian comparison of means with normal posteriors.

With a flat prior and enough observations for the central limit theorem, the posterior
of each variant's mean is ``Normal(sample mean, sample variance / n)``. That is the usual
large-sample model for revenue, reward or latency per request; with fewer than about 30
observations per variant the posterior is too narrow (a Student t would be wider) and
the numbers here are optimistic.

- :func:`gaussian_comparison`: closed-form ``P(treatment > control)`` and expected losses
  (``E[max(X, 0)] = μ Φ(μ/σ) + σ φ(μ/σ)`` for ``X ~ Normal(μ, σ²)``).
- :func:`prob_best_normal`: seeded Monte Carlo probability of being best among k variants.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import stats as sps

from vigil.params import check_count
from vigil.stats.bayes_binomial import BayesComparison
from vigil.stats.sufficient import MeanStats

__all__ = ["gaussian_comparison", "prob_best_normal"]


def _positive_part_mean(mu: float, sigma: float) -> float:
    """``E[max(X, 0)]`` for ``X ~ Normal(mu, sigma²)``."""
    return mu * float(sps.norm.cdf(mu / sigma)) + sigma * float(sps.norm.pdf(mu / sigma))


def gaussian_comparison(control: MeanStats, treatment: MeanStats) -> BayesComparison:
    """``P(mean_treatment > mean_control)`` and expected losses under normal posteriors.

    NaN below two observations per variant.

    >>> c = MeanStats.from_moments(400, 10.0, 9.0)
    >>> t = MeanStats.from_moments(380, 10.6, 12.0)
    >>> r = gaussian_comparison(c, t)
    >>> round(r.prob_treatment_better, 4), round(r.expected_loss_treatment, 5)
    (0.9951, 0.00036)
    """
    nan = BayesComparison(math.nan, math.nan, math.nan, "normal posterior")
    if control.n < 2 or treatment.n < 2:
        return nan
    diff = treatment.mean - control.mean
    sigma = math.sqrt(control.variance / control.n + treatment.variance / treatment.n)
    if sigma == 0:
        return nan
    return BayesComparison(
        prob_treatment_better=float(sps.norm.cdf(diff / sigma)),
        expected_loss_treatment=_positive_part_mean(-diff, sigma),
        expected_loss_control=_positive_part_mean(diff, sigma),
        method="normal posterior",
    )


def prob_best_normal(
    variants: Mapping[str, MeanStats], *, draws: int = 100_000, seed: int = 0
) -> dict[str, float]:
    """Monte Carlo probability that each variant has the highest mean.

    Variants with fewer than two observations get a probability of NaN and take no part.

    >>> p = prob_best_normal({"a": MeanStats.from_moments(400, 10.0, 9.0),
    ...                       "b": MeanStats.from_moments(380, 10.6, 12.0)}, seed=1)
    >>> {k: round(v, 3) for k, v in p.items()}
    {'a': 0.005, 'b': 0.995}
    """
    draws = check_count("prob_best_normal", "draws", draws, minimum=1)
    rng = np.random.default_rng(seed)
    ready = [name for name, s in variants.items() if s.n >= 2]
    out = {name: math.nan for name in variants}
    if not ready:
        return out
    samples = np.empty((draws, len(ready)))
    for j, name in enumerate(ready):
        s = variants[name]
        samples[:, j] = rng.normal(s.mean, math.sqrt(s.variance / s.n), draws)
    wins = np.bincount(samples.argmax(axis=1), minlength=len(ready)) / draws
    out.update({name: float(w) for name, w in zip(ready, wins, strict=True)})
    return out
