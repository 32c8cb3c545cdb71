"""The validation gate's fairness guard: with sensitive attributes declared for the model
(``monitor.fairness``), a candidate better on average but worse for one group is rejected
by the policy's gate on replayed traffic, with every group's numbers in the stored verdict;
the same numbers as computing each group's accuracy by hand on the held-out rows."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from tests.monitor._data import FEATURES, make_frame
from tests.policy._world import build

from vigil.app import Vigil
from vigil.policy.config import parse_policy
from vigil.policy.engine import PolicyEngine
from vigil.policy.runs import Run
from vigil.policy.store import PolicyStore
from vigil.settings import load_settings


class UnfairToPlan(ClassifierMixin, BaseEstimator):
    """A good model, except that it answers the opposite for the rows of one ``plan``."""

    def __init__(self, plan: str = "basic") -> None:
        self.plan = plan

    def fit(self, X: pd.DataFrame, y: Any) -> UnfairToPlan:
        prep = ColumnTransformer(
            [("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"])], remainder="passthrough"
        )
        self.inner_ = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=1000))]).fit(
            X, y
        )
        self.classes_ = self.inner_.classes_
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = len(X.columns)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        pred = self.inner_.predict(X)
        return np.where(np.asarray(X["plan"]) == self.plan, 1 - pred, pred)


@pytest.fixture
def app(vigil_home: Path, monkeypatch: pytest.MonkeyPatch) -> Vigil:
    monkeypatch.setenv(
        "VIGIL_MONITOR_FAIRNESS", '{"churn": {"attributes": ["plan"], "min_group_size": 20}}'
    )
    v = Vigil(load_settings(home=vigil_home, actor="ada"))
    build(v)
    return v


def _until_past(engine: PolicyEngine, run: Run, states: tuple[str, ...], timeout: float) -> Run:
    deadline = time.monotonic() + timeout
    while run.state in states and time.monotonic() < deadline:
        engine.advance(run)
        time.sleep(0.2)
        run = engine.runs.get(run.run_id)
    return run


def test_a_candidate_that_hurts_one_group_is_rejected_with_the_numbers(app: Vigil) -> None:
    doc = {
        "model": "churn",
        "action": {
            "kind": "command",
            "argv": [sys.executable, "-c", "import time; time.sleep(60)"],
            "timeout_s": 120,
        },
        # Lax on the average (it may even be a little worse), strict on every group.
        "gate": {"min_improvement": -0.5, "max_group_drop": 0.1, "max_latency_ratio": 1000},
    }
    PolicyStore(app).set(parse_policy(doc), actor="ada")
    engine = PolicyEngine(app)
    run = engine.start("churn", {"kind": "manual"}, actor="ada")
    assert run is not None
    run = _until_past(engine, run, ("triggered", "exporting"), 30)
    assert run.state == "training"
    frame = make_frame(600, seed=4)
    unfair = UnfairToPlan("basic").fit(frame[FEATURES], frame["label"])
    mv = app.register(unfair, name="churn", reference=frame, target="label", candidate_for="churn")
    run = _until_past(engine, engine.runs.get(run.run_id), ("gating",), 60)
    try:
        assert run.state == "rejected" and run.candidate_version == mv.version
        assert run.error is not None and "fairness guard: accuracy for plan=basic" in run.error
        verdict = run.data["gate"]["replay"]
        guard = next(g for g in verdict["guards"] if g["name"] == "fairness")
        assert guard["passed"] is False
        # Every group's numbers, equal to each model's accuracy on that group's held-out rows.
        holdout = pd.read_parquet(run.data["holdout"])
        served = app.load("models:/churn/1")
        for group in verdict["groups"]:
            rows = holdout[holdout["plan"] == group["group"]]
            assert group["rows"] == len(rows)
            truth = rows["label"].to_numpy()
            current = float((served.predict(rows[FEATURES]) == truth).mean())
            candidate = float((unfair.predict(rows[FEATURES]) == truth).mean())
            assert group["current"] == pytest.approx(current)
            assert group["candidate"] == pytest.approx(candidate)
            assert group["judged"] == (len(rows) >= 20)
        worst = max((g for g in verdict["groups"] if g["judged"]), key=lambda g: g["drop"])
        assert worst["group"] == "basic" and worst["drop"] > 0.1
        # Only the fairness guard failed: the average alone would have let it through.
        assert [r for r in run.error.split("; ") if "fairness" not in r] == []
    finally:
        import os
        import signal

        os.killpg(run.data["job"]["pid"], signal.SIGKILL)  # the job that never registers
