"""UCB1: optimism in the face of uncertainty."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.bandits.base import BanditPolicy
from vigil.bandits.epsilon_greedy import greedy_choices
from vigil.bandits.state import BanditState
from vigil.params import Rule

__all__ = ["UCB1"]


class UCB1(BanditPolicy):
    """UCB1 policy (Auer, Cesa-Bianchi and Fischer, 2002).

    Each arm is pulled once first (in arm order); then the arm with the highest upper
    confidence bound ``mean_i + exploration · sqrt(ln t / n_i)`` is chosen, ``t`` being
    the total pulls. ``exploration = sqrt(2)`` is the classic UCB1 bound for rewards in
    [0, 1]; smaller values explore less (no longer with the theoretical guarantee).
    The choice is deterministic apart from ties, which go to a random tied arm.

    UCB1's bound does not adapt to the variance of the rewards: on rare events (rates
    of a few percent) it keeps the arms nearly balanced for a long time, so expect it to
    beat a uniform split only slowly there; Thompson sampling adapts much faster.

    Parameters
    ----------
    arms
        Names of the arms (at least two).
    exploration
        Width multiplier of the confidence bound (> 0).
    seed
        Seed of the generator used to break ties.

    Examples
    --------
    >>> import numpy as np
    >>> env = np.random.default_rng(0)
    >>> rates = {"a": 0.2, "b": 0.5, "c": 0.3}
    >>> policy = UCB1(arms=["a", "b", "c"], seed=42)
    >>> for _ in range(2000):
    ...     arm = policy.pull()
    ...     _ = policy.update(arm, float(env.random() < rates[arm]))
    >>> dict(zip(policy.arms, policy.state.n.tolist()))
    {'a': 136, 'b': 1704, 'c': 160}

    References
    ----------
    Auer, P., Cesa-Bianchi, N., Fischer, P. (2002). Finite-time analysis of the multiarmed
    bandit problem. *Machine Learning* 47, 235-256.
    """

    _rules: ClassVar[dict[str, Rule]] = {"exploration": ("positive",)}

    def __init__(
        self, arms: Sequence[str], exploration: float = math.sqrt(2.0), *, seed: int | None = None
    ) -> None:
        self.exploration = exploration
        super().__init__(arms, seed=seed)

    def upper_bounds(self, state: BanditState) -> NDArray[np.float64]:
        """The UCB index of each arm (``inf`` for arms never pulled)."""
        t = max(state.total, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            bonus = self.exploration * np.sqrt(math.log(t) / state.n)
        return np.where(state.n > 0, state.means + bonus, np.inf)

    def _probabilities(self, state: BanditState) -> NDArray[np.float64]:
        """Deterministic apart from ties: 1 for the chosen arm, 0 for the others (split
        evenly between tied arms). Inverse propensity weighting does not apply to a log
        of such choices: an arm given 0 has no logged rewards to reweight."""
        k = len(self.arms)
        untried = np.flatnonzero(state.n == 0)
        if untried.size:
            first: NDArray[np.float64] = np.eye(k)[untried[0]]
            return first
        bounds = self.upper_bounds(state)
        best = bounds == bounds.max()
        out: NDArray[np.float64] = best / best.sum()
        return out

    def _select_batch(
        self, state: BanditState, rng: np.random.Generator, size: int
    ) -> NDArray[np.int64]:
        untried = np.flatnonzero(state.n == 0)
        if untried.size:
            return np.resize(untried, size).astype(np.int64)
        return greedy_choices(self.upper_bounds(state), rng, size)
