"""Epsilon-greedy: exploit the best mean, explore uniformly with probability epsilon."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.bandits.base import BanditPolicy
from vigil.bandits.state import BanditState
from vigil.params import Rule

__all__ = ["EpsilonGreedy"]


def greedy_choices(
    scores: NDArray[np.float64], rng: np.random.Generator, size: int
) -> NDArray[np.int64]:
    """``size`` picks of the highest score, ties broken uniformly at random."""
    best = np.flatnonzero(scores == scores.max())
    if best.size == 1:
        return np.full(size, best[0], dtype=np.int64)
    return rng.choice(best, size=size).astype(np.int64)


class EpsilonGreedy(BanditPolicy):
    """Epsilon-greedy policy.

    With probability ``epsilon_t`` a request goes to an arm drawn uniformly at random;
    otherwise to the arm with the highest mean reward (ties at random). Arms never pulled
    count as best, so each arm is tried early. With ``decay > 0`` exploration shrinks as
    ``epsilon_t = epsilon / (1 + decay · t)`` with ``t`` the total pulls so far: a ``1/t``
    schedule keeps exploring forever but ever more rarely, which gives logarithmic regret
    when ``decay`` is matched to the gap between arms.

    Parameters
    ----------
    arms
        Names of the arms (at least two).
    epsilon
        Exploration probability at the start, in [0, 1].
    decay
        Exploration decay rate (>= 0); 0 keeps ``epsilon`` constant.
    seed
        Seed of the policy's own generator (used by :meth:`pull`).

    Examples
    --------
    >>> import numpy as np
    >>> env = np.random.default_rng(0)
    >>> rates = {"a": 0.2, "b": 0.5, "c": 0.3}
    >>> policy = EpsilonGreedy(arms=["a", "b", "c"], epsilon=0.1, seed=42)
    >>> for _ in range(2000):
    ...     arm = policy.pull()
    ...     _ = policy.update(arm, float(env.random() < rates[arm]))
    >>> dict(zip(policy.arms, policy.state.n.tolist()))
    {'a': 60, 'b': 1857, 'c': 83}
    """

    _rules: ClassVar[dict[str, Rule]] = {"epsilon": ("range", 0.0, 1.0), "decay": ("non-negative",)}

    def __init__(
        self,
        arms: Sequence[str],
        epsilon: float = 0.1,
        decay: float = 0.0,
        *,
        seed: int | None = None,
    ) -> None:
        self.epsilon = epsilon
        self.decay = decay
        super().__init__(arms, seed=seed)

    def current_epsilon(self, state: BanditState) -> float:
        """The exploration probability after ``state.total`` pulls."""
        return self.epsilon / (1.0 + self.decay * state.total)

    def _probabilities(self, state: BanditState) -> NDArray[np.float64]:
        """Exact: ``epsilon_t / k`` for every arm, plus ``(1 - epsilon_t) / |best|`` for
        each arm tied for the best mean."""
        scores = np.where(state.n > 0, state.means, np.inf)
        best = scores == scores.max()
        eps = self.current_epsilon(state)
        out: NDArray[np.float64] = eps / len(self.arms) + (1 - eps) * best / best.sum()
        return out

    def _select_batch(
        self, state: BanditState, rng: np.random.Generator, size: int
    ) -> NDArray[np.int64]:
        scores = np.where(state.n > 0, state.means, np.inf)
        choices = greedy_choices(scores, rng, size)
        explore = rng.random(size) < self.current_epsilon(state)
        n_explore = int(explore.sum())
        if n_explore:
            choices[explore] = rng.integers(0, len(self.arms), n_explore)
        return choices
