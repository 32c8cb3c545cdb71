"""Experiment status from the real inference log and feedback store (or the shared
counters), checked against summarize_experiment, statsmodels and SciPy on the same counts;
and concluding an experiment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint, proportions_ztest
from tests.experiments._registry import split_endpoint, vigil_with_models

from vigil.app import Vigil
from vigil.capture.settings import CaptureSettings
from vigil.capture.sink import CaptureSink
from vigil.errors import InvalidNameError, InvalidParameterError
from vigil.experiments.config import parse_endpoint
from vigil.experiments.state import SqlPolicyState
from vigil.experiments.status import (
    conclude,
    counts_from_frames,
    experiment_status,
    summarize_counts,
)
from vigil.experiments.store import EndpointStore
from vigil.feedback.store import FeedbackStore
from vigil.stats.experiment import Recommendation, summarize_experiment
from vigil.stats.sufficient import MeanStats, ProportionStats

ROW = {"tenure": 1.0, "plan": "basic"}


@pytest.fixture
def vigil(tmp_path: Path, make_bundle: Callable[..., Path]) -> Vigil:
    v = vigil_with_models(tmp_path / "home", make_bundle)
    data = split_endpoint(policy={"kind": "split", "weights": {"a": 1, "b": 1}})
    EndpointStore(v).create(parse_endpoint(data), actor="ada")
    return v


def sink(vigil: Vigil) -> CaptureSink:
    made = CaptureSink.from_settings(CaptureSettings(), vigil.settings.home)
    assert made is not None
    return made


def feedback(vigil: Vigil) -> FeedbackStore:
    return FeedbackStore.from_settings(CaptureSettings(), vigil.settings.home, vigil.artifacts)


def predict(
    log: CaptureSink, rid: str, variant: str, rows: int = 1, endpoint: str = "checkout"
) -> None:
    log.record_prediction(
        request_id=rid,
        model="churn",
        version=1 if variant == "a" else 2,
        features=[ROW] * rows,
        predictions=[1] * rows,
        endpoint=endpoint,
        variant=variant,
        latency_ms=3.0,
    )


def test_status_from_capture_and_feedback_equals_the_statistics(vigil: Vigil) -> None:
    rng = np.random.default_rng(7)
    log = sink(vigil)
    given: list[dict[str, Any]] = []
    successes = {"a": 0, "b": 0}
    for variant, rate in (("a", 0.10), ("b", 0.16)):
        for i in range(400):
            rid = f"{variant}-{i}"
            predict(log, rid, variant)
            if i < 300:  # feedback for 300 of the 400 requests
                reward = float(rng.random() < rate)
                successes[variant] += int(reward)
                given.append({"request_id": rid, "reward": reward})
    # One batch request of three rows: one request, three rows with their own feedback.
    predict(log, "batch", "a", rows=3)
    given += [{"request_id": "batch", "row": r, "reward": 1.0} for r in range(3)]
    successes["a"] += 3
    # Server errors count as requests and errors, never as feedback.
    for i in range(4):
        log.record_failure(
            request_id=f"fail-{i}",
            status=500,
            error_code="prediction_failed",
            error_message="boom",
            model="churn",
            version=2,
            endpoint="checkout",
            variant="b",
        )
    given.append({"request_id": "fail-0", "reward": 1.0})
    # Another endpoint's traffic and plain model traffic are not this experiment's.
    predict(log, "other-1", "a", endpoint="search")
    log.record_prediction(
        request_id="direct-1", model="churn", version=1, features=[ROW], predictions=[1]
    )
    given.append({"request_id": "other-1", "reward": 1.0})
    log.close()
    feedback(vigil).submit(given)

    status = experiment_status(vigil, "checkout")
    assert (status.source, status.metric, status.control) == ("capture", "reward rate", "a")
    a, b = status.variant("a"), status.variant("b")
    assert (a.requests, b.requests) == (401, 404)
    assert (a.errors, b.errors) == (0, 4)
    assert (a.feedback, b.feedback) == (303, 300)
    assert a.share == pytest.approx(401 / 805) and b.share == pytest.approx(404 / 805)
    assert (a.expected_share, b.expected_share) == (0.5, 0.5)

    counts = {"a": ProportionStats(303, successes["a"]), "b": ProportionStats(300, successes["b"])}
    expected = summarize_experiment(counts, "a", weights={"a": 303, "b": 300})
    assert status.summary == expected
    row = expected.variant("b")
    assert b.value == pytest.approx(successes["b"] / 300)
    assert (b.lift, b.lift_low, b.lift_high) == (
        row.relative_lift.value,
        row.relative_lift.low,
        row.relative_lift.high,
    )
    assert (b.p_value, b.always_valid_p_value, b.prob_best) == (
        row.p_value,
        row.always_valid_p_value,
        row.prob_best,
    )
    assert b.recommendation == row.recommendation.value
    assert status.decision == expected.decision
    # The same numbers from statsmodels: the two-proportion z-test and Wilson intervals.
    _, p = proportions_ztest([successes["b"], successes["a"]], [300, 303])
    assert b.p_value == pytest.approx(p, rel=1e-9)
    low, high = proportion_confint(successes["a"], 303, alpha=0.05, method="wilson")
    assert (a.low, a.high) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
    # The assignment check runs on request counts against the 50/50 weights (SciPy).
    assert status.srm is not None
    chi = sps.chisquare([401, 404], [402.5, 402.5])
    assert status.srm.p_value == pytest.approx(chi.pvalue) and not status.srm.mismatch


def frames(
    rows: list[tuple[str, str, int, float | None, Any]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Capture and feedback frames from ``(request_id, variant, status, reward, label)``."""
    captured = pd.DataFrame(
        {
            "request_id": [r[0] for r in rows],
            "row": [0] * len(rows),
            "endpoint": ["checkout"] * len(rows),
            "variant": [r[1] for r in rows],
            "status": [r[2] for r in rows],
            "prediction": [1] * len(rows),
        }
    )
    given = pd.DataFrame(
        {
            "request_id": [r[0] for r in rows],
            "row": [0] * len(rows),
            "reward": [r[3] for r in rows],
            "label": [r[4] for r in rows],
        }
    )
    given = given[given["reward"].notna() | given["label"].notna()]
    return captured, given


