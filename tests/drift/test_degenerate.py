"""Degenerate inputs get a defined verdict, the same from raw data and from a profile.

Each case here once gave a wrong or inconsistent answer: rounding noise called drift, an
all-``+inf`` reference judged two different ways, a high-cardinality column flagged on
every window, the profile's bins judged by PSI whatever the window size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.bundle.profile import build_profile
from vigil.bundle.signature import FeatureSpec, Signature
from vigil.drift import compare, compare_to_profile
from vigil.drift.binned import chance_bound
from vigil.drift.column_drift import ColumnDrift


def both_paths(ref: np.ndarray, cur: np.ndarray, sample_size: int = 1000) -> list[ColumnDrift]:
    """The verdict from raw data, from a profile with a sample, and from one without."""
    frame = pd.DataFrame({"x": ref})
    sig = Signature(inputs=[FeatureSpec(name="x", dtype="float64")])
    with_sample = build_profile(frame, sig, sample_size=sample_size)
    without = build_profile(frame, sig, sample_size=0)
    return [
        compare({"x": ref}, {"x": cur}).column("x"),
        compare_to_profile(with_sample, {"x": cur}).column("x"),
        compare_to_profile(without, {"x": cur}).column("x"),
    ]


@pytest.mark.parametrize("n", [100, 2000])
def test_rounding_noise_is_not_drift(n: int) -> None:
    # 0.1 * 3 is 0.30000000000000004: the reference std came out as 5.55e-17 and was
    # used as a scale (normalised Wasserstein 0.9999), and KS said p = 8.7e-213.
    for res in both_paths(np.full(5000, 0.1 * 3), np.full(n, 0.3)):
        assert not res.drifted, res
        assert res.statistic == 0.0 and "constant reference" in res.reason


def test_a_constant_that_moves_is_drift() -> None:
    for res in both_paths(np.full(5000, 3.0), np.full(200, 5.0)):
        assert res.drifted, res
    spread = np.random.default_rng(0).normal(3.0, 1.0, 200)
    for res in both_paths(np.full(5000, 3.0), spread):
        assert res.drifted, res


def test_an_all_infinite_reference_is_judged_the_same_on_both_paths() -> None:
    # compare said PSI 9.21 (drifted), compare_to_profile 0 (not drifted).
    ref = np.full(1000, np.inf)
    finite = np.random.default_rng(1).normal(size=300)
    verdicts = both_paths(ref, finite)
    assert [r.drifted for r in verdicts] == [True, True, True]
    assert {r.method for r in verdicts} == {"chi2"}
    assert all("no finite value" in r.reason for r in verdicts)
    same = both_paths(ref, np.full(300, np.inf))
    assert [r.drifted for r in same] == [False, False, False]


def test_an_all_missing_window_is_drift_on_every_path() -> None:
    ref = np.random.default_rng(2).normal(size=5000)
    for res in both_paths(ref, np.full(40, np.nan)):
        assert res.drifted and res.current_missing == 40, res


@pytest.mark.parametrize("n_cur", [30, 200])
def test_without_a_sample_small_windows_are_tested_on_the_bins(n_cur: int) -> None:
    # PSI > 0.2 on ten bins alarmed on 81-89 % of 30-row windows of unchanged data.
    rng = np.random.default_rng(3)
    raw, _, binned = both_paths(rng.normal(size=5000), rng.normal(size=n_cur))
    assert raw.method == "ks" and binned.method == "chi2" and binned.p_value is not None
    assert "no reference sample" in binned.reason


def test_high_cardinality_window_is_held_to_its_chance_bound() -> None:
    # 500 levels, 20,000 rows: the plug-in JS distance of unchanged data is about 0.15.
    rng = np.random.default_rng(4)
    levels = np.array([f"zip{i}" for i in range(500)], dtype=object)
    ref, cur = rng.choice(levels, 5000), rng.choice(levels, 20_000)
    res = compare({"z": ref}, {"z": cur}).column("z")
    assert res.method == "js" and res.statistic > 0.1 and not res.drifted
    assert res.threshold > res.statistic and "chance bound" in res.reason
    # A real change still shows: half the traffic moves to a tenth of the levels.
    moved = np.where(rng.random(20_000) < 0.5, rng.choice(levels[:50], 20_000), cur)
    assert compare({"z": ref}, {"z": moved}).column("z").drifted


def test_chance_bound_tracks_the_plug_in_bias() -> None:
    # E[JSD] ≈ (K - 1)(1/n_ref + 1/n_cur) / (8 ln 2) under the null, for dense tables.
    k, n_ref, n_cur = 20, 50_000, 50_000
    ref, cur = np.full(k, n_ref // k), np.full(k, n_cur // k)
    bias = np.sqrt((k - 1) * (1 / n_ref + 1 / n_cur) / (8 * np.log(2)))
    bound = chance_bound("js", ref, cur)
    assert bias < bound < 2.5 * bias
    assert chance_bound("js", [10], [5]) == 0.0  # one bucket: nothing to compare
