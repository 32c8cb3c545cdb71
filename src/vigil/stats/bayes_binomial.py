"""Bayesian comparison of conversion rates with Beta–Binomial posteriors.

Each variant's rate gets a ``Beta(prior_alpha, prior_beta)`` prior (``Beta(1, 1)``,
uniform, by default) and so a ``Beta(prior_alpha + successes, prior_beta + failures)``
posterior.

- :func:`prob_beta_greater` is exact: Evan Miller's closed form for ``P(B > A)`` (a finite
  sum of Beta functions, valid when one of the two ``alpha`` parameters is a whole number,
  which is always the case with whole-number priors). Otherwise, or past five million
  terms, it integrates ``∫ f_A(x) P(B > x) dx`` numerically (``scipy.integrate.quad``).
- :func:`expected_loss_beta` is exact as well: ``E[max(A - B, 0)]`` follows from the same
  sum applied to size-biased posteriors (``A⁺ ~ Beta(alpha_a + 1, beta_a)``).
- :func:`prob_best_beta` is Monte Carlo (``draws`` joint posterior draws, seeded) because
  the k-arm closed forms grow combinatorially; :func:`prob_beta_greater_mc` is the same
  sampler for two arms, kept to cross-check the closed form.

References
----------
Miller, E. (2015). Formulas for Bayesian A/B testing.
https://www.evanmiller.org/bayesian-ab-testing.html
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import integrate, special
from scipy import stats as sps

from vigil.params import check_count, check_positive
from vigil.stats.results import _Record
from vigil.stats.sufficient import ProportionStats

__all__ = [
    "BayesComparison",
    "beta_binomial_comparison",
    "expected_loss_beta",
    "prob_best_beta",
    "prob_beta_greater",
    "prob_beta_greater_mc",
]

_MAX_TERMS = 5_000_000


@dataclass(frozen=True)
class BayesComparison(_Record):
    """Posterior comparison of a treatment with its control.

    ``expected_loss_treatment`` is what we expect to give up (in metric units) if we ship
    the treatment and the control was in fact better; ``expected_loss_control`` the reverse.
    """

    prob_treatment_better: float
    expected_loss_treatment: float
    expected_loss_control: float
    method: str


def _miller_sum(a_a: float, b_a: float, a_b: int, b_b: float) -> float:
    """``P(B > A)`` for ``A ~ Beta(a_a, b_a)``, ``B ~ Beta(a_b, b_b)`` with whole ``a_b``."""
    i = np.arange(a_b, dtype=float)
    log_terms = (
        special.betaln(a_a + i, b_a + b_b)
        - np.log(b_b + i)
        - special.betaln(1.0 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(np.exp(special.logsumexp(log_terms)))


def _quadrature(a_a: float, b_a: float, a_b: float, b_b: float) -> float:
    """``P(B > A) = ∫ f_A(x) P(B > x) dx`` by adaptive quadrature over where the mass is."""
    means_sds = [sps.beta.stats(a, b, moments="mv") for a, b in ((a_a, b_a), (a_b, b_b))]
    centres = [float(m) for m, _ in means_sds]
    spread = 12.0 * max(math.sqrt(float(v)) for _, v in means_sds)
    lo, hi = max(min(centres) - spread, 0.0), min(max(centres) + spread, 1.0)
    value, _ = integrate.quad(
        lambda x: sps.beta.pdf(x, a_a, b_a) * sps.beta.sf(x, a_b, b_b),
        lo,
        hi,
        points=[c for c in centres if lo < c < hi],
        limit=200,
        epsabs=1e-12,
    )
    return float(value)


def prob_beta_greater(a_a: float, b_a: float, a_b: float, b_b: float) -> float:
    """Exact ``P(B > A)`` for independent ``A ~ Beta(a_a, b_a)`` and ``B ~ Beta(a_b, b_b)``.

    >>> round(prob_beta_greater(1 + 50, 1 + 950, 1 + 72, 1 + 928), 4)
    0.9799
    """
    for name, v in (("a_a", a_a), ("b_a", b_a), ("a_b", a_b), ("b_b", b_b)):
        check_positive("prob_beta_greater", name, v)
    b_whole = float(a_b).is_integer() and a_b <= _MAX_TERMS
    a_whole = float(a_a).is_integer() and a_a <= _MAX_TERMS
    # Sum over the smaller whole alpha; the other way round uses P(B > A) = 1 - P(A > B).
    if b_whole and (not a_whole or a_b <= a_a):
        return min(max(_miller_sum(a_a, b_a, int(a_b), b_b), 0.0), 1.0)
    if a_whole:
        return min(max(1.0 - _miller_sum(a_b, b_b, int(a_a), b_a), 0.0), 1.0)
    return min(max(_quadrature(a_a, b_a, a_b, b_b), 0.0), 1.0)


def expected_loss_beta(a_a: float, b_a: float, a_b: float, b_b: float) -> float:
    """Exact ``E[max(A - B, 0)]``: the expected loss of choosing ``B`` over ``A``.

    Uses ``E[A·1{A>B}] = E[A]·P(A⁺ > B)`` with ``A⁺ ~ Beta(a_a + 1, b_a)``.

    >>> round(expected_loss_beta(1 + 50, 1 + 950, 1 + 72, 1 + 928), 6)
    8e-05
    """
    mean_a = a_a / (a_a + b_a)
    mean_b = a_b / (a_b + b_b)
    p_a_plus_beats_b = 1.0 - prob_beta_greater(a_a + 1.0, b_a, a_b, b_b)
    p_a_beats_b_plus = 1.0 - prob_beta_greater(a_a, b_a, a_b + 1.0, b_b)
    return max(mean_a * p_a_plus_beats_b - mean_b * p_a_beats_b_plus, 0.0)


def _posterior(
    stats: ProportionStats, prior_alpha: float, prior_beta: float
) -> tuple[float, float]:
    return prior_alpha + stats.successes, prior_beta + stats.n - stats.successes


def beta_binomial_comparison(
    control: ProportionStats,
    treatment: ProportionStats,
    *,
    prior_alpha: float = 1.0,
    prior_beta: float = 1.0,
) -> BayesComparison:
    """Probability that the treatment's rate beats the control's, and both expected losses.

    >>> r = beta_binomial_comparison(ProportionStats(1000, 50), ProportionStats(1000, 72))
    >>> round(r.prob_treatment_better, 4), round(r.expected_loss_treatment, 6)
    (0.9799, 8e-05)
    """
    check_positive("beta_binomial_comparison", "prior_alpha", prior_alpha)
    check_positive("beta_binomial_comparison", "prior_beta", prior_beta)
    a_c, b_c = _posterior(control, prior_alpha, prior_beta)
    a_t, b_t = _posterior(treatment, prior_alpha, prior_beta)
    return BayesComparison(
        prob_treatment_better=prob_beta_greater(a_c, b_c, a_t, b_t),
        expected_loss_treatment=expected_loss_beta(a_c, b_c, a_t, b_t),
        expected_loss_control=expected_loss_beta(a_t, b_t, a_c, b_c),
        method="beta-binomial exact (Miller)",
    )


def prob_beta_greater_mc(
    a_a: float, b_a: float, a_b: float, b_b: float, *, draws: int = 200_000, seed: int = 0
) -> float:
    """Monte Carlo ``P(B > A)`` from ``draws`` seeded posterior draws (cross-check only)."""
    draws = check_count("prob_beta_greater_mc", "draws", draws, minimum=1)
    rng = np.random.default_rng(seed)
    return float(np.mean(rng.beta(a_b, b_b, draws) > rng.beta(a_a, b_a, draws)))


def prob_best_beta(
    variants: Mapping[str, ProportionStats],
    *,
    prior_alpha: float = 1.0,
    prior_beta: float = 1.0,
    draws: int = 100_000,
    seed: int = 0,
) -> dict[str, float]:
    """Monte Carlo probability that each variant has the highest rate.

    The Monte Carlo error of each probability is at most ``0.5 / sqrt(draws)`` (±0.0016 at
    the default 100,000 draws).

    >>> p = prob_best_beta({"a": ProportionStats(1000, 50), "b": ProportionStats(1000, 72),
    ...                     "c": ProportionStats(1000, 60)}, seed=1)
    >>> {k: round(v, 2) for k, v in p.items()}
    {'a': 0.01, 'b': 0.85, 'c': 0.14}
    """
    check_positive("prob_best_beta", "prior_alpha", prior_alpha)
    check_positive("prob_best_beta", "prior_beta", prior_beta)
    draws = check_count("prob_best_beta", "draws", draws, minimum=1)
    rng = np.random.default_rng(seed)
    names = list(variants)
    samples = np.empty((draws, len(names)))
    for j, name in enumerate(names):
        a, b = _posterior(variants[name], prior_alpha, prior_beta)
        samples[:, j] = rng.beta(a, b, draws)
    wins = np.bincount(samples.argmax(axis=1), minlength=len(names)) / draws
    return {name: float(w) for name, w in zip(names, wins, strict=True)}
