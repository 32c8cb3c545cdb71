"""The bandit policy base: parameters in ``__init__``, decisions from additive arm state.

A policy is split the way serving needs it:

- **parameters** (arms, epsilon, priors, seed) are stored by ``__init__`` and nothing else,
  checked in one place (:meth:`BanditPolicy._validate`) with one message template;
- **state** is a :class:`~vigil.bandits.state.BanditState` of per-arm sums that can live in
  SQL or Redis and be merged by addition;
- **decisions** are :meth:`select` ``(state, rng) -> arm``, a pure function of a state
  snapshot and a random generator, so any worker can decide from the shared counters.

For a single process the River-style :meth:`pull` / :meth:`update` pair keeps its own
state and a generator seeded from ``seed``. :meth:`pull_batch` / :meth:`update_batch`
decide and learn many requests at once from the same state snapshot, which is what a
server that refreshes shared counters every few requests does; they use the very same
selection code as :meth:`select`.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vigil.bandits.state import BanditState
from vigil.params import Rule, check_count, check_rules, fail

__all__ = ["BanditPolicy", "Rule"]


class BanditPolicy(abc.ABC):
    """Base of every policy. Subclasses declare ``_rules`` and implement ``_select_batch``."""

    _rules: ClassVar[dict[str, Rule]] = {}

    def __init__(self, arms: Sequence[str], *, seed: int | None = None) -> None:
        self.arms = tuple(arms) if not isinstance(arms, str) else arms
        self.seed = seed
        self._validate()
        self._rng = np.random.default_rng(seed)
        self.state = BanditState.empty(self.arms)

    # -- parameters -------------------------------------------------------------------

    def _validate(self) -> None:
        """Check every parameter with the one message template of :mod:`vigil.params`."""
        owner = type(self).__name__
        if isinstance(self.arms, str) or len(self.arms) < 2:
            fail(owner, "arms", "a sequence of at least 2 arm names", self.arms)
        if len(set(self.arms)) != len(self.arms) or not all(
            isinstance(a, str) and a for a in self.arms
        ):
            fail(owner, "arms", "distinct non-empty strings", self.arms)
        if self.seed is not None:
            check_count(owner, "seed", self.seed)
        check_rules(owner, {name: getattr(self, name) for name in self._rules}, self._rules)

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, as passed (arms as a tuple)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def clone(self) -> BanditPolicy:
        """A fresh policy with the same parameters and no state."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- deciding ---------------------------------------------------------------------

    @abc.abstractmethod
    def _select_batch(
        self, state: BanditState, rng: np.random.Generator, size: int
    ) -> NDArray[np.int64]:
        """Positions of the arms chosen for ``size`` requests from one state snapshot."""

    def _check_state(self, state: BanditState) -> None:
        if state.arms != self.arms:
            fail(
                type(self).__name__,
                "state.arms",
                f"the policy's arms {list(self.arms)}",
                list(state.arms),
            )

    def select(self, state: BanditState, rng: np.random.Generator) -> str:
        """Choose an arm from a state snapshot; a pure function of ``state`` and ``rng``."""
        self._check_state(state)
        return self.arms[int(self._select_batch(state, rng, 1)[0])]

    def select_batch(
        self, state: BanditState, rng: np.random.Generator, size: int
    ) -> NDArray[np.int64]:
        """Choose arm positions for ``size`` requests from one state snapshot."""
        self._check_state(state)
        size = check_count(type(self).__name__, "size", size, minimum=1)
        return self._select_batch(state, rng, size)

    def assignment_probabilities(self, state: BanditState) -> NDArray[np.float64]:
        """The probability :meth:`select` gives each arm on ``state`` (the *propensity*
        off-policy evaluation reweights by: :mod:`vigil.stats.off_policy`)."""
        self._check_state(state)
        return self._probabilities(state)

    @abc.abstractmethod
    def _probabilities(self, state: BanditState) -> NDArray[np.float64]:
        """Each arm's chance of being selected from one state snapshot."""

    def pull(self) -> str:
        """Choose an arm from the policy's own state and seeded generator."""
        return self.select(self.state, self._rng)

    def pull_batch(self, size: int) -> NDArray[np.int64]:
        """Choose ``size`` arm positions at once from the policy's own state."""
        return self.select_batch(self.state, self._rng, size)

    # -- learning ---------------------------------------------------------------------

    def _check_rewards(self, rewards: NDArray[np.float64]) -> None:
        """Rewards must be finite; policies whose model restricts them more extend this."""
        if not np.all(np.isfinite(rewards)):
            fail(
                type(self).__name__, "reward", "a finite number", rewards[~np.isfinite(rewards)][0]
            )

    def update(self, arm: str, reward: float) -> BanditPolicy:
        """Learn one reward for ``arm``; returns ``self``."""
        self._check_rewards(np.array([reward], dtype=float))
        self.state.record(arm, reward)
        return self

    def update_batch(self, arm_indices: ArrayLike, rewards: ArrayLike) -> BanditPolicy:
        """Learn many rewards at once (arm positions as from :meth:`pull_batch`)."""
        r = np.asarray(rewards, dtype=float)
        self._check_rewards(r)
        self.state.record_batch(arm_indices, r)
        return self

    # -- persistence ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Policy name, parameters and arm state as a JSON-ready dict.

        The generator's position is not saved: a restored policy reseeds from ``seed``.
        """
        params = self.get_params()
        params["arms"] = list(self.arms)
        return {"policy": type(self).__name__, "params": params, "state": self.state.to_dict()}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> BanditPolicy:
        """Rebuild a policy saved by :meth:`state_dict`."""
        if data.get("policy") != cls.__name__:
            fail(cls.__name__, "policy", f"{cls.__name__!r}", data.get("policy"))
        policy = cls(**data["params"])
        state = BanditState.from_dict(data["state"])
        policy._check_state(state)
        policy.state = state
        return policy
