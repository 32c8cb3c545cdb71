"""Binned distances and quantile bins, checked against SciPy / direct formulas."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from vigil.drift._column import NumericColumn
from vigil.drift.binning import bin_counts, quantile_edges
from vigil.drift.distances import (
    PSEUDO_COUNT,
    hellinger,
    js_distance,
    kl_divergence,
    psi,
    total_variation,
)

RNG = np.random.default_rng(21)
CASES = [
    (RNG.integers(1, 100, 10), RNG.integers(1, 100, 10)),
    (np.array([5, 0, 3, 2]), np.array([0, 4, 3, 3])),
    (np.array([10, 0]), np.array([10, 0])),
]


@pytest.mark.parametrize(("ref", "cur"), CASES)
def test_js_distance_matches_scipy(ref: np.ndarray, cur: np.ndarray) -> None:
    assert js_distance(ref, cur) == pytest.approx(jensenshannon(ref, cur, base=2), abs=1e-12)


@pytest.mark.parametrize(("ref", "cur"), CASES)
def test_psi_kl_follow_their_formulas_with_smoothing(ref: np.ndarray, cur: np.ndarray) -> None:
    r, c = ref / ref.sum(), cur / cur.sum()
    # An empty bin holds half an observation of its side.
    r = np.where(r > 0, r, PSEUDO_COUNT / ref.sum())
    c = np.where(c > 0, c, PSEUDO_COUNT / cur.sum())
    assert psi(ref, cur) == pytest.approx(np.sum((c - r) * np.log(c / r)), rel=1e-12)
    assert psi(ref, cur) == pytest.approx(psi(cur, ref), rel=1e-12)  # symmetric
    assert kl_divergence(ref, cur) == pytest.approx(special.rel_entr(c, r).sum(), rel=1e-12)


def test_kl_without_empty_bins_matches_scipy_entropy() -> None:
    ref, cur = CASES[0]
    assert kl_divergence(ref, cur) == pytest.approx(stats.entropy(cur, ref), rel=1e-12)


@pytest.mark.parametrize(("ref", "cur"), CASES)
def test_hellinger_and_tvd(ref: np.ndarray, cur: np.ndarray) -> None:
    r, c = ref / ref.sum(), cur / cur.sum()
    expected_h = np.sqrt(0.5 * np.sum((np.sqrt(r) - np.sqrt(c)) ** 2))
    assert hellinger(ref, cur) == pytest.approx(expected_h, abs=1e-7)
    assert total_variation(ref, cur) == pytest.approx(0.5 * np.abs(r - c).sum(), rel=1e-12)


def test_identical_distributions_are_zero() -> None:
    counts = np.array([3, 5, 7])
    assert psi(counts, counts * 2) == pytest.approx(0.0, abs=1e-15)
    assert js_distance(counts, counts * 2) == 0.0
    assert hellinger(counts, counts) == pytest.approx(0.0, abs=1e-7)


def test_mismatched_bins_raise() -> None:
    with pytest.raises(ValueError, match="same edges"):
        psi([1, 2], [1, 2, 3])


def test_quantile_edges_match_numpy_and_counts_match_manual_binning() -> None:
    rng = np.random.default_rng(8)
    ref = rng.gamma(2.0, 1.0, 5000)
    cur = np.concatenate([rng.gamma(2.5, 1.0, 3000), [np.nan] * 7, [-1.0, 100.0]])
    col = NumericColumn.from_values(ref)
    edges = quantile_edges(col, 10)
    np.testing.assert_array_equal(edges, np.quantile(ref, np.linspace(0, 1, 11)))
    counts = bin_counts(edges, NumericColumn.from_values(cur))
    finite = cur[~np.isnan(cur)]
    manual = np.bincount(np.searchsorted(edges[1:-1], finite, side="right"), minlength=10)
    np.testing.assert_array_equal(counts[:-1], manual)
    assert counts[-1] == 7
    # reference itself: the maximum sits in the last bin, deciles hold ~10% each
    ref_counts = bin_counts(edges, col)
    assert ref_counts.sum() == 5000 and ref_counts[-1] == 0
    assert np.all(np.abs(ref_counts[:-1] - 500) <= 1)


def test_constant_reference_has_one_bin() -> None:
    col = NumericColumn.from_values([2.0] * 50)
    edges = quantile_edges(col, 10)
    assert edges.tolist() == [2.0]
    assert bin_counts(edges, NumericColumn.from_values([1.0, 2.0, np.nan])).tolist() == [2, 1]
