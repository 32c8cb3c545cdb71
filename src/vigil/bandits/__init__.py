"""Bandit policies for routing traffic between model variants.

One policy per module, in the shape of River: :class:`EpsilonGreedy`, :class:`UCB1`,
:class:`ThompsonSampling`. Every policy decides from the same additive per-arm state
(:class:`BanditState`: pulls, reward sum, sum of squares), which serving can keep in SQL
or Redis with atomic increments and merge across workers by addition. See
:mod:`vigil.bandits.base` for the split between parameters, state and decisions.
"""

from __future__ import annotations

from typing import Any

from vigil.bandits.base import BanditPolicy
from vigil.bandits.epsilon_greedy import EpsilonGreedy
from vigil.bandits.state import BanditState
from vigil.bandits.thompson import ThompsonSampling
from vigil.bandits.ucb import UCB1
from vigil.params import fail

__all__ = [
    "POLICIES",
    "UCB1",
    "BanditPolicy",
    "BanditState",
    "EpsilonGreedy",
    "ThompsonSampling",
    "policy_from_state",
]

#: Every policy by class name.
POLICIES: dict[str, type[BanditPolicy]] = {
    cls.__name__: cls for cls in (EpsilonGreedy, UCB1, ThompsonSampling)
}


def policy_from_state(data: dict[str, Any]) -> BanditPolicy:
    """Rebuild any policy saved by :meth:`BanditPolicy.state_dict`.

    >>> p = UCB1(arms=["a", "b"]).update("a", 1.0)
    >>> policy_from_state(p.state_dict()).state.n.tolist()
    [1, 0]
    """
    name = data.get("policy")
    if name not in POLICIES:
        fail("policy_from_state", "policy", "one of " + ", ".join(sorted(POLICIES)), name)
    return POLICIES[str(name)].from_state(data)
