"""Shared by the experiment tests: small registered models, endpoints and a live server.

:class:`ConstantClassifier` answers one fixed class, so a response tells which variant's
model produced it; it can also fail on some inputs or sleep, to play a bad canary.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from vigil.app import Vigil
from vigil.experiments.config import EndpointConfig, parse_endpoint
from vigil.experiments.store import EndpointStore
from vigil.settings import load_settings

FEATURES = ["f0", "f1", "f2"]


class ConstantClassifier(ClassifierMixin, BaseEstimator):
    """Predicts ``value`` for every row; raises for rows with ``f0 > fail_above``; sleeps
    ``delay`` seconds per call."""

    def __init__(self, value: int = 0, fail_above: float | None = None, delay: float = 0.0):
        self.value = value
        self.fail_above = fail_above
        self.delay = delay

    def fit(self, X: Any, y: Any) -> ConstantClassifier:
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay)
        values = np.asarray(X, dtype=float)
        if self.fail_above is not None and bool((values[:, 0] > self.fail_above).any()):
            raise ValueError(f"f0 above {self.fail_above}")
        return np.full(len(values), self.value, dtype=np.int64)

    def predict_proba(self, X: Any) -> np.ndarray:
        pred = self.predict(X)
        return np.column_stack([1.0 - pred, pred.astype(float)])


def reference(rows: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.uniform(0, 1, size=(rows, len(FEATURES))), columns=FEATURES)
    frame["y"] = (frame["f0"] > 0.5).astype(int)
    return frame


def make_vigil(home: Path, **settings: Any) -> Vigil:
    return Vigil(load_settings(home=home, **settings))


def register(app: Vigil, name: str, model: ConstantClassifier, alias: str | None = None) -> int:
    """Register ``model`` (fitted here) as a new version of ``name``; its version number."""
    frame = reference()
    model.fit(frame[FEATURES].to_numpy(), frame["y"].to_numpy())
    return app.register(model, name=name, reference=frame, target="y", alias=alias).version


def create_endpoint(app: Vigil, data: dict[str, Any]) -> EndpointConfig:
    return EndpointStore(app).create(parse_endpoint(data), actor="tester")


def row(f0: float = 0.2) -> dict[str, float]:
    return {"f0": f0, "f1": 0.5, "f2": 0.5}
