"""Sample size and power against statsmodels' NormalIndPower and TTestIndPower."""

from __future__ import annotations

import math

import pytest
from statsmodels.stats.power import NormalIndPower, TTestIndPower, zt_ind_solve_power
from statsmodels.stats.proportion import proportion_effectsize

from vigil.errors import InvalidParameterError
from vigil.stats import (
    cohens_h,
    power_two_means,
    power_two_proportions,
    sample_size_two_means,
    sample_size_two_proportions,
)

RATE_CASES = [
    (0.05, 0.055, 1.0, "two-sided"),
    (0.10, 0.12, 2.0, "two-sided"),
    (0.30, 0.27, 1.0, "two-sided"),
    (0.05, 0.06, 0.5, "larger"),
    (0.2, 0.15, 1.0, "smaller"),
]


@pytest.mark.parametrize(("pc", "pt", "ratio", "alternative"), RATE_CASES)
@pytest.mark.parametrize("power", [0.8, 0.9])
def test_sample_size_rates_matches_statsmodels(
    pc: float, pt: float, ratio: float, alternative: str, power: float
) -> None:
    es = proportion_effectsize(pt, pc)
    assert cohens_h(pc, pt) == pytest.approx(es, rel=1e-12)
    ref = zt_ind_solve_power(
        effect_size=es, alpha=0.05, power=power, ratio=ratio, alternative=alternative
    )
    ours = sample_size_two_proportions(pc, pt, power=power, ratio=ratio, alternative=alternative)
    assert ours.exact_n_control == pytest.approx(ref, rel=1e-6)
    assert ours.n_control == math.ceil(ref - 1e-6)
    assert ours.n_treatment == math.ceil(ours.exact_n_control * ratio - 1e-9)
    assert power_two_proportions(
        pc, pt, ours.exact_n_control, ratio=ratio, alternative=alternative
    ) == (pytest.approx(power, rel=1e-8))
    assert power_two_proportions(
        pc, pt, 5000, ratio=ratio, alternative=alternative
    ) == pytest.approx(
        NormalIndPower().power(es, 5000, 0.05, ratio=ratio, alternative=alternative), rel=1e-10
    )


@pytest.mark.parametrize(
    ("diff", "sd", "ratio", "alternative"),
    [(0.5, 2.0, 1.0, "two-sided"), (1.0, 3.0, 3.0, "two-sided"), (2.0, 1.0, 1.0, "larger")],
)
def test_sample_size_means_matches_statsmodels(
    diff: float, sd: float, ratio: float, alternative: str
) -> None:
    ref = TTestIndPower().solve_power(
        effect_size=diff / sd, alpha=0.05, power=0.8, ratio=ratio, alternative=alternative
    )
    ours = sample_size_two_means(diff, sd, ratio=ratio, alternative=alternative)
    assert ours.exact_n_control == pytest.approx(ref, rel=1e-5)
    assert power_two_means(diff, sd, 60, ratio=ratio, alternative=alternative) == pytest.approx(
        TTestIndPower().power(diff / sd, 60, 0.05, ratio=ratio, alternative=alternative), rel=1e-9
    )


def test_impossible_plans_are_rejected() -> None:
    with pytest.raises(InvalidParameterError, match="large enough"):
        sample_size_two_proportions(0.05, 0.05)
    with pytest.raises(InvalidParameterError, match="power must be in"):
        sample_size_two_means(1.0, 1.0, power=1.5)
    with pytest.raises(InvalidParameterError, match="p_control must be in"):
        sample_size_two_proportions(1.2, 0.5)
