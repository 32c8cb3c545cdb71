"""Data-quality counts against a baseline profile and signature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.bundle.signature import FeatureSpec, Signature
from vigil.monitor.quality import check_quality
from vigil.profile_schema import BaselineProfile, CategoricalProfile, NumericProfile

QUANTILES = np.linspace(0.0, 100.0, 101).tolist()  # Q1 = 25, Q3 = 75, fences -50 / 150


def profile(capped: bool = False) -> BaselineProfile:
    return BaselineProfile(
        n_rows=100,
        features={
            "x": NumericProfile(
                count=90, missing=10, min=0.0, max=100.0, mean=50.0, std=29.0, quantiles=QUANTILES
            ),
            "n": NumericProfile(
                count=100,
                missing=0,
                min=0.0,
                max=10.0,
                mean=5.0,
                std=3.0,
                quantiles=np.linspace(0, 10, 101).tolist(),
            ),
            "city": CategoricalProfile(
                count=100,
                missing=0,
                frequencies={"paris": 60, "rome": 40},
                other_count=5 if capped else 0,
                n_unique=3 if capped else 2,
            ),
        },
    )


SIG = Signature(
    inputs=[
        FeatureSpec(name="x", dtype="float64"),
        FeatureSpec(name="n", dtype="int64"),
        FeatureSpec(name="city", dtype="string"),
    ]
)


def test_counts_per_feature() -> None:
    cur = pd.DataFrame(
        {
            "x": pd.Series([1.0, None, 120.0, 200.0, -60.0, "oops", np.inf, 50.0], dtype=object),
            "n": [1, 2, 2.5, 11, None, 3, 4, 5],
            "city": ["paris", "rome", "oslo", None, "oslo", "lima", "paris", "rome"],
        }
    )
    q = check_quality(cur, profile(), SIG, schema_violations=2)
    x = q.feature("x")
    assert (x.missing, x.type_errors, x.infinite) == (1, 1, 1)
    assert x.out_of_range == 3  # 120, 200, -60
    assert x.outliers == 2  # 200 > 150 and -60 < -50
    assert x.missing_rate == pytest.approx(1 / 8)
    assert x.baseline_missing_rate == pytest.approx(0.1)
    assert x.missing_rate_change == pytest.approx(1 / 8 - 0.1)
    n = q.feature("n")
    assert (n.missing, n.type_errors, n.out_of_range) == (1, 1, 1)
    city = q.feature("city")
    assert (city.missing, city.unseen_categories, city.unseen_values) == (1, 3, ["oslo", "lima"])
    assert q.totals["missing"] == 3 and q.totals["unseen_categories"] == 3
    assert q.schema_violation_rate == pytest.approx(2 / 10)
    d = q.to_dict()
    assert d["features"][0]["out_of_range_rate"] == pytest.approx(3 / 8)


def test_range_margin_and_capped_profile() -> None:
    cur = {
        "x": np.array([105.0, 112.0]),
        "n": np.array([1, 2]),
        "city": np.array(["oslo", "paris"]),
    }
    q = check_quality(cur, profile(capped=True), range_margin=0.1)
    assert q.feature("x").out_of_range == 1  # 105 inside the 10% margin, 112 outside
    assert q.feature("city").unseen_categories is None  # capped table: cannot tell
    sig = Signature(
        inputs=[FeatureSpec(name="city", dtype="category", categories=["paris", "rome"])]
    )
    assert check_quality(cur, profile(capped=True), sig).feature("city").unseen_categories == 1


def test_missing_column_and_empty_window() -> None:
    q = check_quality({"x": [1.0, 2.0]}, profile(), SIG)
    assert q.feature("n").missing == 2 and q.feature("city").missing_rate == 1.0
    empty = check_quality({"x": [], "n": [], "city": []}, profile(), SIG)
    assert empty.n_rows == 0 and empty.feature("x").missing_rate == 0.0
