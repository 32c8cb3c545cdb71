"""Per-arm sufficient statistics shared by every bandit policy: additive, hence mergeable.

Every policy here decides from three numbers per arm: the number of pulls ``n``, the sum
of rewards ``sum`` and the sum of squared rewards ``sum_sq`` (Thompson's Beta posterior is
``Beta(prior_alpha + sum, prior_beta + n - sum)``, UCB1 and epsilon-greedy need the mean).
Those numbers are plain sums, which is what makes shared state cheap:

- in a SQL row or a Redis hash they are updated with atomic increments
  (``UPDATE ... SET n = n + 1, sum = sum + :r``; ``HINCRBY``/``HINCRBYFLOAT``), no lock;
- a worker can buffer a delta state and flush it; ``a + b`` (:meth:`BanditState.merge`)
  is exactly the state of both streams together, whatever the order.

:meth:`BanditState.to_dict` gives ``{"arms": {name: {"n", "sum", "sum_sq"}}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vigil.params import check_count, check_finite, fail

__all__ = ["BanditState"]


@dataclass(eq=False)
class BanditState:
    """Pull counts, reward sums and sums of squares per arm, in a fixed arm order.

    >>> s = BanditState.empty(["a", "b"])
    >>> s.record("b", 1.0).record("b", 0.0).record("a", 1.0)
    BanditState(arms=('a', 'b'), n=[1, 2], sum=[1.0, 1.0], sum_sq=[1.0, 1.0])
    >>> (s + s).to_dict()["arms"]["b"]
    {'n': 4, 'sum': 2.0, 'sum_sq': 2.0}
    """

    arms: tuple[str, ...]
    n: NDArray[np.int64] = field(repr=False)
    reward_sum: NDArray[np.float64] = field(repr=False)
    reward_sum_sq: NDArray[np.float64] = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"BanditState(arms={self.arms!r}, n={self.n.tolist()}, sum={self.reward_sum.tolist()}, "
            f"sum_sq={self.reward_sum_sq.tolist()})"
        )

    @classmethod
    def empty(cls, arms: Sequence[str]) -> BanditState:
        """A state with no pulls yet."""
        k = len(arms)
        return cls(tuple(arms), np.zeros(k, np.int64), np.zeros(k), np.zeros(k))

    @property
    def total(self) -> int:
        """Pulls over all arms."""
        return int(self.n.sum())

    @property
    def means(self) -> NDArray[np.float64]:
        """Mean reward per arm (NaN for arms never pulled)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, self.reward_sum / np.maximum(self.n, 1), np.nan)

    def index(self, arm: str) -> int:
        """Position of ``arm``; an unknown arm is an :class:`InvalidParameterError`."""
        try:
            return self.arms.index(arm)
        except ValueError:
            fail("BanditState", "arm", f"one of {list(self.arms)}", arm)

    def record(self, arm: str, reward: float) -> BanditState:
        """Add one observed reward for ``arm`` (in place); returns ``self``."""
        i = self.index(arm)
        r = check_finite("BanditState", "reward", reward)
        self.n[i] += 1
        self.reward_sum[i] += r
        self.reward_sum_sq[i] += r * r
        return self

    def record_batch(self, arm_indices: ArrayLike, rewards: ArrayLike) -> BanditState:
        """Add many rewards at once (arm positions, rewards); returns ``self``."""
        idx = np.asarray(arm_indices, dtype=np.int64)
        r = np.asarray(rewards, dtype=float)
        if idx.shape != r.shape or (idx.size and (idx.min() < 0 or idx.max() >= len(self.arms))):
            fail(
                "BanditState",
                "arm_indices",
                f"positions in [0, {len(self.arms)}) matching rewards",
                idx.shape,
            )
        if not np.all(np.isfinite(r)):
            fail("BanditState", "rewards", "all finite", "non-finite values")
        k = len(self.arms)
        self.n += np.bincount(idx, minlength=k)
        self.reward_sum += np.bincount(idx, weights=r, minlength=k)
        self.reward_sum_sq += np.bincount(idx, weights=r * r, minlength=k)
        return self

    def merge(self, other: BanditState) -> BanditState:
        """The state of both streams together (a new object)."""
        if other.arms != self.arms:
            fail(
                "BanditState",
                "other.arms",
                f"the same arms in the same order {list(self.arms)}",
                list(other.arms),
            )
        return BanditState(
            self.arms,
            self.n + other.n,
            self.reward_sum + other.reward_sum,
            self.reward_sum_sq + other.reward_sum_sq,
        )

    __add__ = merge

    def copy(self) -> BanditState:
        """An independent copy."""
        return BanditState(
            self.arms, self.n.copy(), self.reward_sum.copy(), self.reward_sum_sq.copy()
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BanditState):
            return NotImplemented
        return (
            self.arms == other.arms
            and np.array_equal(self.n, other.n)
            and np.array_equal(self.reward_sum, other.reward_sum)
            and np.array_equal(self.reward_sum_sq, other.reward_sum_sq)
        )

    def to_dict(self) -> dict[str, Any]:
        """``{"arms": {name: {"n": int, "sum": float, "sum_sq": float}}}`` in arm order."""
        return {
            "arms": {
                arm: {
                    "n": int(self.n[i]),
                    "sum": float(self.reward_sum[i]),
                    "sum_sq": float(self.reward_sum_sq[i]),
                }
                for i, arm in enumerate(self.arms)
            }
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BanditState:
        """Rebuild a state from :meth:`to_dict` output (e.g. a Redis hash read back)."""
        arms = data.get("arms") if isinstance(data, Mapping) else None
        if not isinstance(arms, Mapping) or not arms:
            fail("BanditState", "data", 'a mapping {"arms": {name: {"n", "sum", "sum_sq"}}}', data)
        names = tuple(str(a) for a in arms)
        n = np.array(
            [check_count("BanditState", f"{a}.n", arms[a].get("n", 0)) for a in arms], np.int64
        )
        s = np.array(
            [check_finite("BanditState", f"{a}.sum", arms[a].get("sum", 0.0)) for a in arms]
        )
        sq = np.array(
            [check_finite("BanditState", f"{a}.sum_sq", arms[a].get("sum_sq", 0.0)) for a in arms]
        )
        return cls(names, n, s, sq)
