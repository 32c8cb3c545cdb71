"""What another routing policy would have earned on an endpoint, from the log of the one
that ran (``vigil experiment evaluate``).

Every request a bandit (or a weighted split) routes is logged with the arm it got and the
probability the policy gave that arm, its *propensity* (:mod:`vigil.capture.record`);
rewards arrive later as feedback. :func:`evaluate_policy` reads both and estimates the
mean reward a *target* policy would have had with :mod:`vigil.stats.off_policy`'s
inverse propensity (IPS), self-normalised (SNIPS) and doubly robust (DR) estimators, each
with its confidence interval and effective sample size.

Target policies (``--policy``):

* ``uniform``: every variant equally often;
* ``variant:NAME``: always ``NAME`` (what promoting it would earn);
* ``weights:a=3,b=1``: a fixed split in these proportions.

The unit is one request (its first row): the decision the policy took. Requests without a
reward are left out, as the bandit's own counters leave them out, which assumes a reward's
arrival does not depend on the arm. DR's reward model is each arm's mean logged reward
(the endpoints route without contexts).

Valid only when the logging policy gave every arm the target uses a positive chance: an
epsilon-greedy or Thompson log (Thompson's propensities are estimated from posterior draws,
see :meth:`~vigil.bandits.ThompsonSampling.assignment_probabilities`) or a split. UCB1
chooses deterministically (propensity 1 for its choice, 0 for the others), so its log
supports no other policy: the report says so and gives no estimate.

>>> target_probabilities("weights:a=3,b=1", ["a", "b"])
{'a': 0.75, 'b': 0.25}
>>> target_probabilities("variant:b", ["a", "b"]), target_probabilities("uniform", ["a", "b"])
({'a': 0.0, 'b': 1.0}, {'a': 0.5, 'b': 0.5})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from vigil.errors import InvalidParameterError
from vigil.experiments.config import BanditTrafficPolicy
from vigil.experiments.store import EndpointStore

if TYPE_CHECKING:
    import pandas as pd

    from vigil.experiments.services import ExperimentServices
    from vigil.stats.off_policy import OffPolicyEstimate

__all__ = ["OffPolicyReport", "evaluate_policy", "target_probabilities"]

POLICY_HELP = "uniform, variant:NAME or weights:a=3,b=1"


def _bad(spec: str, why: str) -> InvalidParameterError:
    return InvalidParameterError(
        f"--policy {spec!r}: {why}; use {POLICY_HELP}", detail={"option": "policy"}
    )


def target_probabilities(spec: str, arms: list[str]) -> dict[str, float]:
    """Each variant's chance under the target policy ``spec`` (see the module docstring)."""
    text = spec.strip()
    if text == "uniform":
        return {a: 1.0 / len(arms) for a in arms}
    kind, _, rest = text.partition(":")
    if kind == "variant":
        if rest not in arms:
            raise _bad(spec, f"no variant {rest!r} (variants: {', '.join(arms)})")
        return {a: float(a == rest) for a in arms}
    if kind == "weights":
        weights: dict[str, float] = dict.fromkeys(arms, 0.0)
        for part in rest.split(","):
            name, _, value = part.partition("=")
            name = name.strip()
            if name not in arms:
                raise _bad(spec, f"no variant {name!r} (variants: {', '.join(arms)})")
            try:
                weights[name] = float(value)
            except ValueError:
                raise _bad(spec, f"weight {value!r} of {name!r} is not a number") from None
            if not weights[name] >= 0:
                raise _bad(spec, f"weight of {name!r} must be >= 0")
        total = sum(weights.values())
        if total <= 0:
            raise _bad(spec, "the weights must have a positive sum")
        return {a: w / total for a, w in weights.items()}
    raise _bad(spec, "unknown policy")


@dataclass(frozen=True)
class OffPolicyReport:
    """The estimates of one target policy's mean reward on an endpoint's log."""

    endpoint: str
    policy: str
    target: dict[str, float]
    """Each variant's chance under the target policy."""
    logging_policy: str
    requests: int
    """Routed requests logged with a propensity."""
    rewarded: int
    """Of those, the ones with a reward (what the estimates rest on)."""
    without_propensity: int
    """Routed requests logged without one (before propensities were logged)."""
    logged_value: float | None
    """Mean reward the logging policy earned on the rewarded requests."""
    arms: dict[str, dict[str, float]]
    """Per variant: rewarded requests and their mean reward."""
    estimates: list[OffPolicyEstimate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "policy": self.policy,
            "target": self.target,
            "logging_policy": self.logging_policy,
            "requests": self.requests,
            "rewarded": self.rewarded,
            "without_propensity": self.without_propensity,
            "logged_value": self.logged_value,
            "arms": self.arms,
            "estimates": [e.to_dict() for e in self.estimates],
            "notes": list(self.notes),
        }


