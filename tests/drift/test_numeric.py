"""Numeric drift statistics checked against SciPy on seeded data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from vigil.drift._column import NumericColumn
from vigil.drift.numeric import (
    cramer_von_mises,
    ks_2samp,
    ks_statistic_sorted,
    wasserstein,
    wasserstein_normalised,
)


@pytest.mark.parametrize(
    ("n1", "n2", "shift"),
    [
        (50, 80, 0.0),
        (500, 300, 0.4),
        (3000, 2000, 0.1),
        (12_000, 15_000, 0.03),
        (20_000, 11_000, 0.0),
    ],
)
def test_ks_matches_scipy_auto(n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(n1 + n2)
    a, b = rng.normal(0, 1, n1), rng.normal(shift, 1, n2)
    ours = ks_2samp(a, b)
    theirs = stats.ks_2samp(a, b, method="auto")
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-15)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)


def test_ks_large_path_with_ties_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    a = np.round(rng.normal(0, 1, 30_000), 1)  # heavy ties
    b = np.round(rng.normal(0.02, 1, 25_000), 1)
    ours = ks_2samp(a, b)
    theirs = stats.ks_2samp(a, b)
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-15)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)
    assert ks_statistic_sorted(NumericColumn.from_values(a), NumericColumn.from_values(b)) == (
        pytest.approx(theirs.statistic, abs=1e-15)
    )


def test_ks_drops_missing_and_infinite() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 200), rng.normal(0.5, 1, 150)
    dirty = np.concatenate([b, [np.nan, np.inf, -np.inf]])
    ours = ks_2samp(a, dirty)
    theirs = stats.ks_2samp(a, b)
    assert (ours.statistic, ours.p_value) == pytest.approx((theirs.statistic, theirs.pvalue))


@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (1, 40), (300, 700), (40_000, 25_000)])
def test_wasserstein_matches_scipy(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 * 7 + n2)
    a, b = rng.exponential(2.0, n1), rng.normal(1.0, 3.0, n2)
    b[: n2 // 3] = np.round(b[: n2 // 3])
    assert wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)


def test_wasserstein_normalised_divides_by_reference_std() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(10, 4, 5000), rng.normal(11, 4, 5000)
    expected = stats.wasserstein_distance(a, b) / np.std(a, ddof=1)
    assert wasserstein_normalised(a, b) == pytest.approx(expected, rel=1e-12)
    assert wasserstein_normalised(a, b) == pytest.approx(0.25, abs=0.03)


def test_wasserstein_normalised_constant_reference_uses_raw_units() -> None:
    assert wasserstein_normalised([3.0] * 10, [5.0] * 4) == pytest.approx(2.0)
    assert wasserstein_normalised([3.0], [3.0, 3.0]) == 0.0


def test_cramer_von_mises_matches_scipy() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.normal(0, 1, 400), rng.normal(0.3, 1, 300)
    ours = cramer_von_mises(a, b)
    theirs = stats.cramervonmises_2samp(a, b)
    assert (ours.statistic, ours.p_value) == pytest.approx((theirs.statistic, theirs.pvalue))


def test_ks_empty_side_raises_clear_error() -> None:
    with pytest.raises(ValueError, match="at least one finite value"):
        ks_2samp([np.nan, np.inf], [1.0, 2.0])


def test_constant_columns() -> None:
    res = ks_2samp([1.0] * 20, [1.0] * 30)
    assert (res.statistic, res.p_value) == (0.0, 1.0)
    res = ks_2samp([1.0] * 20, [2.0] * 30)
    theirs = stats.ks_2samp([1.0] * 20, [2.0] * 30)
    assert (res.statistic, res.p_value) == pytest.approx((1.0, theirs.pvalue))
