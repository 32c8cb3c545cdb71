"""The experiment summary: its numbers equal the building blocks, and the rule holds."""

from __future__ import annotations

import json

import pytest
from statsmodels.stats.proportion import proportions_ztest

from vigil.errors import InvalidParameterError
from vigil.stats import (
    MeanStats,
    ProportionStats,
    Recommendation,
    adjust_p_values,
    msprt_p_value,
    summarize_experiment,
)


def test_rates_summary_numbers_and_ship() -> None:
    variants = {
        "a": ProportionStats(20_000, 1_000),
        "b": ProportionStats(20_000, 1_160),
        "c": ProportionStats(20_000, 1_010),
    }
    s = summarize_experiment(variants, "a")
    b, c = s.variant("b"), s.variant("c")
    assert s.variant("a").recommendation is Recommendation.CONTROL
    assert b.p_value == pytest.approx(proportions_ztest([1160, 1000], [20_000, 20_000])[1])
    avs = [msprt_p_value(variants["a"], variants[k]) for k in ("b", "c")]
    assert (b.always_valid_p_value, c.always_valid_p_value) == pytest.approx(avs)
    adj = adjust_p_values(avs, method="holm").p_adjusted
    assert (b.always_valid_p_adjusted, c.always_valid_p_adjusted) == pytest.approx(adj)
    assert b.recommendation is Recommendation.SHIP
    assert c.recommendation is Recommendation.KEEP_COLLECTING
    assert b.prob_best > 0.95 and b.prob_beats_control > 0.99
    assert s.decision == "ship b"
    assert not s.srm.mismatch
    json.dumps(s.to_dict())  # JSON-ready, NaN-free


def test_worse_no_difference_and_plan() -> None:
    worse = summarize_experiment(
        {"a": ProportionStats(20_000, 1_160), "b": ProportionStats(20_000, 1_000)}, "a"
    )
    assert worse.variant("b").recommendation is Recommendation.STOP_WORSE
    assert worse.decision == "keep control"
    same = {"a": ProportionStats(200_000, 10_000), "b": ProportionStats(200_000, 10_020)}
    eq = summarize_experiment(same, "a", min_effect=0.003)
    assert eq.variant("b").recommendation is Recommendation.NO_DIFFERENCE
    assert (
        summarize_experiment(same, "a").variant("b").recommendation
        is Recommendation.KEEP_COLLECTING
    )
    planned = summarize_experiment(same, "a", planned_n=150_000)
    assert planned.variant("b").recommendation is Recommendation.NO_DIFFERENCE


def test_srm_overrides_everything() -> None:
    s = summarize_experiment(
        {"a": ProportionStats(20_000, 1_000), "b": ProportionStats(21_000, 1_300)}, "a"
    )
    assert s.srm.mismatch
    assert s.variant("b").recommendation is Recommendation.CHECK_ASSIGNMENT
    assert s.decision.startswith("check assignment")
    fine = summarize_experiment(
        {"a": ProportionStats(20_000, 1_000), "b": ProportionStats(21_000, 1_300)},
        "a",
        weights={"a": 20, "b": 21},
    )
    assert fine.variant("b").recommendation is Recommendation.SHIP


def test_means_lower_is_better_and_running_minimum() -> None:
    variants = {
        "old": MeanStats.from_moments(5_000, 120.0, 900.0),
        "new": MeanStats.from_moments(5_000, 116.0, 900.0),
    }
    s = summarize_experiment(variants, "old", higher_is_better=False)
    new = s.variant("new")
    assert new.difference is not None and new.difference.value == pytest.approx(-4.0)
    assert new.recommendation is Recommendation.SHIP
    assert new.prob_best > 0.99 and new.prob_beats_control > 0.99
    again = summarize_experiment(
        variants, "old", higher_is_better=False, previous_p_values={"new": 1e-9}
    )
    assert again.variant("new").always_valid_p_value == 1e-9


def test_invalid_calls() -> None:
    with pytest.raises(InvalidParameterError, match="control must be one of"):
        summarize_experiment({"a": ProportionStats(1, 0), "b": ProportionStats(1, 1)}, "z")
    with pytest.raises(InvalidParameterError, match="all ProportionStats or all MeanStats"):
        summarize_experiment({"a": ProportionStats(1, 0), "b": MeanStats(1, 1.0, 0.0)}, "a")
