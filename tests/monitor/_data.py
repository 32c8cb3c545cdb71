"""A small churn-like model, its reference data, and traffic written to a real capture log."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from vigil.app import Vigil
from vigil.capture.log import SegmentLog
from vigil.capture.sink import CaptureSink
from vigil.monitor.tables import MonitorPointRow, MonitorWindowRow
from vigil.settings import load_settings

FEATURES = ["age", "income", "plan"]
PLANS = ["basic", "plus", "pro"]


def make_frame(
    n: int, seed: int, *, shift_age: bool = False, shift_plan: bool = False
) -> pd.DataFrame:
    """Features and a label; ``shift_*`` moves the age mean by +15 / the plan mix."""
    rng = np.random.default_rng(seed)
    age = rng.normal(55 if shift_age else 40, 10, n)
    income = rng.normal(50, 12, n)
    plan = rng.choice(PLANS, n, p=[0.1, 0.3, 0.6] if shift_plan else [0.5, 0.3, 0.2])
    score = 0.08 * (age - 40) + 0.05 * (income - 50) + (plan == "pro") * 1.0 - 0.3
    label = (score + rng.normal(0, 1, n) > 0).astype(np.int64)
    return pd.DataFrame({"age": age, "income": income, "plan": plan, "label": label})


@dataclass
class Trained:
    model: Pipeline
    reference: pd.DataFrame
    accuracy: float


def train(seed: int = 0) -> Trained:
    data = make_frame(3000, seed)
    train_part, test_part = data.iloc[:2000], data.iloc[2000:]
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"])],
                    remainder="passthrough",
                ),
            ),
            ("clf", LogisticRegression(max_iter=1000)),
        ]
    ).fit(train_part[FEATURES], train_part["label"])
    accuracy = float(accuracy_score(test_part["label"], model.predict(test_part[FEATURES])))
    return Trained(model, test_part.reset_index(drop=True), accuracy)


def home_vigil(home: Path, **settings: Any) -> Vigil:
    return Vigil(load_settings(home=home, **settings))


def copied_home(template: Path, home: Path) -> Iterator[Vigil]:
    """A private copy of the ``template`` home at ``home``, also the process default
    (``VIGIL_HOME``), for a fixture to yield from: a module builds a home once, each
    test gets its own copy."""
    from vigil.app import reset_default

    shutil.copytree(template, home)
    reset_default()
    app = home_vigil(home)
    yield app
    app.database.dispose()
    reset_default()


def register(app: Vigil, trained: Trained, name: str = "churn") -> int:
    mv = app.register(
        trained.model,
        name=name,
        reference=trained.reference,
        target="label",
        metrics={"accuracy": trained.accuracy},
        alias="production",
    )
    return mv.version


def write_traffic(
    sink: CaptureSink,
    model: Pipeline,
    frame: pd.DataFrame,
    *,
    name: str = "churn",
    version: int = 1,
    start: datetime,
    step: timedelta = timedelta(seconds=1),
    prefix: str = "r",
    route: str = "native_predict",
    batch: int = 1,
) -> list[str]:
    """Predict ``frame`` with ``model`` and log it, ``batch`` rows per request, one request
    every ``step`` from ``start``; returns the request ids in order."""
    ids = []
    # One model call for every row (a pipeline call costs milliseconds), logged per request.
    predictions = model.predict(frame[FEATURES])
    probabilities = model.predict_proba(frame[FEATURES])
    for i, lo in enumerate(range(0, len(frame), batch)):
        part = frame.iloc[lo : lo + batch][FEATURES].reset_index(drop=True)
        rid = f"{prefix}{i:06d}"
        sink.record_prediction(
            request_id=rid,
            model=name,
            version=version,
            features=part,
            predictions=predictions[lo : lo + batch],
            probabilities=probabilities[lo : lo + batch],
            classes=[int(c) for c in model.classes_],
            route=route,
            time=start + i * step,
        )
        ids.append(rid)
    return ids


def capture_sink(app: Vigil) -> CaptureSink:
    return CaptureSink(SegmentLog(app.capture_dir))


def point_of(window: MonitorWindowRow, metric: str, value: float) -> MonitorPointRow:
    """A series point of a stored ``window`` (a test adding values monitoring would have
    computed, e.g. fairness series where fairness is not configured)."""
    return MonitorPointRow(
        window_id=window.id,
        model=window.model,
        version=window.version,
        route=window.route,
        window=window.window,
        window_start=window.window_start,
        window_end=window.window_end,
        partial=window.partial,
        metric=metric,
        feature=None,
        value=value,
    )
