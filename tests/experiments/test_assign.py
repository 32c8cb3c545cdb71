"""Sticky assignment: uniform, independent across salts, proportional to the weights, and a
canary ramp that never moves a unit back."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from vigil.bandits import UCB1, EpsilonGreedy, ThompsonSampling
from vigil.errors import InvalidParameterError
from vigil.experiments.assign import (
    WeightedChoice,
    bandit_policy,
    bandit_state,
    canary_side,
    unit_id,
    unit_point,
)
from vigil.experiments.config import BanditTrafficPolicy, UnitKey
from vigil.experiments.state import VariantStats

UNITS = [f"user-{i}" for i in range(20_000)]
ALPHA = 1e-4  # strict: these are fixed hashes, a failure would mean a real bias


def points(salt: str) -> np.ndarray:
    return np.array([unit_point(salt, u) for u in UNITS])


def test_unit_points_are_uniform_and_stable() -> None:
    first = points("salt-a")
    assert stats.kstest(first, "uniform").pvalue > ALPHA
    assert np.array_equal(first, points("salt-a"))
    assert ((first >= 0) & (first < 1)).all()


def test_salts_split_the_same_units_independently() -> None:
    a, b = points("salt-a") < 0.5, points("salt-b") < 0.5
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    assert stats.chi2_contingency(table).pvalue > ALPHA
    # The salt is a key, not a prefix: moving a character between salt and id changes it.
    assert unit_point("ab", "c") != unit_point("a", "bc")


@pytest.mark.parametrize("weights", [{"a": 90, "b": 10}, {"a": 1, "b": 1, "c": 2}])
def test_weighted_split_matches_the_weights(weights: dict[str, float]) -> None:
    choice = WeightedChoice(weights)
    picks = [choice.pick(p) for p in points("split")]
    total = sum(weights.values())
    for name, weight in weights.items():
        share = weight / total
        observed = picks.count(name)
        assert stats.binomtest(observed, len(picks), share).pvalue > ALPHA, (name, observed)


def test_zero_weights_get_nothing_and_every_point_lands() -> None:
    choice = WeightedChoice({"a": 0, "b": 3, "c": 0, "d": 1})
    assert choice.names == ["b", "d"]
    assert choice.pick(0.0) == "b" and choice.pick(0.7499) == "b" and choice.pick(0.75) == "d"
    assert choice.pick(np.nextafter(1.0, 0.0)) == "d"
    with pytest.raises(InvalidParameterError, match="positive sum"):
        WeightedChoice({"a": 0, "b": 0})
    with pytest.raises(InvalidParameterError):
        WeightedChoice({"a": -1, "b": 2})


def test_stickiness_a_unit_keeps_its_variant() -> None:
    choice = WeightedChoice({"a": 50, "b": 30, "c": 20})
    first = {u: choice.pick(unit_point("s", u)) for u in UNITS[:500]}
    again = {u: choice.pick(unit_point("s", u)) for u in reversed(UNITS[:500])}
    assert first == again


def test_known_units_keep_the_points_and_variants_they_have_always_had() -> None:
    # Golden values, written down once: any change to the hash, the key, the id's encoding or
    # the intervals moves live users between variants, which no speed-up may do.
    assert [unit_point("pinned", u).hex() for u in ("user-42", "alice", "é-unit", "x" * 200)] == [
        "0x1.1c2db46aa24dbp-3",
        "0x1.7c732d9c7dfc1p-1",
        "0x1.f09ca4f2c8f3fp-3",
        "0x1.4a0664487fba6p-3",
    ]
    choice = WeightedChoice({"a": 50, "b": 30, "c": 20})
    picked = "".join(choice.pick(unit_point("pinned", f"user-{i}")) for i in range(40))
    assert picked == "abcaaabbbababbbbabaaccbaabacaacbaaabcbbc"


def test_a_rising_canary_never_moves_a_unit_back() -> None:
    pts = points("canary")
    previous = np.zeros(len(pts), dtype=bool)
    for percent in (5, 25, 50, 100):
        on = np.array([canary_side(p, percent) for p in pts])
        assert not (previous & ~on).any()  # every unit on the canary before is still on it
        assert stats.binomtest(int(on.sum()), len(pts), percent / 100).pvalue > ALPHA
        previous = on
    assert previous.all()
    assert not any(canary_side(p, 0) for p in pts)


def test_unit_id_header_then_field() -> None:
    key = UnitKey(header="X-User", field="user")
    body = {"instances": [], "user": "u-1"}
    assert unit_id(key, {b"x-user": b"h-7"}, body) == "h-7"
    assert body == {"instances": []}  # the field is removed even when the header wins
    assert unit_id(key, {}, {"user": 42}) == "42"
    assert unit_id(key, {}, {"user": ["not", "an", "id"]}) is None
    assert unit_id(key, {}, {"user": True}) is None
    assert unit_id(key, {}, {"user": ""}) is None
    assert unit_id(key, {}, [1, 2]) is None
    assert unit_id(UnitKey(header=None), {b"x-unit-id": b"u"}, {}) is None
    assert unit_id(UnitKey(), {b"x-unit-id": b"u"}, None) == "u"


def test_bandit_policies_from_configuration() -> None:
    arms = ["a", "b"]
    eg = bandit_policy(BanditTrafficPolicy(kind="epsilon_greedy", epsilon=0.2), arms)
    assert isinstance(eg, EpsilonGreedy) and eg.epsilon == 0.2
    assert isinstance(bandit_policy(BanditTrafficPolicy(kind="ucb1"), arms), UCB1)
    ts = bandit_policy(BanditTrafficPolicy(kind="thompson", reward="gaussian"), arms)
    assert isinstance(ts, ThompsonSampling) and ts.likelihood == "gaussian"


def test_bandit_state_counts_rewarded_requests_only() -> None:
    state = bandit_state(
        ["a", "b", "c"],
        {
            "a": VariantStats(requests=100, reward_count=10, reward_sum=3.0, reward_sumsq=3.0),
            "b": VariantStats(requests=50),
        },
    )
    assert state.arms == ("a", "b", "c")
    assert state.n.tolist() == [10, 0, 0]
    assert state.reward_sum.tolist() == [3.0, 0.0, 0.0]
    policy = bandit_policy(BanditTrafficPolicy(kind="ucb1"), ["a", "b", "c"])
    assert policy.select(state, np.random.default_rng(0)) in ("b", "c")  # untried arms first
