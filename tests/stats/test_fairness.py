"""Group fairness from counts equals Fairlearn's on the same rows (seeded data with known
disparities, and a group below the minimum size that is left out of the comparison)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score
from statsmodels.stats.proportion import proportion_confint

from vigil.stats.fairness import GroupCounts, count_groups, fairness_report


def seeded_rows(seed: int = 7) -> pd.DataFrame:
    """Three large groups selected at 0.6, 0.45 and 0.3 with different error rates, and a
    group of 12 rows (below the minimum size of 30)."""
    rng = np.random.default_rng(seed)
    parts = []
    for group, n, rate, noise in (
        ("a", 400, 0.6, 0.1),
        ("b", 300, 0.45, 0.2),
        ("c", 250, 0.2, 0.15),
        ("tiny", 12, 0.9, 0.1),
    ):
        y_true = rng.random(n) < rate
        flip = rng.random(n) < noise
        y_pred = np.where(flip, ~y_true, y_true)
        parts.append(
            pd.DataFrame(
                {"group": group, "y_true": y_true.astype(int), "y_pred": y_pred.astype(int)}
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_per_group_and_between_group_values_equal_fairlearns() -> None:
    rows = seeded_rows()
    counts = count_groups(rows["group"], rows["y_pred"] == 1, rows["y_true"] == 1)
    report = fairness_report(counts, min_group_size=30)

    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "accuracy": accuracy_score,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
        },
        y_true=rows["y_true"],
        y_pred=rows["y_pred"],
        sensitive_features=rows["group"],
    )
    for group, expected in frame.by_group.iterrows():
        got = report.groups[str(group)].values
        for metric in ("selection_rate", "accuracy", "tpr", "fpr"):
            assert got[metric] == pytest.approx(expected[metric], abs=1e-12), (group, metric)
        assert got["count"] == (rows["group"] == group).sum()

    # The comparison leaves the 12-row group out: Fairlearn on the other rows.
    big = rows[rows["group"] != "tiny"]
    args = {"y_true": big["y_true"], "y_pred": big["y_pred"], "sensitive_features": big["group"]}
    between = report.between
    assert between["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(**args), abs=1e-12
    )
    assert between["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(**args), abs=1e-12
    )
    assert between["disparate_impact_ratio"] == between["demographic_parity_ratio"]
    assert between["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(**args), abs=1e-12
    )
    assert between["equalized_odds_ratio"] == pytest.approx(equalized_odds_ratio(**args), abs=1e-12)
    assert between["equal_opportunity_difference"] == pytest.approx(
        equal_opportunity_difference(**args), abs=1e-12
    )
    # Known disparity: c is selected at about half of a's rate, which breaks the four-fifths rule.
    assert between["disparate_impact_ratio"] < 0.8 and between["four_fifths"] == 0.0
    assert between["groups"] == 3 and between["small_groups"] == 1
    # With the tiny group in, Fairlearn's answer differs: leaving it out is what changed it.
    assert demographic_parity_difference(
        rows["y_true"], rows["y_pred"], sensitive_features=rows["group"]
    ) != pytest.approx(between["demographic_parity_difference"])


def test_a_small_group_is_flagged_with_wilson_intervals() -> None:
    rows = seeded_rows()
    counts = count_groups(rows["group"], rows["y_pred"] == 1, rows["y_true"] == 1)
    tiny = fairness_report(counts, min_group_size=30).groups["tiny"]
    assert tiny.small and tiny.values["small"] == 1.0
    c = tiny.counts
    low, high = proportion_confint(c.selected, c.n, alpha=0.05, method="wilson")
    assert (tiny.values["selection_rate_low"], tiny.values["selection_rate_high"]) == pytest.approx(
        (low, high), abs=1e-12
    )
    low, high = proportion_confint(c.tp + c.tn, c.labelled, alpha=0.05, method="wilson")
    assert (tiny.values["accuracy_low"], tiny.values["accuracy_high"]) == pytest.approx(
        (low, high), abs=1e-12
    )


def test_counts_merge_and_undefined_values_are_none() -> None:
    rows = seeded_rows()
    first, second = rows.iloc[:500], rows.iloc[500:]
    halves = [count_groups(p["group"], p["y_pred"] == 1, p["y_true"] == 1) for p in (first, second)]
    merged = {
        g: halves[0].get(g, GroupCounts()) + halves[1].get(g, GroupCounts())
        for g in set(halves[0]) | set(halves[1])
    }
    assert merged == count_groups(rows["group"], rows["y_pred"] == 1, rows["y_true"] == 1)
    # Predictions without labels: selection rates only, the label-based values are None.
    unlabelled = fairness_report(
        count_groups(rows["group"], rows["y_pred"] == 1), min_group_size=30
    )
    assert unlabelled.between["demographic_parity_difference"] is not None
    assert unlabelled.between["equalized_odds_difference"] is None
    assert unlabelled.groups["a"].values["accuracy"] is None
    # No group large enough: nothing to compare.
    lonely = fairness_report({"a": GroupCounts(5, 2)}, min_group_size=30)
    assert lonely.between["demographic_parity_difference"] is None
    assert not any(
        isinstance(v, float) and math.isnan(v) for v in lonely.between.values() if v is not None
    )