def test_a_split_that_misses_its_weights_says_check_assignment(vigil: Vigil) -> None:
    cfg = parse_endpoint(split_endpoint())  # 90/10
    rows = [(f"r{i}", "a" if i % 2 else "b", 200, float(i % 3 == 0), None) for i in range(1000)]
    status = summarize_counts(cfg, counts_from_frames(cfg, *frames(rows)))
    assert status.srm is not None and status.srm.mismatch
    assert status.srm.observed == {"a": 500, "b": 500}
    assert status.variant("b").recommendation == Recommendation.CHECK_ASSIGNMENT.value
    assert status.variant("a").recommendation == "control"
    assert status.decision.startswith("check assignment")


def test_continuous_rewards_and_labels(vigil: Vigil) -> None:
    cfg = parse_endpoint(split_endpoint())
    rng = np.random.default_rng(3)
    values = {"a": rng.normal(10, 2, 200), "b": rng.normal(10.5, 2, 200)}
    rows = [
        (f"{v}{i}", v, 200, float(x), None) for v in ("a", "b") for i, x in enumerate(values[v])
    ]
    counts = counts_from_frames(cfg, *frames(rows))
    assert counts.metric == "mean reward"
    status = summarize_counts(cfg, counts)
    expected = summarize_experiment(
        {v: MeanStats.from_values(x) for v, x in values.items()}, "a", weights={"a": 200, "b": 200}
    )
    assert status.variant("b").p_value == pytest.approx(expected.variant("b").p_value)
    welch = sps.ttest_ind(values["b"], values["a"], equal_var=False)
    assert status.variant("b").p_value == pytest.approx(welch.pvalue, rel=1e-6)
    # Labels only: accuracy of the predictions (all 1 here); labels stored as text match.
    labelled = [
        (f"l{i}", "a" if i < 50 else "b", 200, None, "1" if i % 5 else 0) for i in range(100)
    ]
    acc = counts_from_frames(cfg, *frames(labelled))
    assert acc.metric == "accuracy"
    assert acc.stats == {"a": ProportionStats(50, 40), "b": ProportionStats(50, 40)}


