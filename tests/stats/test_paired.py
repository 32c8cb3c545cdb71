"""Paired comparisons of two models on the same rows, against statsmodels and SciPy, and
calibrated: false rejections near the nominal level when the models are equally good,
intervals that cover the true difference as often as they claim."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import accuracy_score
from statsmodels.stats.contingency_tables import mcnemar

from vigil.errors import InvalidParameterError
from vigil.stats.paired import (
    EXACT_BELOW,
    mcnemar_test,
    paired_bootstrap_ci,
    paired_mean_difference_ci,
)


def _outcomes(b: int, c: int, both: int = 30, neither: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Row-by-row correctness with ``b`` rows only the current model got right and ``c``
    only the candidate did, shuffled."""
    current = np.array([1] * both + [1] * b + [0] * c + [0] * neither)
    candidate = np.array([1] * both + [0] * b + [1] * c + [0] * neither)
    order = np.random.default_rng(b * 1000 + c).permutation(len(current))
    return current[order], candidate[order]


@pytest.mark.parametrize("b, c", [(0, 3), (3, 9), (10, 14), (12, 30), (40, 25), (100, 130)])
def test_two_sided_mcnemar_matches_statsmodels(b: int, c: int) -> None:
    current, candidate = _outcomes(b, c)
    table = [[30, b], [c, 5]]
    exact = mcnemar_test(current, candidate, exact=True)
    assert exact.p_value == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)
    approx = mcnemar_test(current, candidate, exact=False)
    theirs = mcnemar(table, exact=False, correction=True)
    assert approx.statistic == pytest.approx(theirs.statistic, rel=1e-12)
    assert approx.p_value == pytest.approx(theirs.pvalue, rel=1e-12)
    default = mcnemar_test(current, candidate)
    assert default.test == ("mcnemar-exact" if b + c < EXACT_BELOW else "mcnemar-chi2")


def test_one_sided_mcnemar_reads_the_direction() -> None:
    current, candidate = _outcomes(12, 30)  # the candidate wins 30 discordant rows of 42
    larger = mcnemar_test(current, candidate, alternative="larger")
    smaller = mcnemar_test(current, candidate, alternative="smaller")
    two = mcnemar_test(current, candidate)
    assert larger.p_value == pytest.approx(two.p_value / 2, rel=1e-9)
    assert smaller.p_value == pytest.approx(1 - larger.p_value, rel=1e-9)
    exact = mcnemar_test(current, candidate, exact=True, alternative="larger")
    assert exact.p_value == pytest.approx(sps.binom.sf(29, 42, 0.5), rel=1e-12)


def test_no_discordant_row_is_no_evidence() -> None:
    same = np.array([1, 0, 1, 1])
    result = mcnemar_test(same, same)
    assert (result.statistic, result.p_value) == (0.0, 1.0)


def _correlated_outcomes(
    rng: np.random.Generator, n: int, p_current: float, p_candidate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Two models' correctness on the same rows, correlated through a shared row
    difficulty (as real models are: hard rows are hard for both)."""
    difficulty = rng.random(n)
    current = (difficulty < p_current).astype(int)
    # The candidate agrees on most rows and differs on a random tenth.
    flip = rng.random(n) < 0.1
    candidate = np.where(flip, rng.random(n) < p_candidate, difficulty < p_candidate)
    return current, candidate.astype(int)


@pytest.mark.parametrize("n", [60, 2000])
def test_mcnemar_false_alarms_stay_near_the_level(n: int) -> None:
    rng = np.random.default_rng(7)
    runs, alpha = 1500, 0.05
    rejected = sum(
        mcnemar_test(*_correlated_outcomes(rng, n, 0.8, 0.8)).p_value < alpha for _ in range(runs)
    )
    # McNemar is conservative (the continuity correction, the discrete exact test): at or
    # below the level, never far above it (3 standard errors).
    se = np.sqrt(alpha * (1 - alpha) / runs)
    assert rejected / runs <= alpha + 3 * se


def test_mcnemar_finds_a_better_candidate() -> None:
    rng = np.random.default_rng(8)
    found = sum(
        mcnemar_test(*_correlated_outcomes(rng, 2000, 0.80, 0.84), alternative="larger").p_value
        < 0.05
        for _ in range(200)
    )
    assert found / 200 > 0.9


def test_mean_difference_interval_equals_the_general_paired_bootstrap() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    current = np.where(rng.random(300) < 0.75, y, 1 - y)
    candidate = np.where(rng.random(300) < 0.82, y, 1 - y)
    general = paired_bootstrap_ci(accuracy_score, y, current, candidate, n_resamples=500, seed=4)
    fast = paired_mean_difference_ci(
        (current == y).astype(float), (candidate == y).astype(float), n_resamples=500, seed=4
    )
    assert fast.value == pytest.approx(general.value, abs=1e-12)
    assert (fast.low, fast.high) == pytest.approx((general.low, general.high), abs=1e-12)


@pytest.mark.parametrize("method", ["percentile", "BCa"])
def test_mean_difference_interval_covers_the_true_difference(method: str) -> None:
    rng = np.random.default_rng(11)
    runs, n, level = 300, 400, 0.9
    true_difference = 0.85 - 0.80
    covered = 0
    for seed in range(runs):
        current, candidate = _correlated_outcomes(rng, n, 0.80, 0.85)
        # The flipped tenth keeps the candidate's rate at 0.85 on average: 0.9 * 0.85 +
        # 0.1 * 0.85.
        e = paired_mean_difference_ci(
            current, candidate, level=level, n_resamples=999, method=method, seed=seed
        )
        covered += e.low <= true_difference <= e.high
    se = np.sqrt(level * (1 - level) / runs)
    assert abs(covered / runs - level) < 3.5 * se


def test_pairing_narrows_the_interval() -> None:
    rng = np.random.default_rng(5)
    current, candidate = _correlated_outcomes(rng, 2000, 0.8, 0.8)
    paired = paired_mean_difference_ci(current, candidate)
    # Treating the two samples as independent: the Wald width for a difference of two
    # independent proportions.
    p1, p2, n = current.mean(), candidate.mean(), len(current)
    independent = 2 * 1.96 * np.sqrt(p1 * (1 - p1) / n + p2 * (1 - p2) / n)
    assert paired.high - paired.low < independent / 2


@pytest.mark.parametrize(
    "call",
    [
        lambda: mcnemar_test([1, 0], [1]),
        lambda: mcnemar_test([], []),
        lambda: mcnemar_test([1], [0], alternative="bigger"),
        lambda: paired_mean_difference_ci([1.0, np.nan], [1.0, 0.0]),
        lambda: paired_mean_difference_ci([1.0, 0.0], [1.0, 0.0], level=1.5),
        lambda: paired_mean_difference_ci([1.0, 0.0], [1.0, 0.0], n_resamples=10),
        lambda: paired_bootstrap_ci(accuracy_score, [1, 0], [1, 0], [1, 0], method="normal"),
    ],
)
def test_bad_input_is_a_parameter_error(call: object) -> None:
    with pytest.raises(InvalidParameterError):
        call()  # type: ignore[operator]
