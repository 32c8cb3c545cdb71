"""Per-variant counts of an endpoint's traffic and feedback, from the inference log or from
the shared policy-state counters (see :mod:`vigil.experiments.status`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from vigil.errors import ModelInputError
from vigil.experiments.config import EndpointConfig
from vigil.experiments.state import VariantStats
from vigil.stats.sufficient import MeanStats, ProportionStats

if TYPE_CHECKING:
    import pandas as pd


Metric = Literal["reward rate", "mean reward", "accuracy"]
MetricStats = ProportionStats | MeanStats


@dataclass(frozen=True)
class Counts:
    """Per-variant traffic and feedback of one endpoint, ready for the statistics."""

    requests: dict[str, int]
    errors: dict[str, int]
    feedback: dict[str, int]
    metric: Metric | None
    stats: dict[str, MetricStats] = field(default_factory=dict)
    """The metric's sufficient statistics of each variant with feedback."""


def _same(label: Any, prediction: Any) -> bool:
    """Whether a label (possibly stored as text) names the predicted class."""
    if label is None or prediction is None:
        return False
    if label == prediction:
        return True
    try:
        return math.isclose(float(label), float(prediction))
    except (TypeError, ValueError):
        return str(label) == str(prediction)


def _metric_stats(
    rewards: dict[str, list[float]], correct: dict[str, list[bool]]
) -> tuple[Metric | None, dict[str, MetricStats]]:
    if any(rewards.values()):
        binary = all(r in (0.0, 1.0) for values in rewards.values() for r in values)
        if binary:
            return "reward rate", {
                v: ProportionStats.from_outcomes(r) for v, r in rewards.items() if r
            }
        return "mean reward", {v: MeanStats.from_values(r) for v, r in rewards.items() if r}
    if any(correct.values()):
        return "accuracy", {v: ProportionStats.from_outcomes(c) for v, c in correct.items() if c}
    return None, {}


def counts_from_frames(
    config: EndpointConfig, captured: pd.DataFrame, feedback: pd.DataFrame
) -> Counts:
    """Counts from captured rows (any endpoints: filtered here) and feedback rows.

    ``captured`` needs ``request_id, row, endpoint, variant, status, prediction``;
    ``feedback`` is :meth:`~vigil.feedback.store.FeedbackStore.read`'s frame. A request is
    counted once however many rows it had; feedback is matched per row, to successful
    predictions only, and only by the key that made them
    (:func:`~vigil.feedback.join.join_feedback`).
    """
    import pandas as pd  # the statistics stack: only for a status, never on the routing path

    names = config.variant_names
    requests = dict.fromkeys(names, 0)
    errors = dict.fromkeys(names, 0)
    if captured.empty or "endpoint" not in captured.columns:
        return Counts(requests, errors, dict.fromkeys(names, 0), None)
    # Columns a log of only failures (or one written before experiments) may lack.
    for column in ("variant", "prediction", "status", "row"):
        if column not in captured.columns:
            captured = captured.assign(**{column: 0 if column in ("status", "row") else None})
    mine = captured[(captured["endpoint"] == config.name) & captured["variant"].isin(names)]
    # A model's refusal of a well-formed input (422 model_rejected_input) counts against
    # its variant like a server error: the rival variant may well answer the same input.
    refused = (
        mine["error_code"] == ModelInputError.code
        if "error_code" in mine.columns
        else pd.Series(False, index=mine.index)
    )
    per_request = (
        mine.assign(failed=(mine["status"] >= 500) | refused)
        .groupby("request_id", sort=False)
        .agg(variant=("variant", "first"), status=("status", "max"), failed=("failed", "max"))
    )
    for variant, count in per_request["variant"].value_counts().items():
        requests[str(variant)] = int(count)
    failed = per_request[per_request["failed"]]
    for variant, count in failed["variant"].value_counts().items():
        errors[str(variant)] = int(count)
    answered = mine[mine["status"] < 400]
    return feedback_counts(names, requests, errors, answered, feedback)


def feedback_counts(
    names: list[str],
    requests: dict[str, int],
    errors: dict[str, int],
    answered: pd.DataFrame,
    feedback: pd.DataFrame,
) -> Counts:
    """:class:`Counts` of ``requests`` and ``errors`` (per variant, counted already) with
    the metric of the ``answered`` rows' feedback (joined here, in the rows' order)."""
    import pandas as pd  # the statistics stack: only for a status, never on the routing path

    rewards: dict[str, list[float]] = {v: [] for v in names}
    correct: dict[str, list[bool]] = {v: [] for v in names}
    if not feedback.empty and not answered.empty:
        from vigil.feedback.join import join_feedback  # PyArrow stays off the routing path

        wanted = [
            c for c in ("request_id", "row", "caller", "variant", "prediction") if c in answered
        ]
        joined = join_feedback(answered[wanted], feedback)
        for variant, prediction, label, reward in zip(
            joined["variant"],
            joined["prediction"],
            joined["label"],
            joined["reward"],
            strict=True,
        ):
            if not pd.isna(reward):
                rewards[variant].append(float(reward))
            if not pd.isna(label):
                correct[variant].append(_same(label, prediction))
    metric, stats = _metric_stats(rewards, correct)
    given_counts = {v: len(rewards[v]) if metric != "accuracy" else len(correct[v]) for v in names}
    return Counts(requests, errors, given_counts, metric, stats)


def counts_from_state(config: EndpointConfig, stats: Mapping[str, VariantStats]) -> Counts:
    """Counts from the shared policy-state counters (sums only: no per-row join needed).

    Rewards are a rate when every variant's sum of squares equals its sum with a whole
    number of successes (only 0/1 rewards do that), else a mean.
    """
    names = config.variant_names
    got = {v: stats.get(v) or VariantStats() for v in names}
    requests = {v: s.requests for v, s in got.items()}
    errors = {v: s.errors for v, s in got.items()}
    metric: Metric | None = None
    found: dict[str, MetricStats] = {}
    if any(s.reward_count for s in got.values()):
        binary = all(
            s.reward_sum == s.reward_sumsq and float(s.reward_sum).is_integer()
            for s in got.values()
        )
        metric = "reward rate" if binary else "mean reward"
        for v, s in got.items():
            if s.reward_count:
                found[v] = (
                    ProportionStats(s.reward_count, s.reward_sum)
                    if binary
                    else MeanStats.from_sums(s.reward_count, s.reward_sum, s.reward_sumsq)
                )
        feedback = {v: s.reward_count for v, s in got.items()}
    else:
        if any(s.label_count for s in got.values()):
            metric = "accuracy"
            found = {
                v: ProportionStats(s.label_count, s.label_correct)
                for v, s in got.items()
                if s.label_count
            }
        feedback = {v: s.label_count for v, s in got.items()}
    return Counts(requests, errors, feedback, metric, found)
