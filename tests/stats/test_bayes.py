"""Bayesian comparisons: closed forms cross-checked with seeded Monte Carlo and SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from vigil.stats import (
    MeanStats,
    ProportionStats,
    beta_binomial_comparison,
    expected_loss_beta,
    gaussian_comparison,
    prob_best_beta,
    prob_best_normal,
    prob_beta_greater,
    prob_beta_greater_mc,
)

PARAMS = [
    (51, 951, 73, 929),
    (3, 8, 5, 4),
    (1.5, 2.5, 4, 3.5),
    (2.5, 3.0, 1.5, 9.0),
    (401, 9601, 380, 9622),
]


@pytest.mark.parametrize("params", PARAMS)
def test_prob_beta_greater_matches_quadrature_and_mc(params: tuple[float, ...]) -> None:
    a_a, b_a, a_b, b_b = params
    exact = prob_beta_greater(a_a, b_a, a_b, b_b)
    quad, _ = integrate.quad(
        lambda x: sps.beta.pdf(x, a_a, b_a) * sps.beta.sf(x, a_b, b_b),
        0,
        1,
        limit=200,
        epsabs=1e-12,
    )
    assert exact == pytest.approx(quad, abs=1e-7)
    mc = prob_beta_greater_mc(a_a, b_a, a_b, b_b, draws=200_000, seed=2)
    assert exact == pytest.approx(mc, abs=4 * math.sqrt(0.25 / 200_000))


@pytest.mark.parametrize("params", PARAMS)
def test_expected_loss_matches_mc(params: tuple[float, ...]) -> None:
    a_a, b_a, a_b, b_b = params
    rng = np.random.default_rng(9)
    a = rng.beta(a_a, b_a, 400_000)
    b = rng.beta(a_b, b_b, 400_000)
    diff = np.maximum(a - b, 0)
    mc, se = diff.mean(), diff.std() / math.sqrt(diff.size)
    assert expected_loss_beta(a_a, b_a, a_b, b_b) == pytest.approx(mc, abs=4 * se + 1e-9)


def test_huge_non_integer_counts_use_quadrature() -> None:
    # Neither alpha is whole, so no Miller sum: compare with the exact sum half a unit away.
    approx = prob_beta_greater(2.5e6 + 0.5, 4.75e7 + 0.5, 2.505e6 + 0.5, 4.7495e7 + 0.5)
    exact = prob_beta_greater(2.5e6, 4.75e7, 2.505e6, 4.7495e7)
    assert approx == pytest.approx(exact, abs=2e-3)
    assert 0.9 < exact < 0.99


def test_comparison_is_consistent() -> None:
    c, t = ProportionStats(1000, 50), ProportionStats(1000, 72)
    r = beta_binomial_comparison(c, t)
    assert r.prob_treatment_better == pytest.approx(prob_beta_greater(51, 951, 73, 929))
    swapped = beta_binomial_comparison(t, c)
    assert swapped.prob_treatment_better == pytest.approx(1 - r.prob_treatment_better, abs=1e-12)
    assert swapped.expected_loss_treatment == pytest.approx(r.expected_loss_control)
    # E[max(T-C,0)] - E[max(C-T,0)] = E[T - C]
    assert r.expected_loss_control - r.expected_loss_treatment == pytest.approx(
        73 / 1002 - 51 / 1002
    )


def test_prob_best_beta_matches_two_arm_closed_form_and_sums_to_one() -> None:
    c, t = ProportionStats(1000, 50), ProportionStats(1000, 72)
    p = prob_best_beta({"c": c, "t": t}, draws=200_000, seed=4)
    assert p["t"] == pytest.approx(prob_beta_greater(51, 951, 73, 929), abs=0.003)
    three = prob_best_beta({"a": c, "b": t, "c": ProportionStats(1000, 60)}, seed=4)
    assert sum(three.values()) == pytest.approx(1.0)
    assert max(three, key=three.__getitem__) == "b"
    assert three == prob_best_beta({"a": c, "b": t, "c": ProportionStats(1000, 60)}, seed=4)


def test_gaussian_comparison_closed_form_against_mc() -> None:
    c = MeanStats.from_moments(400, 10.0, 9.0)
    t = MeanStats.from_moments(380, 10.6, 12.0)
    r = gaussian_comparison(c, t)
    rng = np.random.default_rng(8)
    mc_c = rng.normal(10.0, math.sqrt(9.0 / 400), 400_000)
    mc_t = rng.normal(10.6, math.sqrt(12.0 / 380), 400_000)
    assert r.prob_treatment_better == pytest.approx(np.mean(mc_t > mc_c), abs=1e-3)
    assert r.expected_loss_treatment == pytest.approx(np.mean(np.maximum(mc_c - mc_t, 0)), abs=5e-5)
    assert r.expected_loss_control == pytest.approx(np.mean(np.maximum(mc_t - mc_c, 0)), abs=2e-3)
    p = prob_best_normal({"c": c, "t": t}, draws=200_000, seed=3)
    assert p["t"] == pytest.approx(r.prob_treatment_better, abs=0.003)


def test_gaussian_without_data_is_nan() -> None:
    r = gaussian_comparison(MeanStats.from_values([1.0]), MeanStats.from_values([1.0, 2.0]))
    assert math.isnan(r.prob_treatment_better)
    p = prob_best_normal({"a": MeanStats(0, 0.0, 0.0), "b": MeanStats.from_values([1.0, 2.0])})
    assert math.isnan(p["a"]) and p["b"] == 1.0
