"""Categorical counting and chi-squared, checked against SciPy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vigil.drift._column import UNSEEN, count_categories
from vigil.drift.categorical import OTHER, chi_squared, count_against_profile
from vigil.profile_schema import CategoricalProfile


def test_counts_with_unseen_and_missing() -> None:
    ref = ["a", "b", "a", None, "c", "a"]
    cur = pd.Series(["a", "d", "e", "d", None, None, "b"])
    cc = count_categories(ref, cur)
    assert cc.labels == ["a", "b", "c", UNSEEN]
    assert cc.reference.tolist() == [3, 1, 1, 0]
    assert cc.current.tolist() == [1, 1, 0, 3]
    assert (cc.reference_missing, cc.current_missing) == (1, 2)
    assert cc.unseen_categories == ["d", "e"]


def test_pandas_categorical_and_numbers() -> None:
    ref = pd.Categorical(["x", "y", "y"], categories=["x", "y", "z"])
    cc = count_categories(ref, np.array(["y", "z", "w"], dtype=object))
    assert cc.labels == ["x", "y", "z", UNSEEN]
    assert cc.reference.tolist() == [1, 2, 0, 0]
    assert cc.current.tolist() == [0, 1, 1, 1]
    cc = count_categories(np.array([1, 2, 2]), np.array([2, 3]))
    assert cc.labels == ["1", "2", UNSEEN] and cc.current.tolist() == [0, 1, 1]


def test_chi_squared_matches_scipy_on_same_table() -> None:
    rng = np.random.default_rng(9)
    ref = rng.choice(list("abcd"), 800, p=[0.4, 0.3, 0.2, 0.1])
    cur = np.concatenate([rng.choice(list("abcd"), 500, p=[0.3, 0.3, 0.3, 0.1]), ["e"] * 12])
    r, c = count_categories(ref, cur).with_missing()
    table = np.vstack([r, c])
    table = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(table)
    res = chi_squared(r, c)
    assert (res.statistic, res.p_value) == pytest.approx((expected.statistic, expected.pvalue))
    assert res.p_value < 1e-3


def test_chi_squared_two_by_two_uses_scipy_default_correction() -> None:
    r, c = np.array([40, 60]), np.array([55, 45])
    expected = stats.chi2_contingency(np.vstack([r, c]))
    assert chi_squared(r, c).statistic == pytest.approx(expected.statistic)
    assert chi_squared(r, c).p_value == pytest.approx(expected.pvalue)


def test_chi_squared_degenerate_tables() -> None:
    assert chi_squared([10, 0], [5, 0]) == chi_squared([10], [5])
    assert chi_squared([10, 0], [5, 0]).p_value == 1.0
    assert chi_squared([3, 4], [0, 0]).p_value == 1.0


def test_counts_against_capped_profile_pool_into_other() -> None:
    prof = CategoricalProfile(
        count=100, missing=5, frequencies={"a": 60, "b": 30}, other_count=10, n_unique=6
    )
    cc = count_against_profile(prof, ["a", "q", "b", None])
    assert cc.labels == ["a", "b", OTHER, UNSEEN]
    assert cc.reference.tolist() == [60, 30, 10, 0]
    assert cc.current.tolist() == [1, 1, 1, 0]
    assert (cc.reference_missing, cc.current_missing) == (5, 1)


def test_counts_against_uncapped_profile_mark_unseen() -> None:
    prof = CategoricalProfile(count=10, missing=0, frequencies={"1": 4, "2": 6}, n_unique=2)
    cc = count_against_profile(prof, np.array([1, 2, 2, 9]))
    assert cc.labels == ["1", "2", UNSEEN]
    assert cc.current.tolist() == [1, 2, 1]
    assert cc.unseen_categories == ["9"]
