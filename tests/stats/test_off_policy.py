"""Off-policy estimators on simulated logs whose target-policy value is known exactly:
unbiased, intervals that cover the truth as often as they claim, doubly robust when either
part is right."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from vigil.errors import InvalidParameterError
from vigil.stats.off_policy import (
    OffPolicyEstimate,
    doubly_robust_estimate,
    ips_estimate,
    snips_estimate,
)

ARMS = 3


def _mean_reward(context: np.ndarray) -> np.ndarray:
    """True conversion rate of each arm for each request (rows × arms): depends on a
    context the router cannot see, like a user's taste."""
    base = np.array([0.10, 0.18, 0.14])
    return np.clip(base + 0.08 * np.outer(context, [1.0, -1.0, 0.5]), 0.01, 0.99)


@dataclass
class Log:
    rewards: np.ndarray
    propensity: np.ndarray  # the logging policy's probability of the logged arm
    target: np.ndarray  # the target policy's probability of the logged arm
    model_logged: np.ndarray  # a reward model's prediction for the logged arm
    model_target: np.ndarray  # its expected reward under the target policy


TARGET = np.array([0.1, 0.7, 0.2])
"""The policy evaluated: mostly arm 1."""


def true_value() -> float:
    # The context is uniform on [-1, 1] and enters the rates linearly (no clipping is
    # reached), so the policy value is the base rates weighted by the target policy.
    return float(TARGET @ np.array([0.10, 0.18, 0.14]))


def simulate(rng: np.random.Generator, n: int, model_error: float = 0.0) -> Log:
    """Requests routed by epsilon-greedy (epsilon 0.3, greedy arm 0), the router's
    choice and its probability logged with each reward."""
    context = rng.uniform(-1, 1, n)
    logging = np.full(ARMS, 0.3 / ARMS)
    logging[0] += 0.7
    arm = rng.choice(ARMS, size=n, p=logging)
    rates = _mean_reward(context)
    rewards = (rng.random(n) < rates[np.arange(n), arm]).astype(float)
    # A context-free reward model: each arm's base rate, plus a deliberate error.
    model = np.array([0.10, 0.18, 0.14]) + model_error
    return Log(rewards, logging[arm], TARGET[arm], model[arm], np.full(n, TARGET @ model))


ESTIMATORS: dict[str, Callable[[Log], OffPolicyEstimate]] = {
    "ips": lambda log: ips_estimate(log.rewards, log.propensity, log.target),
    "snips": lambda log: snips_estimate(log.rewards, log.propensity, log.target),
    "dr": lambda log: doubly_robust_estimate(
        log.rewards, log.propensity, log.target, log.model_logged, log.model_target
    ),
    "dr-wrong-model": lambda log: doubly_robust_estimate(
        log.rewards, log.propensity, log.target, log.model_logged + 0.05, log.model_target + 0.05
    ),
}


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_unbiased_and_calibrated_on_simulated_logs(name: str) -> None:
    rng = np.random.default_rng(list(ESTIMATORS).index(name))
    runs, truth = 400, true_value()
    estimates = [ESTIMATORS[name](simulate(rng, 3000)) for _ in range(runs)]
    values = np.array([e.value for e in estimates])
    # Unbiased: the mean of the estimates is within 3.5 standard errors of the truth (SNIPS
    # is biased by O(1/n), far below that here).
    assert abs(values.mean() - truth) < 3.5 * values.std(ddof=1) / np.sqrt(runs)
    # The 95 % intervals cover the truth about 95 % of the time.
    covered = np.mean([e.low <= truth <= e.high for e in estimates])
    assert abs(covered - 0.95) < 3.5 * np.sqrt(0.95 * 0.05 / runs), covered


def test_a_good_reward_model_narrows_the_interval() -> None:
    log = simulate(np.random.default_rng(1), 20_000)
    ips, dr = ESTIMATORS["ips"](log), ESTIMATORS["dr"](log)
    assert dr.high - dr.low < ips.high - ips.low
    # Rewards far from zero (revenue, not a click): IPS's width is mostly the weights'
    # spread times the reward's level, which the reward model takes out.
    revenue = Log(
        log.rewards + 10, log.propensity, log.target, log.model_logged + 10, log.model_target + 10
    )
    ips, dr = ESTIMATORS["ips"](revenue), ESTIMATORS["dr"](revenue)
    assert dr.high - dr.low < 0.1 * (ips.high - ips.low)
    assert dr.low <= true_value() + 10 <= dr.high


def test_evaluating_the_logging_policy_is_the_plain_mean() -> None:
    log = simulate(np.random.default_rng(2), 5000)
    e = ips_estimate(log.rewards, log.propensity, log.propensity)
    assert e.value == pytest.approx(log.rewards.mean(), rel=1e-12)
    assert e.effective_n == pytest.approx(5000)
    s = snips_estimate(log.rewards, log.propensity, log.propensity)
    assert s.value == pytest.approx(log.rewards.mean(), rel=1e-12)


def test_effective_sample_size_shrinks_with_the_weights() -> None:
    log = simulate(np.random.default_rng(3), 10_000)
    e = ips_estimate(log.rewards, log.propensity, log.target)
    w = log.target / log.propensity
    assert e.effective_n == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert e.effective_n < 0.5 * e.n
    assert e.to_dict()["method"] == "ips"


@pytest.mark.parametrize(
    "call",
    [
        lambda: ips_estimate([1.0, 0.0], [0.5, 0.0], [1.0, 0.0]),  # a zero propensity
        lambda: ips_estimate([1.0, 0.0], [0.5, 1.2], [1.0, 0.0]),
        lambda: ips_estimate([1.0, 0.0], [0.5, 0.5], [1.0, -0.1]),
        lambda: ips_estimate([1.0, np.nan], [0.5, 0.5], [1.0, 0.0]),
        lambda: ips_estimate([1.0, 0.0, 1.0], [0.5, 0.5], [1.0, 0.0]),
        lambda: ips_estimate([1.0], [0.5], [1.0]),
        lambda: snips_estimate([1.0, 0.0], [0.5, 0.5], [0.0, 0.0]),
        lambda: ips_estimate([1.0, 0.0], [0.5, 0.5], [1.0, 0.0], level=0.0),
    ],
)
def test_bad_logs_are_parameter_errors(call: Callable[[], object]) -> None:
    with pytest.raises(InvalidParameterError):
        call()
