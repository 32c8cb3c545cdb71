"""Policy behaviour on seeded Bernoulli and Gaussian arms, and state details."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from vigil.bandits import UCB1, BanditState, EpsilonGreedy, ThompsonSampling
from vigil.errors import InvalidParameterError

RATES = np.array([0.30, 0.45, 0.60])
ARMS = ("low", "mid", "high")


def run(policy: ThompsonSampling | UCB1, pulls: int, seed: int) -> np.ndarray:
    env = np.random.default_rng(seed)
    for _ in range(pulls):
        arm = policy.pull()
        policy.update(arm, float(env.random() < RATES[ARMS.index(arm)]))
    return policy.state.n


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "make",
    [
        lambda s: ThompsonSampling(arms=ARMS, seed=s),
        lambda s: UCB1(arms=ARMS, seed=s),
    ],
    ids=["thompson", "ucb1"],
)
def test_best_arm_gets_most_pulls(make: object, seed: int) -> None:
    # Not epsilon-greedy: it can lock onto a good-but-not-best arm (seed 0 does, on "mid");
    # that weakness is what the benchmark shows.
    policy = make(seed)  # type: ignore[operator]
    n = run(policy, 1500, seed)
    assert n.argmax() == 2
    assert n[2] / n.sum() > 0.6


def test_thompson_gaussian_finds_the_highest_mean() -> None:
    policy = ThompsonSampling(arms=ARMS, likelihood="gaussian", prior_scale=4.0, seed=3)
    env = np.random.default_rng(3)
    means = {"low": 1.0, "mid": 1.5, "high": 2.0}
    for _ in range(1500):
        arm = policy.pull()
        policy.update(arm, float(env.normal(means[arm], 2.0)))
    assert policy.state.n.argmax() == 2 and policy.state.n[2] > 900


def test_thompson_posteriors_match_scipy() -> None:
    state = BanditState.empty(["a", "b"]).record_batch([0, 0, 0, 1, 1], [1, 0, 1, 0, 0])
    draws = ThompsonSampling(arms=["a", "b"], prior_alpha=2, prior_beta=3).sample_means(
        state, np.random.default_rng(0), 100_000
    )
    # Posterior of a: Beta(2 + 2, 3 + 1); of b: Beta(2 + 0, 3 + 2).
    assert sps.kstest(draws[:, 0], sps.beta(4, 4).cdf).pvalue > 0.01
    assert sps.kstest(draws[:, 1], sps.beta(2, 5).cdf).pvalue > 0.01

    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, 50)
    state = BanditState.empty(["a", "b"]).record_batch(np.zeros(50, int), x)
    g = ThompsonSampling(
        arms=["a", "b"],
        likelihood="gaussian",
        prior_mean=0.0,
        prior_kappa=1.0,
        prior_shape=2.0,
        prior_scale=2.0,
    )
    mu = g.sample_means(state, np.random.default_rng(2), 100_000)[:, 0]
    # NIG marginal of the mean: Student t with 2·shape df, location m, scale sqrt(scale/(shape·κ)).
    kappa, m = 51.0, x.sum() / 51.0
    shape = 2.0 + 25.0
    scale = 2.0 + 0.5 * (np.dot(x, x) - kappa * m * m)
    ref = sps.t(df=2 * shape, loc=m, scale=math.sqrt(scale / (shape * kappa)))
    assert sps.kstest(mu, ref.cdf).pvalue > 0.01


def test_ucb_pulls_each_arm_once_then_uses_bounds() -> None:
    policy = UCB1(arms=ARMS)
    first = []
    for reward in (0.0, 1.0, 0.0):
        first.append(policy.pull())
        policy.update(first[-1], reward)
    assert first == list(ARMS)
    bounds = policy.upper_bounds(policy.state)
    assert bounds == pytest.approx(
        [0 + math.sqrt(2 * math.log(3)), 1 + math.sqrt(2 * math.log(3)), math.sqrt(2 * math.log(3))]
    )
    assert policy.pull() == "mid"
    assert UCB1(arms=ARMS).pull_batch(5).tolist() == [0, 1, 2, 0, 1]


def test_epsilon_decay_and_pure_exploration() -> None:
    policy = EpsilonGreedy(arms=ARMS, epsilon=0.5, decay=0.01)
    policy.update_batch([0] * 100 + [1] * 100, [0.0] * 100 + [1.0] * 100)
    assert policy.current_epsilon(policy.state) == pytest.approx(0.5 / 3)
    explorer = EpsilonGreedy(arms=ARMS, epsilon=1.0, seed=0)
    explorer.update_batch([0, 1, 2], [0.0, 0.0, 1.0])
    counts = np.bincount(explorer.pull_batch(30_000), minlength=3)
    assert sps.chisquare(counts).pvalue > 0.001
    greedy = EpsilonGreedy(arms=ARMS, epsilon=0.0, seed=0)
    greedy.update_batch([0, 1, 2], [0.0, 0.0, 1.0])
    assert set(greedy.pull_batch(100).tolist()) == {2}


def test_bernoulli_thompson_rejects_rewards_outside_unit_interval() -> None:
    policy = ThompsonSampling(arms=ARMS)
    with pytest.raises(InvalidParameterError, match="reward must be in \\[0, 1\\]"):
        policy.update("low", 2.0)
    ThompsonSampling(arms=ARMS, likelihood="gaussian").update("low", 2.0)


def test_state_dict_format_and_validation() -> None:
    s = BanditState.empty(["a", "b"]).record("a", 2.0)
    assert s.to_dict() == {
        "arms": {"a": {"n": 1, "sum": 2.0, "sum_sq": 4.0}, "b": {"n": 0, "sum": 0.0, "sum_sq": 0.0}}
    }
    assert BanditState.from_dict(s.to_dict()) == s
    assert s.means[0] == 2.0 and math.isnan(s.means[1])
    with pytest.raises(InvalidParameterError, match=r"a\.n must be a whole number"):
        BanditState.from_dict({"arms": {"a": {"n": -1, "sum": 0, "sum_sq": 0}}})
    with pytest.raises(InvalidParameterError, match=r"other\.arms must be"):
        s.merge(BanditState.empty(["b", "a"]))
