"""Two-rate tests and intervals against statsmodels on the same counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from vigil.errors import InvalidParameterError
from vigil.stats import (
    ProportionStats,
    difference_ci_newcombe,
    rate_ci_wilson,
    relative_lift_ci_katz,
    two_proportion_ztest,
)

CASES = [(1000, 50, 1000, 72), (20_000, 1_000, 19_500, 1_090), (130, 9, 150, 4), (80, 40, 95, 61)]


@pytest.mark.parametrize(("n_c", "x_c", "n_t", "x_t"), CASES)
@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller"])
def test_ztest_matches_statsmodels(
    n_c: int, x_c: int, n_t: int, x_t: int, alternative: str
) -> None:
    ours = two_proportion_ztest(
        ProportionStats(n_c, x_c), ProportionStats(n_t, x_t), alternative=alternative
    )
    z, p = proportions_ztest([x_t, x_c], [n_t, n_c], alternative=alternative)
    assert ours.statistic == pytest.approx(z, rel=1e-12)
    assert ours.p_value == pytest.approx(p, rel=1e-10)


def test_ztest_without_variance_is_nan() -> None:
    r = two_proportion_ztest(ProportionStats(100, 0), ProportionStats(100, 0))
    assert math.isnan(r.statistic) and math.isnan(r.p_value)
    assert r.to_dict()["p_value"] is None


@pytest.mark.parametrize(("n_c", "x_c", "n_t", "x_t"), CASES)
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_intervals_match_statsmodels(n_c: int, x_c: int, n_t: int, x_t: int, level: float) -> None:
    c, t = ProportionStats(n_c, x_c), ProportionStats(n_t, x_t)
    alpha = 1 - level
    low, high = proportion_confint(x_t, n_t, alpha=alpha, method="wilson")
    w = rate_ci_wilson(t, level)
    assert (w.low, w.high) == pytest.approx((low, high), rel=1e-10)

    low, high = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb", alpha=alpha)
    d = difference_ci_newcombe(c, t, level)
    assert d.value == pytest.approx(x_t / n_t - x_c / n_c)
    assert (d.low, d.high) == pytest.approx((low, high), rel=1e-10)
    assert d.low < d.value < d.high

    low, high = confint_proportions_2indep(
        x_t, n_t, x_c, n_c, method="log", compare="ratio", alpha=alpha
    )
    r = relative_lift_ci_katz(c, t, level)
    assert (r.low + 1, r.high + 1) == pytest.approx((low, high), rel=1e-10)
    assert r.method == "katz-log"


def test_relative_lift_undefined_without_successes() -> None:
    r = relative_lift_ci_katz(ProportionStats(100, 0), ProportionStats(100, 3))
    assert math.isnan(r.value) and math.isnan(r.low)


def test_newcombe_coverage_is_near_nominal_on_small_rates() -> None:
    # Seeded coverage check: 2,000 experiments at p = 1% vs 1.5%, n = 500 each.
    rng = np.random.default_rng(3)
    x_c = rng.binomial(500, 0.01, 2000)
    x_t = rng.binomial(500, 0.015, 2000)
    covered = [
        (lambda e: e.low <= 0.005 <= e.high)(
            difference_ci_newcombe(ProportionStats(500, int(a)), ProportionStats(500, int(b)))
        )
        for a, b in zip(x_c, x_t, strict=True)
    ]
    assert 0.93 <= np.mean(covered) <= 0.975


def test_invalid_inputs_rejected() -> None:
    with pytest.raises(InvalidParameterError, match="successes must be in"):
        ProportionStats(10, 11)
    with pytest.raises(InvalidParameterError, match="alternative must be one of"):
        two_proportion_ztest(ProportionStats(10, 1), ProportionStats(10, 2), alternative="up")
    with pytest.raises(ValueError, match="level must be in"):
        rate_ci_wilson(ProportionStats(10, 1), level=95)


def test_merge_adds_counts_and_to_dict() -> None:
    s = ProportionStats(10, 3) + ProportionStats.from_outcomes([1, 0, 0, 1])
    assert s == ProportionStats(14, 5)
    assert s.to_dict() == {"n": 14, "successes": 5.0}
