"""One shared set of checks run on every bandit policy (River-style conformance)."""

from __future__ import annotations

import inspect
import json
from typing import Any

import numpy as np
import pytest

import vigil.bandits
from vigil.bandits import POLICIES, BanditPolicy, BanditState, policy_from_state
from vigil.errors import InvalidParameterError

ARMS = ("a", "b", "c")

# Invalid parameters per policy; the base checks apply to all of them.
INVALID: dict[str, list[dict[str, Any]]] = {
    "EpsilonGreedy": [{"epsilon": -0.1}, {"epsilon": 1.5}, {"decay": -1.0}, {"epsilon": "x"}],
    "UCB1": [{"exploration": 0.0}, {"exploration": -1.0}, {"exploration": float("nan")}],
    "ThompsonSampling": [
        {"likelihood": "poisson"},
        {"prior_alpha": 0.0},
        {"prior_beta": -1.0},
        {"likelihood": "gaussian", "prior_kappa": 0.0},
        {"prior_shape": 0.0},
        {"prior_scale": -2.0},
    ],
}
BASE_INVALID: list[dict[str, Any]] = [
    {"arms": ["only"]},
    {"arms": "ab"},
    {"arms": ["a", "a"]},
    {"arms": ["a", ""]},
    {"arms": ARMS, "seed": -1},
]


def all_policies() -> list[type[BanditPolicy]]:
    found = {
        obj
        for _, obj in inspect.getmembers(vigil.bandits, inspect.isclass)
        if issubclass(obj, BanditPolicy) and not inspect.isabstract(obj)
    }
    assert found == set(POLICIES.values())
    return sorted(found, key=lambda c: c.__name__)


POLICY_CLASSES = all_policies()


def play(policy: BanditPolicy, steps: int = 60) -> list[str]:
    env = np.random.default_rng(0)
    chosen = []
    for _ in range(steps):
        arm = policy.pull()
        chosen.append(arm)
        policy.update(arm, float(env.random() < {"a": 0.2, "b": 0.6, "c": 0.4}[arm]))
    return chosen


@pytest.fixture(params=POLICY_CLASSES, ids=lambda c: c.__name__)
def cls(request: pytest.FixtureRequest) -> type[BanditPolicy]:
    policy_cls: type[BanditPolicy] = request.param
    return policy_cls


def test_init_stores_parameters_only_and_no_mutable_defaults(cls: type[BanditPolicy]) -> None:
    for p in inspect.signature(cls.__init__).parameters.values():
        assert not isinstance(p.default, list | dict | set), p.name
    policy = cls(arms=ARMS, seed=3)
    assert policy.get_params()["arms"] == ARMS and policy.get_params()["seed"] == 3
    assert policy.state == BanditState.empty(ARMS)


def test_clone_and_repr(cls: type[BanditPolicy]) -> None:
    policy = cls(arms=ARMS, seed=5)
    play(policy)
    twin = policy.clone()
    assert type(twin) is cls and twin.get_params() == policy.get_params()
    assert twin.state.total == 0 and policy.state.total == 60
    assert repr(policy).startswith(f"{cls.__name__}(arms=('a', 'b', 'c')")
    assert "seed=5" in repr(policy)
    assert eval(repr(policy), {cls.__name__: cls}).get_params() == policy.get_params()


def test_seeding_is_deterministic(cls: type[BanditPolicy]) -> None:
    assert play(cls(arms=ARMS, seed=11)) == play(cls(arms=ARMS, seed=11))
    a, b = cls(arms=ARMS, seed=1), cls(arms=ARMS, seed=1)
    assert a.pull_batch(50).tolist() == b.pull_batch(50).tolist()


def test_select_is_pure(cls: type[BanditPolicy]) -> None:
    policy = cls(arms=ARMS)
    play(policy)
    snapshot = policy.state.copy()
    first = [policy.select(snapshot, np.random.default_rng(9)) for _ in range(3)]
    assert len(set(first)) == 1  # same state, same generator state: same arm
    assert snapshot == policy.state


