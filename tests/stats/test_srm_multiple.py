"""Sample-ratio mismatch against scipy.stats.chisquare; corrections against statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from vigil.errors import InvalidParameterError
from vigil.stats import adjust_p_values, sample_ratio_mismatch
from vigil.stats.multiple_testing import benjamini_hochberg


@pytest.mark.parametrize(
    ("observed", "weights"),
    [
        ({"a": 50_800, "b": 49_200}, None),
        ({"a": 9_040, "b": 960}, {"a": 0.9, "b": 0.1}),
        ({"a": 3_310, "b": 3_390, "c": 3_300}, {"a": 1, "b": 1, "c": 1}),
        ({"a": 700, "b": 200, "c": 100}, {"a": 7, "b": 2, "c": 1}),
    ],
)
def test_srm_matches_chisquare(observed: dict[str, int], weights: dict[str, float] | None) -> None:
    r = sample_ratio_mismatch(observed, weights)
    f = np.array(list(observed.values()), float)
    w = np.ones(f.size) if weights is None else np.array([weights[k] for k in observed], float)
    ref = sps.chisquare(f, f.sum() * w / w.sum())
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert r.mismatch == (ref.pvalue < 0.001)


def test_srm_flags_and_edge_cases() -> None:
    assert sample_ratio_mismatch({"a": 50_800, "b": 49_200}).mismatch
    assert not sample_ratio_mismatch({"a": 50_100, "b": 49_900}).mismatch
    empty = sample_ratio_mismatch({"a": 0, "b": 0})
    assert (empty.p_value, empty.mismatch) == (1.0, False)
    with pytest.raises(InvalidParameterError, match="weights must be given for exactly"):
        sample_ratio_mismatch({"a": 1, "b": 2}, {"a": 1.0})
    with pytest.raises(InvalidParameterError, match="at least 2 variants"):
        sample_ratio_mismatch({"a": 1})


@pytest.mark.parametrize("method", ["bonferroni", "holm", "fdr_bh"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adjustments_match_multipletests(method: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 0.02, 3), rng.uniform(0, 1, 7)])
    p[4] = p[1]  # a tie
    ours = adjust_p_values(p, method=method, alpha=0.05)
    reject, adjusted, _, _ = multipletests(p, alpha=0.05, method=method)
    np.testing.assert_allclose(ours.p_adjusted, adjusted, rtol=1e-12)
    assert list(ours.reject) == reject.tolist()


def test_bh_matches_statsmodels() -> None:
    """The one Benjamini–Hochberg (drift reports use it too), ties and 1.0 included."""
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.uniform(0, 1, 30), rng.uniform(0, 0.01, 10), [0.05, 0.05, 1.0]])
    np.testing.assert_allclose(
        benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12
    )
    assert benjamini_hochberg([]).size == 0


def test_nan_p_values_count_but_stay_nan() -> None:
    r = adjust_p_values([0.01, math.nan, 0.02], method="bonferroni")
    assert r.p_adjusted[0] == pytest.approx(0.03)
    assert math.isnan(r.p_adjusted[1]) and r.reject == (True, False, False)
    with pytest.raises(InvalidParameterError, match="method must be one of"):
        adjust_p_values([0.1], method="sidak")