def test_without_feedback_it_waits(vigil: Vigil) -> None:
    cfg = parse_endpoint(split_endpoint())
    rows = [(f"r{i}", "a" if i % 10 else "b", 200, None, None) for i in range(100)]
    status = summarize_counts(cfg, counts_from_frames(cfg, *frames(rows)))
    assert status.metric is None and status.summary is None
    assert status.decision == "waiting for feedback"
    assert [v.recommendation for v in status.variants] == ["control", "waiting for feedback"]
    assert status.variant("b").requests == 10


def test_status_from_the_shared_counters_without_capture(vigil: Vigil) -> None:
    state = SqlPolicyState(vigil.database)
    state.add("checkout", "a", requests=500, errors=1, rewards=[1.0] * 40 + [0.0] * 160)
    state.add("checkout", "b", requests=480, rewards=[1.0] * 70 + [0.0] * 130)
    status = experiment_status(vigil, "checkout")
    assert (status.source, status.metric) == ("state", "reward rate")
    assert (status.variant("a").requests, status.variant("b").requests) == (500, 480)
    assert status.variant("a").errors == 1
    expected = summarize_experiment(
        {"a": ProportionStats(200, 40), "b": ProportionStats(200, 70)},
        "a",
        weights={"a": 200, "b": 200},
    )
    assert status.summary == expected
    assert status.to_dict()["variants"][1]["p_value"] == expected.variant("b").p_value


def test_conclude_fixes_the_winner_moves_the_alias_and_audits(vigil: Vigil) -> None:
    result = conclude(vigil, "checkout", promote="b", actor="ada", alias="production")
    assert (result.variant, result.model, result.version, result.alias) == (
        "b",
        "churn",
        2,
        "production",
    )
    cfg = EndpointStore(vigil).get("checkout")
    assert cfg.policy.model_dump() == {"kind": "fixed", "variant": "b"}
    assert cfg.salt == "pepper"
    assert vigil.registry.resolve("models:/churn@production").version == 2
    events = vigil.registry.audit(limit=10)
    conclusion = next(e for e in events if e.action == "experiment.conclude")
    assert conclusion.actor == "ada" and conclusion.entity_name == "checkout"
    assert conclusion.before is not None and conclusion.before["policy"]["kind"] == "split"
    assert conclusion.after is not None and conclusion.after["policy"] == {
        "kind": "fixed",
        "variant": "b",
    }
    moved = next(e for e in events if e.action == "set_alias")
    assert moved.actor == "ada" and moved.after == {
        "version": 2,
        "reason": "experiment checkout concluded: b",
    }


@pytest.mark.parametrize(
    ("promote", "alias", "error", "message"),
    [
        (
            "zz",
            None,
            InvalidParameterError,
            "endpoint 'checkout' has no variant 'zz'; its variants are: a, b",
        ),
        ("b", "latest", InvalidNameError, "alias 'latest' is reserved"),
    ],
)
def test_a_bad_conclusion_changes_nothing(
    vigil: Vigil, promote: str, alias: str | None, error: type[Exception], message: str
) -> None:
    before = (EndpointStore(vigil).revision("checkout"), len(vigil.registry.audit(limit=1000)))
    with pytest.raises(error, match=message):
        conclude(vigil, "checkout", promote=promote, actor="ada", alias=alias)
    after = (EndpointStore(vigil).revision("checkout"), len(vigil.registry.audit(limit=1000)))
    assert before == after
