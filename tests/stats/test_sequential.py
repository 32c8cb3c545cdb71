"""mSPRT: the formula, monotone always-valid p-values, and error control under peeking."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from vigil.errors import InvalidParameterError
from vigil.stats import (
    MeanStats,
    ProportionStats,
    SequentialTest,
    always_valid_p_values,
    msprt_log_likelihood_ratio,
    msprt_p_value,
    two_proportion_ztest,
)


def test_matches_johari_balanced_formula() -> None:
    # Johari et al. (2017), equal groups of n, per-observation variance sigma2, mixing
    # variance tau_raw2 on the raw difference:
    # Λ = sqrt(2σ²/(2σ²+nτ²)) exp(n² τ² θ̂² / (4σ² (2σ² + nτ²)))
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.0, 2.0, 3000), rng.normal(0.1, 2.0, 3000)
    n, theta = 3000, b.mean() - a.mean()
    sc, st = MeanStats.from_values(a), MeanStats.from_values(b)
    sigma2 = (sc.variance + st.variance) / 2
    tau = 0.08
    tau_raw2 = tau**2 * sigma2
    expected = 0.5 * math.log(2 * sigma2 / (2 * sigma2 + n * tau_raw2)) + (
        n**2 * tau_raw2 * theta**2 / (4 * sigma2 * (2 * sigma2 + n * tau_raw2))
    )
    z = theta / math.sqrt(sc.variance / n + st.variance / n)
    assert msprt_log_likelihood_ratio(z, 2 / n, tau) == pytest.approx(expected, rel=1e-9)
    assert msprt_p_value(sc, st, tau=tau) == pytest.approx(min(1.0, math.exp(-expected)), rel=1e-9)


def test_p_value_is_non_increasing_and_state_round_trips() -> None:
    rng = np.random.default_rng(2)
    test = SequentialTest(tau=0.05)
    c = t = ProportionStats(0, 0)
    seen = []
    for _ in range(30):
        c = c + ProportionStats.from_outcomes(rng.random(400) < 0.10)
        t = t + ProportionStats.from_outcomes(rng.random(400) < 0.115)
        seen.append(test.update(c, t).p_value)
    assert all(later <= earlier for earlier, later in itertools.pairwise(seen))
    assert seen[-1] < 0.05 and test.rejected and test.looks == 30
    restored = SequentialTest.from_state(json.loads(json.dumps(test.state_dict())))
    assert (restored.p_value, restored.looks, restored.tau) == (test.p_value, 30, 0.05)
    assert always_valid_p_values([(ProportionStats(0, 0), ProportionStats(0, 0))]) == [1.0]


def test_invalid_parameters() -> None:
    with pytest.raises(InvalidParameterError, match="tau must be a finite number > 0"):
        SequentialTest(tau=0)
    with pytest.raises(InvalidParameterError, match="alpha must be in"):
        SequentialTest(alpha=1.0)
    with pytest.raises(InvalidParameterError, match="both ProportionStats or both MeanStats"):
        msprt_p_value(ProportionStats(10, 1), MeanStats.from_values([1.0, 2.0]))


def test_false_positive_rate_under_peeking_stays_below_alpha() -> None:
    """400 seeded A/A experiments, a look every 200 units per arm for 25 looks.

    Stopping at the first ``p < 0.05`` of a fixed-horizon z-test rejects far more often than
    5%; stopping at the first always-valid ``p <= 0.05`` stays under 5% (+ MC tolerance).
    """
    rng = np.random.default_rng(2024)
    experiments, looks, batch, rate, alpha = 400, 25, 200, 0.1, 0.05
    xc = rng.binomial(batch, rate, (experiments, looks)).cumsum(axis=1)
    xt = rng.binomial(batch, rate, (experiments, looks)).cumsum(axis=1)
    naive = sequential = 0
    for e in range(experiments):
        test = SequentialTest(tau=0.05, alpha=alpha)
        naive_hit = False
        for k in range(looks):
            n = batch * (k + 1)
            c, t = ProportionStats(n, int(xc[e, k])), ProportionStats(n, int(xt[e, k]))
            naive_hit = naive_hit or two_proportion_ztest(c, t).p_value < alpha
            test.update(c, t)
        naive += naive_hit
        sequential += test.rejected
    tolerance = 2 * math.sqrt(alpha * (1 - alpha) / experiments)  # ~0.022
    assert sequential / experiments <= alpha + tolerance
    assert naive / experiments > 2 * alpha


def test_detects_a_real_effect_on_means() -> None:
    rng = np.random.default_rng(4)
    test = SequentialTest(tau=0.1)
    c = t = MeanStats.empty()
    for _ in range(50):
        c = c + MeanStats.from_values(rng.normal(10.0, 3.0, 200))
        t = t + MeanStats.from_values(rng.normal(10.4, 3.0, 200))
        if test.update(c, t).rejected:
            break
    assert test.rejected and test.looks < 50
