"""Dataset reports: selection, BH correction, share rule, profiles and edge cases."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from statsmodels.stats.multitest import multipletests

from vigil.drift import compare, compare_to_profile
from vigil.drift.select import choose_method, effective_n
from vigil.errors import InvalidParameterError, ValidationError
from vigil.profile_schema import BaselineProfile, CategoricalProfile, NumericProfile


def test_selection_table() -> None:
    assert effective_n(1000, 1000) == 500
    assert choose_method("numeric", n_reference=2000, n_current=2000).method == "ks"
    assert (
        choose_method("numeric", n_reference=2001, n_current=2001).method
        == "wasserstein_normalised"
    )
    assert choose_method("numeric", n_reference=10, n_current=0).method == "none"
    assert choose_method("numeric", n_reference=10, n_current=5, binned=True).method == "chi2"
    assert choose_method("numeric", n_reference=10**6, n_current=10**5, binned=True).method == (
        "psi"
    )
    # Chi-squared at any cardinality: sparse tables get a permutation p-value.
    assert choose_method("categorical", n_reference=500, n_current=500).method == "chi2"
    assert choose_method("categorical", n_reference=10**6, n_current=10**5).method == "js"
    c = choose_method("categorical", n_reference=500, n_current=500, alpha=0.01)
    assert (c.method, c.threshold, c.uses_p_value) == ("chi2", 0.01, True)


def small_frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame(
        {
            "x": rng.normal(0, 1, 600),
            "y": rng.normal(0, 1, 600),
            "z": rng.normal(0, 1, 600),
            "c": rng.choice(["a", "b", "c"], 600),
        }
    )
    cur = pd.DataFrame(
        {
            "x": rng.normal(0.8, 1, 400),
            "y": rng.normal(0, 1, 400),
            "z": rng.normal(0.05, 1, 400),
            "c": rng.choice(["a", "b", "c"], 400, p=[0.6, 0.2, 0.2]),
        }
    )
    return ref, cur


def test_small_samples_use_tests_and_bh() -> None:
    ref, cur = small_frames()
    report = compare(ref, cur)
    by = {c.column: c for c in report.columns}
    assert [by[k].method for k in "xyzc"] == ["ks", "ks", "ks", "chi2"]
    for k in "xyz":
        expected = stats.ks_2samp(ref[k], cur[k])
        assert by[k].statistic == pytest.approx(expected.statistic)
        assert by[k].p_value == pytest.approx(expected.pvalue)
        assert by[k].effect_size == pytest.approx(
            stats.wasserstein_distance(ref[k], cur[k]) / ref[k].std(ddof=1)
        )
    p = [by[k].p_value for k in "xyzc"]
    adj = multipletests(p, method="fdr_bh")[1]
    assert [by[k].p_value_adjusted for k in "xyzc"] == pytest.approx(list(adj))
    assert [by[k].drifted for k in "xyzc"] == list(adj < 0.05)
    assert by["x"].drifted and by["c"].drifted and not by["y"].drifted
    table = pd.crosstab(
        np.r_[np.zeros(600), np.ones(400)], np.r_[ref["c"].to_numpy(), cur["c"].to_numpy()]
    ).to_numpy()
    assert by["c"].statistic == pytest.approx(stats.chi2_contingency(table).statistic)
    counts = table.T
    assert by["c"].effect_size == pytest.approx(jensenshannon(counts[:, 0], counts[:, 1], base=2))
    assert report.n_drifted == 2 and report.share_drifted == 0.5 and report.dataset_drifted
    assert "Benjamini" in report.rule
    assert not compare(ref, cur, drift_share=0.75).dataset_drifted


def test_large_samples_use_effect_sizes() -> None:
    rng = np.random.default_rng(2)
    ref = {"x": rng.normal(0, 2, 20_000), "c": rng.choice(list("ab"), 20_000)}
    cur = {"x": rng.normal(0.1, 2, 20_000), "c": rng.choice(list("ab"), 20_000, p=[0.7, 0.3])}
    report = compare(ref, cur)
    x, c = report.column("x"), report.column("c")
    assert x.method == "wasserstein_normalised" and x.p_value is None
    assert x.statistic == pytest.approx(
        stats.wasserstein_distance(ref["x"], cur["x"]) / np.std(ref["x"], ddof=1)
    )
    assert not x.drifted  # 0.05 sd shift: significant at n=20,000 but below 0.1
    assert stats.ks_2samp(ref["x"], cur["x"]).pvalue < 0.05
    assert c.method == "js" and c.drifted and c.statistic == c.effect_size


def test_forced_methods_and_thresholds() -> None:
    ref, cur = small_frames(3)
    report = compare(
        ref, cur, methods={"x": "psi", "c": "tvd", "y": "cvm"}, thresholds={"psi": 0.5}
    )
    assert report.column("x").method == "psi" and report.column("x").threshold == 0.5
    assert report.column("c").method == "tvd"
    assert report.column("y").p_value == pytest.approx(
        stats.cramervonmises_2samp(ref["y"], cur["y"]).pvalue
    )
    with pytest.raises(InvalidParameterError, match="for a categorical column; got 'ks'"):
        compare(ref, cur, methods={"c": "ks"})


def test_edge_cases_without_warnings() -> None:
    rng = np.random.default_rng(4)
    ref = {
        "const": np.full(100, 3.0),
        "allnan_cur": rng.normal(size=100),
        "inf": rng.normal(size=100),
        "single": rng.normal(size=100),
        "newcat": np.array(["a", "b"] * 50, dtype=object),
    }
    cur = {
        "const": np.full(50, 3.0),
        "allnan_cur": np.full(50, np.nan),
        "inf": np.concatenate([rng.normal(size=47), [np.inf, -np.inf, np.inf]]),
        "single": np.array([0.1] + [np.nan] * 49),
        "newcat": np.array(["a", "z", "z", None] * 12 + ["b", "b"], dtype=object),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = compare(ref, cur)
    const = report.column("const")
    assert const.method == "chi2" and const.statistic == 0.0 and not const.drifted
    assert const.p_value == 1.0 and "constant reference" in const.reason
    nan_col = report.column("allnan_cur")
    assert nan_col.method == "chi2" and nan_col.drifted and nan_col.current_missing == 50
    inf = report.column("inf")
    assert inf.current_infinite == 3 and inf.n_current == 47
    assert inf.statistic == pytest.approx(stats.ks_2samp(ref["inf"], cur["inf"][:47]).statistic)
    assert report.column("single").n_current == 1
    newcat = report.column("newcat")
    assert newcat.unseen_categories == ["z"] and newcat.drifted
    json.dumps(report.to_dict())  # JSON-ready


def test_empty_current_and_single_row() -> None:
    ref = {"x": np.arange(10.0), "c": np.array(list("ababababab"), dtype=object)}
    report = compare(ref, {"x": np.array([]), "c": np.array([], dtype=object)})
    assert [c.method for c in report.columns] == ["none", "none"]
    assert not report.dataset_drifted and report.share_drifted == 0.0
    # A one-row reference is a constant: one row on each side is no evidence either way.
    one = compare({"x": [5.0]}, {"x": [7.0]})
    assert one.column("x").method == "chi2" and one.column("x").p_value == 1.0
    assert not one.column("x").drifted
    # A one-row window against a real reference is a valid (exact) KS test.
    row = compare({"x": np.arange(100.0)}, {"x": [7.0]})
    assert row.column("x").method == "ks"
    assert row.column("x").p_value == pytest.approx(stats.ks_2samp(np.arange(100.0), [7.0]).pvalue)


def test_missing_column_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="missing from the current data"):
        compare({"x": [1.0]}, {"y": [1.0]})


def make_profile(ref: pd.DataFrame, sample_size: int = 500) -> BaselineProfile:
    """A profile built by the schema's documented conventions (builder lives elsewhere)."""
    feats: dict[str, NumericProfile | CategoricalProfile] = {}
    sample = ref.sample(sample_size, random_state=0)
    for name in ref.columns:
        col = ref[name]
        if not pd.api.types.is_numeric_dtype(col):
            vc = col.value_counts()
            feats[name] = CategoricalProfile(
                count=int(col.notna().sum()),
                missing=int(col.isna().sum()),
                frequencies={str(k): int(v) for k, v in vc.items()},
                n_unique=len(vc),
            )
            continue
        v = col.dropna().to_numpy()
        edges = np.unique(np.quantile(v, np.linspace(0, 1, 11)))
        counts = np.bincount(
            np.searchsorted(edges[1:-1], v, side="right"), minlength=len(edges) - 1
        )
        feats[name] = NumericProfile(
            count=v.size,
            missing=int(col.isna().sum()),
            min=float(v.min()),
            max=float(v.max()),
            mean=float(v.mean()),
            std=float(v.std(ddof=1)),
            quantiles=np.quantile(v, np.linspace(0, 1, 101)).tolist(),
            bin_edges=edges.tolist(),
            bin_counts=counts.tolist(),
        )
    return BaselineProfile(
        n_rows=len(ref), features=feats, sample={k: sample[k].tolist() for k in ref.columns}
    )


