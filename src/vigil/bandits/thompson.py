"""Thompson sampling: choose each arm with the posterior probability that it is best."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.bandits.base import BanditPolicy
from vigil.bandits.state import BanditState
from vigil.params import Rule, fail

PROPENSITY_DRAWS = 20_000
"""Posterior draws behind :meth:`ThompsonSampling.assignment_probabilities`."""

__all__ = ["PROPENSITY_DRAWS", "ThompsonSampling"]

PROPENSITY_DRAWS = 20_000
"""Posterior draws behind :meth:`ThompsonSampling.assignment_probabilities`."""


class ThompsonSampling(BanditPolicy):
    """Thompson sampling with a conjugate posterior per arm.

    For each request, draw one value from every arm's posterior of its mean reward and
    choose the arm with the largest draw; an arm is thus chosen with the probability that
    it is the best one, which balances exploration and exploitation on its own.

    ``likelihood="bernoulli"`` (rewards in [0, 1], e.g. clicks, conversions): the prior
    ``Beta(prior_alpha, prior_beta)`` gives the posterior
    ``Beta(prior_alpha + sum, prior_beta + n - sum)``. Fractional rewards in [0, 1] are
    accepted and counted as fractional successes.

    ``likelihood="gaussian"`` (any real reward, e.g. revenue): Normal rewards with
    *unknown* mean and variance under the conjugate Normal-Inverse-Gamma prior
    ``σ² ~ InvGamma(prior_shape, prior_scale)``, ``μ | σ² ~ Normal(prior_mean, σ²/prior_kappa)``.
    With ``κ = prior_kappa + n`` and ``m = (prior_kappa · prior_mean + sum) / κ`` the
    posterior has ``shape = prior_shape + n/2`` and
    ``scale = prior_scale + (sum_sq + prior_kappa · prior_mean² − κ m²) / 2``; a draw is
    ``σ² ~ InvGamma(shape, scale)`` then ``μ ~ Normal(m, σ²/κ)``. The defaults are weak
    for rewards of order one; put ``prior_scale`` near the reward variance you expect.

    Both posteriors depend on the arms' ``(n, sum, sum_sq)`` only, so the state stays
    additive and mergeable.

    Parameters
    ----------
    arms
        Names of the arms (at least two).
    likelihood
        ``"bernoulli"`` or ``"gaussian"``.
    prior_alpha, prior_beta
        Beta prior (> 0), Bernoulli only.
    prior_mean, prior_kappa, prior_shape, prior_scale
        Normal-Inverse-Gamma prior (``prior_kappa``, ``prior_shape``, ``prior_scale`` > 0),
        Gaussian only.
    seed
        Seed of the policy's own generator.

    Examples
    --------
    >>> import numpy as np
    >>> env = np.random.default_rng(0)
    >>> rates = {"a": 0.2, "b": 0.5, "c": 0.3}
    >>> policy = ThompsonSampling(arms=["a", "b", "c"], seed=42)
    >>> for _ in range(2000):
    ...     arm = policy.pull()
    ...     _ = policy.update(arm, float(env.random() < rates[arm]))
    >>> dict(zip(policy.arms, policy.state.n.tolist()))
    {'a': 36, 'b': 1918, 'c': 46}

    References
    ----------
    Thompson, W. R. (1933). On the likelihood that one unknown probability exceeds another
    in view of the evidence of two samples. *Biometrika* 25, 285-294.
    Russo, D. et al. (2018). A tutorial on Thompson sampling. *Foundations and Trends in
    Machine Learning* 11(1), 1-96.
    """

    _rules: ClassVar[dict[str, Rule]] = {
        "likelihood": ("choice", "bernoulli", "gaussian"),
        "prior_alpha": ("positive",),
        "prior_beta": ("positive",),
        "prior_mean": ("range", -1e300, 1e300),
        "prior_kappa": ("positive",),
        "prior_shape": ("positive",),
        "prior_scale": ("positive",),
    }

    def __init__(
        self,
        arms: Sequence[str],
        likelihood: str = "bernoulli",
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
        prior_mean: float = 0.0,
        prior_kappa: float = 1.0,
        prior_shape: float = 1.0,
        prior_scale: float = 1.0,
        *,
        seed: int | None = None,
    ) -> None:
        self.likelihood = likelihood
        self.prior_alpha = prior_alpha
        self.prior_beta = prior_beta
        self.prior_mean = prior_mean
        self.prior_kappa = prior_kappa
        self.prior_shape = prior_shape
        self.prior_scale = prior_scale
        super().__init__(arms, seed=seed)

    def _check_rewards(self, rewards: NDArray[np.float64]) -> None:
        super()._check_rewards(rewards)
        if self.likelihood == "bernoulli" and np.any((rewards < 0) | (rewards > 1)):
            bad = rewards[(rewards < 0) | (rewards > 1)][0]
            fail(type(self).__name__, "reward", "in [0, 1] for likelihood='bernoulli'", float(bad))

    def sample_means(
        self, state: BanditState, rng: np.random.Generator, size: int
    ) -> NDArray[np.float64]:
        """``size`` joint draws of every arm's posterior mean, shape ``(size, arms)``."""
        k = len(state.arms)
        if self.likelihood == "bernoulli":
            alpha = self.prior_alpha + state.reward_sum
            beta = self.prior_beta + state.n - state.reward_sum
            return rng.beta(alpha, beta, size=(size, k))
        kappa = self.prior_kappa + state.n
        mean = (self.prior_kappa * self.prior_mean + state.reward_sum) / kappa
        shape = self.prior_shape + state.n / 2.0
        spread = state.reward_sum_sq + self.prior_kappa * self.prior_mean**2 - kappa * mean**2
        scale = self.prior_scale + np.maximum(spread, 0.0) / 2.0
        sigma2 = scale / rng.gamma(shape, 1.0, size=(size, k))
        return rng.normal(mean, np.sqrt(sigma2 / kappa))

    def _probabilities(self, state: BanditState) -> NDArray[np.float64]:
        """Estimated by :data:`PROPENSITY_DRAWS` joint draws of the posteriors (a fixed
        seed, so the same state gives the same answer): an arm's share of the draws it
        wins, with half a win added to every arm so no arm that can win gets exactly 0.
        The standard error is at most ``0.5 / sqrt(PROPENSITY_DRAWS)`` = 0.0035."""
        wins = self.sample_means(state, np.random.default_rng(0), PROPENSITY_DRAWS).argmax(axis=1)
        counts = np.bincount(wins, minlength=len(self.arms)) + 0.5
        out: NDArray[np.float64] = counts / counts.sum()
        return out

    def _select_batch(
        self, state: BanditState, rng: np.random.Generator, size: int
    ) -> NDArray[np.int64]:
        choices: NDArray[np.int64] = self.sample_means(state, rng, size).argmax(axis=1)
        return choices
