"""Chart data against a stored baseline profile agrees with NumPy / pandas on the raw data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.bundle.profile import build_profile
from vigil.bundle.signature import FeatureSpec, Signature
from vigil.profile_schema import CategoricalProfile, NumericProfile
from vigil.report.distributions import OTHER
from vigil.report.profile_distributions import (
    against_profile,
    categorical_against_profile,
    numeric_against_profile,
)

SIG = Signature(
    inputs=[FeatureSpec(name="x", dtype="float64"), FeatureSpec(name="k", dtype="string")]
)


def _profile(frame: pd.DataFrame, **kwargs: int) -> tuple[NumericProfile, CategoricalProfile]:
    prof = build_profile(frame, SIG, sample_size=10, **kwargs)
    x, k = prof.features["x"], prof.features["k"]
    assert isinstance(x, NumericProfile) and isinstance(k, CategoricalProfile)
    return x, k


def _reference(n: int = 4000) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, n)
    x[:40] = np.nan
    letters = list("abcdefgh")
    p = np.linspace(3, 0.5, 8) / np.linspace(3, 0.5, 8).sum()
    return pd.DataFrame({"x": x, "k": rng.choice(letters, n, p=p)})


def test_current_inside_the_range_uses_the_stored_histogram_exactly() -> None:
    ref = _reference()
    x, _ = _profile(ref)
    rng = np.random.default_rng(4)
    cur = np.clip(rng.normal(0.3, 1, 3000), x.min, x.max)
    cur[:30] = np.nan
    r, c = numeric_against_profile(x, cur)
    assert r.edges == c.edges == pytest.approx(tuple(x.hist_edges))
    raw = ref["x"].to_numpy()
    counts, _ = np.histogram(raw[np.isfinite(raw)], bins=np.asarray(x.hist_edges))
    np.testing.assert_allclose(r.proportions, counts / 4000, atol=5e-5)
    np.testing.assert_allclose(
        c.proportions, np.histogram(cur[30:], bins=np.asarray(r.edges))[0] / 3000, atol=5e-5
    )
    assert (r.n, c.n, r.missing, c.missing) == (4000, 3000, 0.01, 0.01)


def test_current_outside_the_range_widens_the_edges() -> None:
    ref = _reference()
    x, _ = _profile(ref)
    rng = np.random.default_rng(5)
    cur = rng.normal(3, 1, 3000)  # well past the reference's max
    r, c = numeric_against_profile(x, cur)
    edges = np.asarray(r.edges)
    assert edges[0] == pytest.approx(x.min) and edges[-1] == pytest.approx(cur.max())
    assert len(edges) == 31 and np.allclose(np.diff(edges), np.diff(edges)[0])
    np.testing.assert_allclose(c.proportions, np.histogram(cur, bins=edges)[0] / 3000, atol=5e-5)
    # The re-binned reference keeps its mass and is close to binning the raw values.
    raw = ref["x"].to_numpy()
    exact = np.histogram(raw[np.isfinite(raw)], bins=edges)[0] / 4000
    assert sum(r.proportions) == pytest.approx(0.99, abs=1e-3)
    np.testing.assert_allclose(r.proportions, exact, atol=0.01)


def test_categorical_with_a_capped_profile_puts_the_rest_in_other() -> None:
    ref = _reference()
    _, k = _profile(ref, category_cap=3)
    assert k.other_count > 0
    # "h" is one of the capped reference categories, "new" maybe: both are "(other)".
    cur = np.array(["a"] * 50 + ["h"] * 30 + ["new"] * 20, dtype=object)
    r, c = categorical_against_profile(k, cur)
    counts = ref["k"].value_counts()
    assert r.labels == c.labels == ("a", "b", "c", OTHER)
    np.testing.assert_allclose(
        r.proportions, [*(counts[lab] / 4000 for lab in "abc"), counts.iloc[3:].sum() / 4000],
        atol=5e-5,
    )  # fmt: skip
    assert c.proportions == (0.5, 0.0, 0.0, 0.5)
    assert against_profile(k, cur) == (r, c)


def test_a_profile_without_finite_values_draws_the_current_side_alone() -> None:
    empty = NumericProfile(count=0, missing=5, min=None, max=None, mean=None, std=None)
    r, c = numeric_against_profile(empty, np.array([1.0, 2.0, 3.0]))
    assert r.missing == 1.0 and sum(r.proportions) == 0
    assert sum(c.proportions) == pytest.approx(1, abs=1e-3)
    assert r.edges == c.edges
