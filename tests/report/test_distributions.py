"""Chart summaries agree with numpy.histogram and pandas value counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.report.distributions import (
    OTHER,
    chart_distributions,
    summarise_categorical,
    summarise_numeric,
)


def test_numeric_histogram_over_shared_edges_matches_numpy() -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(0, 1, 1000)
    cur = np.concatenate([rng.normal(2, 1, 790), [np.nan] * 10])
    r, c = summarise_numeric(ref, cur, bins=20)
    edges = np.histogram_bin_edges(np.concatenate([ref, cur[:790]]), bins=20)
    assert r.edges == c.edges == pytest.approx(tuple(edges))
    assert r.edges[0] == ref.min() and r.edges[-1] == max(ref.max(), np.nanmax(cur))
    np.testing.assert_allclose(r.proportions, np.histogram(ref, edges)[0] / 1000, atol=5e-5)
    np.testing.assert_allclose(c.proportions, np.histogram(cur[:790], edges)[0] / 800, atol=5e-5)
    assert (r.n, c.n, r.missing, c.missing) == (1000, 800, 0.0, 0.0125)
    assert sum(c.proportions) + c.missing == pytest.approx(1.0, abs=1e-3)


def test_numeric_constant_and_empty_columns() -> None:
    r, c = summarise_numeric(np.full(4, 3.0), np.array([3.0, np.inf]))
    assert r.edges == (2.5, 3.5) and r.proportions == (1.0,) and c.proportions == (0.5,)
    assert c.missing == 0.5  # inf is not drawable: it counts with the missing share
    r, c = summarise_numeric(np.array([np.nan]), np.array([], dtype=float))
    assert r.proportions == (0.0,) and r.missing == 1.0 and c.n == 0


def test_categorical_top_k_and_other_match_pandas() -> None:
    rng = np.random.default_rng(9)
    letters = list("abcdefghij")
    ref = rng.choice(letters, 2000, p=np.linspace(2, 0.2, 10) / np.linspace(2, 0.2, 10).sum())
    cur = np.concatenate([rng.choice(letters, 1900), ["new"] * 50, [None] * 50]).astype(object)
    r, c = summarise_categorical(ref, cur, top_k=4)
    combined = (
        pd.Series(ref)
        .value_counts(normalize=True)
        .add(pd.Series(cur).dropna().value_counts() / len(cur), fill_value=0)
    ).sort_values(ascending=False, kind="stable")
    assert r.labels == (*combined.index[:4], OTHER)
    cur_counts = pd.Series(cur).value_counts()
    expected = [cur_counts[k] / 2000 for k in combined.index[:4]]
    expected.append((1950 - sum(cur_counts[k] for k in combined.index[:4])) / 2000)
    np.testing.assert_allclose(c.proportions, expected, atol=5e-5)
    assert c.missing == 0.025 and r.missing == 0.0
    assert sum(r.proportions) == pytest.approx(1.0, abs=1e-3)


def test_summarise_picks_the_kind_per_column() -> None:
    ref = {"x": np.arange(10.0), "k": np.array(["a", "b"] * 5, dtype=object)}
    r, c = chart_distributions(ref, ref, {"k"})
    assert r == c
    assert (r["x"].kind, r["k"].kind) == ("numeric", "categorical")
    assert r["k"].labels == ("a", "b") and r["k"].proportions == (0.5, 0.5)