def test_compare_to_profile_binned_stats_equal_raw() -> None:
    ref, cur = small_frames(5)
    ref.loc[:9, "x"] = np.nan
    profile = make_profile(ref)
    methods = {"x": "psi", "y": "js", "z": "hellinger", "c": "chi2"}
    from_profile = compare_to_profile(profile, cur, methods=methods)
    from_raw = compare(ref, cur, methods=methods)
    for a, b in zip(from_profile.columns, from_raw.columns, strict=True):
        assert a.statistic == pytest.approx(b.statistic, rel=1e-12), a.column
        assert a.p_value == b.p_value or a.p_value == pytest.approx(b.p_value)


def test_compare_to_profile_sample_based_tests() -> None:
    ref, cur = small_frames(6)
    profile = make_profile(ref, sample_size=300)
    report = compare_to_profile(profile, cur, columns=["x", "c"])
    x = report.column("x")
    sample = np.asarray(profile.sample["x"])
    assert x.method == "ks" and x.n_reference == 600
    assert x.p_value == pytest.approx(stats.ks_2samp(sample, cur["x"]).pvalue)
    assert x.effect_size == pytest.approx(
        stats.wasserstein_distance(sample, cur["x"]) / profile.features["x"].std
    )
    without_sample = profile.model_copy(update={"sample": {}})
    binned = compare_to_profile(without_sample, cur, columns=["x"]).column("x")
    assert binned.method == "chi2" and "no reference sample" in binned.reason
    with pytest.raises(ValidationError, match="not in the baseline profile"):
        compare_to_profile(profile, cur, columns=["nope"])