def _decisions(app: ExperimentServices, name: str, since: datetime | None) -> pd.DataFrame:
    """One row per answered request of endpoint ``name`` (its first row), with ``reward``
    (NaN without feedback)."""
    import pandas as pd  # the statistics stack: an offline report

    from vigil.capture.reader import read_capture
    from vigil.feedback.join import join_feedback

    captured = read_capture(None, since, None, store=app.artifacts, log_dir=app.capture_dir)
    if captured.empty or "endpoint" not in captured:
        return pd.DataFrame(columns=["request_id", "variant", "propensity", "reward"])
    mine = captured[
        (captured["endpoint"] == name)
        & (pd.to_numeric(captured["status"], errors="coerce").fillna(200) < 400)
        & (captured["row"] == 0)
    ]
    if "propensity" not in mine:
        mine = mine.assign(propensity=float("nan"))
    mine = mine[["request_id", "row", "caller", "variant", "propensity"]].reset_index(drop=True)
    store = app.feedback_store()
    try:
        feedback = store.read(since)
    finally:
        store.close()
    rewards = join_feedback(mine, feedback[feedback["reward"].notna()]) if len(feedback) else None
    found = (
        dict(zip(rewards["request_id"], rewards["reward"], strict=True))
        if rewards is not None
        else {}
    )
    return mine.assign(reward=mine["request_id"].map(found).astype(float))


def evaluate_policy(
    app: ExperimentServices,
    name: str,
    policy: str,
    *,
    since: datetime | None = None,
    level: float = 0.95,
) -> OffPolicyReport:
    """Estimate the mean reward target ``policy`` would have earned on endpoint ``name``'s
    logged requests since ``since`` (see the module docstring)."""
    import numpy as np

    from vigil.stats.off_policy import doubly_robust_estimate, ips_estimate, snips_estimate

    config = EndpointStore(app).get(name)
    arms = config.variant_names
    target = target_probabilities(policy, arms)
    logging = config.policy.kind
    rows = _decisions(app, name, since)
    logged = rows[rows["propensity"].notna()]
    rewarded = logged[logged["reward"].notna() & logged["variant"].isin(arms)]
    notes: list[str] = []
    per_arm = {
        a: {
            "rewarded": float((rewarded["variant"] == a).sum()),
            "mean_reward": float(rewarded.loc[rewarded["variant"] == a, "reward"].mean())
            if (rewarded["variant"] == a).any()
            else float("nan"),
        }
        for a in arms
    }
    report: dict[str, Any] = {
        "endpoint": name,
        "policy": policy,
        "target": target,
        "logging_policy": logging,
        "requests": len(logged),
        "rewarded": len(rewarded),
        "without_propensity": len(rows) - len(logged),
        "logged_value": float(rewarded["reward"].mean()) if len(rewarded) else None,
        "arms": {a: {k: v for k, v in d.items() if np.isfinite(v)} for a, d in per_arm.items()},
        "notes": notes,
    }
    if isinstance(config.policy, BanditTrafficPolicy) and config.policy.kind == "ucb1":
        notes.append(
            "UCB1 chooses deterministically (propensity 1 for its choice, 0 for the others): "
            "its log cannot estimate another policy"
        )
        return OffPolicyReport(**report)
    if len(rewarded) < 2:
        notes.append("fewer than 2 rewarded requests with a propensity: nothing to estimate")
        return OffPolicyReport(**report)
    propensity = rewarded["propensity"].to_numpy(np.float64)
    chance = rewarded["variant"].map(target).to_numpy(np.float64)
    reward = rewarded["reward"].to_numpy(np.float64)
    fallback = float(reward.mean())
    means = {
        a: d["mean_reward"] if np.isfinite(d["mean_reward"]) else fallback
        for a, d in per_arm.items()
    }
    predicted = rewarded["variant"].map(means).to_numpy(np.float64)
    expected = float(sum(target[a] * means[a] for a in arms))
    unseen = [a for a in arms if target[a] > 0 and per_arm[a]["rewarded"] == 0]
    if unseen:
        notes.append(
            f"the target uses {', '.join(unseen)}, which the log never rewarded: "
            "the estimates cannot see those variants"
        )
    report["estimates"] = [
        ips_estimate(reward, propensity, chance, level=level),
        snips_estimate(reward, propensity, chance, level=level),
        doubly_robust_estimate(
            reward, propensity, chance, predicted, np.full(len(reward), expected), level=level
        ),
    ]
    return OffPolicyReport(**report)
