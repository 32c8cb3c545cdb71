"""Welch t-test and mean intervals against SciPy on the same seeded data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from vigil.stats import (
    MeanStats,
    mean_ci_t,
    mean_difference_ci_welch,
    relative_lift_ci_delta,
    welch_ttest,
    welch_ttest_samples,
)


@pytest.fixture(scope="module")
def samples() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return rng.gamma(2.0, 5.0, 700), rng.gamma(2.1, 5.0, 450)


@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller"])
def test_welch_matches_scipy(samples: tuple[np.ndarray, np.ndarray], alternative: str) -> None:
    c, t = samples
    ours = welch_ttest_samples(c, t, alternative=alternative)
    alt = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}[alternative]
    ref = sps.ttest_ind(t, c, equal_var=False, alternative=alt)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert ours.df == pytest.approx(ref.df, rel=1e-9)


def test_welch_from_moments_matches_scipy_from_stats() -> None:
    c = MeanStats.from_moments(400, 10.0, 9.0)
    t = MeanStats.from_moments(380, 10.6, 12.0)
    ref = sps.ttest_ind_from_stats(10.6, math.sqrt(12.0), 380, 10.0, 3.0, 400, equal_var=False)
    r = welch_ttest(c, t)
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_welch_merged_shards_equal_whole(samples: tuple[np.ndarray, np.ndarray]) -> None:
    c, t = samples
    merged = MeanStats.from_values(c[:300]) + MeanStats.from_values(c[300:])
    assert merged.n == 700
    assert merged.mean == pytest.approx(c.mean(), rel=1e-12)
    assert merged.variance == pytest.approx(c.var(ddof=1), rel=1e-9)
    assert welch_ttest(merged, MeanStats.from_values(t)).p_value == pytest.approx(
        welch_ttest_samples(c, t).p_value, rel=1e-9
    )


def test_intervals_match_scipy(samples: tuple[np.ndarray, np.ndarray]) -> None:
    c, t = samples
    sc, st = MeanStats.from_values(c), MeanStats.from_values(t)
    e = mean_ci_t(st, 0.9)
    low, high = sps.t.interval(0.9, t.size - 1, loc=t.mean(), scale=sps.sem(t))
    assert (e.low, e.high) == pytest.approx((low, high), rel=1e-9)

    ref = sps.ttest_ind(t, c, equal_var=False).confidence_interval(0.95)
    d = mean_difference_ci_welch(sc, st)
    assert (d.low, d.high) == pytest.approx((ref.low, ref.high), rel=1e-8)
    assert d.method == "welch-satterthwaite"


def test_delta_method_relative_lift_coverage() -> None:
    # Seeded coverage of the delta-method interval: true lift 0.05 on exponential data.
    rng = np.random.default_rng(5)
    hits = 0
    runs = 1000
    for _ in range(runs):
        c = MeanStats.from_values(rng.exponential(10.0, 400))
        t = MeanStats.from_values(rng.exponential(10.5, 400))
        e = relative_lift_ci_delta(c, t)
        hits += e.low <= 0.05 <= e.high
    assert 0.93 <= hits / runs <= 0.97


def test_degenerate_means_are_nan() -> None:
    r = welch_ttest(MeanStats.from_values([1.0]), MeanStats.from_values([2.0, 3.0]))
    assert math.isnan(r.p_value)
    assert math.isnan(relative_lift_ci_delta(MeanStats(5, 0.0, 1.0), MeanStats(5, 1.0, 1.0)).value)
    assert math.isnan(mean_ci_t(MeanStats.from_values([4.0])).low)


def test_large_means_keep_their_variance() -> None:
    # As raw sums, 1e9 + N(0, 1) came out with variance 0.0, so a 0.5 sd shift at
    # n = 1,000 read "keep collecting" while the same shift at mean 0 gave p = 2.5e-26.
    rng = np.random.default_rng(0)
    noise_a, noise_b = rng.normal(0, 1, 1000), rng.normal(0.5, 1, 1000)
    for offset in (0.0, 1e9):
        a, b = MeanStats.from_values(offset + noise_a), MeanStats.from_values(offset + noise_b)
        assert a.variance == pytest.approx(np.var(offset + noise_a, ddof=1), rel=1e-6)
        expected = sps.ttest_ind(offset + noise_b, offset + noise_a, equal_var=False)
        result = welch_ttest(a, b)
        assert result.p_value == pytest.approx(expected.pvalue, rel=1e-4)
        assert result.p_value < 1e-20


def test_merging_is_exact_in_any_order() -> None:
    rng = np.random.default_rng(1)
    parts = [1e9 + rng.normal(0, 1, n) for n in (1, 7, 300, 2)]
    merged = MeanStats.empty()
    for part in reversed(parts):
        merged = merged + MeanStats.from_values(part)
    whole = np.concatenate(parts)
    assert merged.n == whole.size
    assert merged.mean == pytest.approx(whole.mean(), rel=1e-15)
    assert merged.variance == pytest.approx(np.var(whole, ddof=1), rel=1e-6)
    assert (-merged).mean == -merged.mean and (-merged).variance == merged.variance