def test_state_round_trip_through_json(cls: type[BanditPolicy]) -> None:
    policy = cls(arms=ARMS, seed=2)
    play(policy)
    data = json.loads(json.dumps(policy.state_dict()))
    for restored in (cls.from_state(data), policy_from_state(data)):
        assert restored.get_params() == policy.get_params()
        assert restored.state == policy.state
        rng1, rng2 = np.random.default_rng(4), np.random.default_rng(4)
        assert restored.select_batch(restored.state, rng1, 20).tolist() == (
            policy.select_batch(policy.state, rng2, 20).tolist()
        )


def test_merged_shards_equal_one_stream(cls: type[BanditPolicy]) -> None:
    whole, left, right = cls(arms=ARMS), cls(arms=ARMS), cls(arms=ARMS)
    rewards = [("a", 0.0), ("b", 1.0), ("c", 1.0), ("b", 0.0), ("a", 1.0)]
    for i, (arm, r) in enumerate(rewards):
        whole.update(arm, r)
        (left if i % 2 else right).update(arm, r)
    assert left.state + right.state == whole.state


@pytest.mark.parametrize("bad", BASE_INVALID)
def test_invalid_base_parameters(cls: type[BanditPolicy], bad: dict[str, Any]) -> None:
    kwargs = {"arms": ARMS, **bad}
    with pytest.raises(InvalidParameterError, match=rf"^{cls.__name__}: (arms|seed) must be"):
        cls(**kwargs)


def test_invalid_policy_parameters(cls: type[BanditPolicy]) -> None:
    for bad in INVALID[cls.__name__]:
        with pytest.raises(ValueError, match=rf"^{cls.__name__}: \w+ must be .*; got ") as info:
            cls(arms=ARMS, **bad)
        assert isinstance(info.value, InvalidParameterError) and info.value.status == 422


def test_bad_updates_rejected(cls: type[BanditPolicy]) -> None:
    policy = cls(arms=ARMS)
    with pytest.raises(InvalidParameterError, match="arm must be one of"):
        policy.update("z", 1.0)
    with pytest.raises(InvalidParameterError, match="reward must be a finite number"):
        policy.update("a", float("nan"))
    with pytest.raises(InvalidParameterError, match=r"state\.arms must be"):
        policy.select(BanditState.empty(["x", "y"]), np.random.default_rng(0))
    assert policy.state.total == 0


@pytest.mark.parametrize("cls", all_policies(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("gaussian", [False, True], ids=["bernoulli", "gaussian"])
def test_assignment_probabilities_match_the_choices(
    cls: type[BanditPolicy], gaussian: bool
) -> None:
    """The propensity logged for off-policy evaluation is the share of choices each arm
    gets from one snapshot: exact for epsilon-greedy and UCB1, within Monte-Carlo error
    (20,000 posterior draws) for Thompson sampling."""
    kwargs: dict[str, Any] = (
        {"likelihood": "gaussian"} if gaussian and cls.__name__ == "ThompsonSampling" else {}
    )
    if cls.__name__ == "EpsilonGreedy":
        kwargs["epsilon"] = 0.3
    policy = cls(ARMS, **kwargs)
    rewards = [0.3, 0.5, 0.4]
    n = np.array([8, 10, 6])
    state = BanditState(ARMS, n, n * np.array(rewards), n * np.array(rewards))
    chances = policy.assignment_probabilities(state)
    assert chances.shape == (3,) and chances.sum() == pytest.approx(1.0)
    picks = policy.select_batch(state, np.random.default_rng(5), 200_000)
    shares = np.bincount(picks, minlength=3) / len(picks)
    # 200,000 picks: 4 standard errors of a share are at most 0.0045; Thompson's own
    # estimate adds at most 0.0035 per standard error.
    assert shares == pytest.approx(
        chances, abs=0.02 if cls.__name__ == "ThompsonSampling" else 0.005
    )
    # Untried arms, where every policy has a special case; one request at a time, as the
    # router asks (UCB1's batches cycle through untried arms, its single choice does not).
    empty = BanditState.empty(ARMS)
    first = policy.assignment_probabilities(empty)
    rng = np.random.default_rng(6)
    single = [ARMS.index(policy.select(empty, rng)) for _ in range(5000)]
    assert np.bincount(single, minlength=3) / 5000 == pytest.approx(first, abs=0.03)
