"""Real scikit-learn models behind a tiny LoadedModel adapter, served over a real socket."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from tests._waiting import wait_for

from vigil.bundle.model import LoadedBundle
from vigil.bundle.signature import FeatureSpec, OutputSpec, Signature
from vigil.serving.app import create_app
from vigil.serving.config import ServingSettings
from vigil.serving.provider import StaticProvider
from vigil.serving.server import config, free_port


class SklearnAdapter:
    """The LoadedModel contract over a fitted scikit-learn estimator (test stand-in for the
    real flavor plugin). ``delay`` makes each call slow, to observe batching."""

    flavor = "sklearn"

    def __init__(self, estimator: Any, delay: float = 0.0) -> None:
        self.estimator = estimator
        self.delay = delay
        self.calls: list[int] = []

    @property
    def has_proba(self) -> bool:
        return hasattr(self.estimator, "predict_proba")

    def predict(self, X: Any) -> np.ndarray:
        self.calls.append(len(X))
        if self.delay:
            time.sleep(self.delay)
        return np.asarray(self.estimator.predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(X))


CLF_FEATURES = [f"f{i}" for i in range(20)]
REG_FEATURES = ["x0", "x1", "x2", "x3", "rooms"]


@dataclass
class Models:
    clf: LogisticRegression
    clf2: LogisticRegression
    reg: HistGradientBoostingRegressor
    shop: Pipeline
    X_clf: np.ndarray
    X_reg: np.ndarray
    shop_frame: pd.DataFrame


@pytest.fixture(scope="session")
def models() -> Models:
    X, y = make_classification(n_samples=300, n_features=20, n_informative=8, random_state=0)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    clf2 = LogisticRegression(C=0.01, max_iter=500).fit(X, y)
    Xr, yr = make_regression(n_samples=300, n_features=5, random_state=1)
    Xr[:, 4] = np.round(np.abs(Xr[:, 4]) * 3)  # "rooms": an integer feature
    reg = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(Xr, yr)
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "age": rng.uniform(18, 80, 200),
            "income": rng.normal(50, 10, 200),
            "city": rng.choice(["paris", "lyon", "nice"], 200),
        }
    )
    labels = np.where((frame["city"] == "paris") | (frame["age"] > 50), "yes", "no")
    shop = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("city", OneHotEncoder(handle_unknown="ignore"), ["city"])],
                    remainder="passthrough",
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(frame, labels)
    return Models(clf, clf2, reg, shop, X[:40], Xr[:40], frame.iloc[:30].reset_index(drop=True))


def clf_signature() -> Signature:
    return Signature(
        inputs=[FeatureSpec(name=n, dtype="float64", nullable=False) for n in CLF_FEATURES],
        outputs=OutputSpec(task="classification", dtype="int64", classes=[0, 1], has_proba=True),
    )


def reg_signature() -> Signature:
    return Signature(
        inputs=[FeatureSpec(name=n, dtype="float64") for n in REG_FEATURES[:4]]
        + [FeatureSpec(name="rooms", dtype="int64")],
        outputs=OutputSpec(task="regression", dtype="float64"),
    )


def shop_signature() -> Signature:
    return Signature(
        inputs=[
            FeatureSpec(name="age", dtype="float64", nullable=False),
            FeatureSpec(name="income", dtype="float64", nullable=False),
            FeatureSpec(
                name="city", dtype="category", nullable=False, categories=["paris", "lyon", "nice"]
            ),
        ],
        outputs=OutputSpec(
            task="classification", dtype="string", classes=["no", "yes"], has_proba=True
        ),
    )


def bundles(models: Models) -> list[LoadedBundle]:
    return [
        LoadedBundle(SklearnAdapter(models.clf), clf_signature(), name="clf", version=1),
        LoadedBundle(SklearnAdapter(models.clf2), clf_signature(), name="clf", version=2),
        LoadedBundle(SklearnAdapter(models.reg), reg_signature(), name="reg", version=1),
        LoadedBundle(SklearnAdapter(models.shop), shop_signature(), name="shop", version=3),
        LoadedBundle(SklearnAdapter(models.clf, delay=0.03), clf_signature(), name="slow"),
    ]


class ServerThread:
    """uvicorn serving an app on a free loopback port, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(config(app, port=self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()

        def started() -> bool:
            if not self.thread.is_alive():
                raise RuntimeError("the test server stopped while starting")
            return bool(self.server.started)

        wait_for(started, 30, what="the test server to start", interval=0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


SETTINGS = ServingSettings(max_body_bytes=256 * 1024, max_wait_ms=50.0, mlflow_model="clf")


def make_provider(models: Models) -> StaticProvider:
    """The test models behind one provider (a server that stops it stops its executors)."""
    return StaticProvider(
        bundles(models),
        aliases={"clf": {"production": 1, "challenger": 2}},
        settings=SETTINGS,
    )


@pytest.fixture(scope="session")
def provider(models: Models) -> StaticProvider:
    return make_provider(models)


@pytest.fixture(scope="session")
def server(provider: StaticProvider) -> Iterator[ServerThread]:
    with ServerThread(create_app(provider)) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def records(X: np.ndarray, names: list[str]) -> list[dict[str, float]]:
    return [dict(zip(names, map(float, row), strict=True)) for row in X]
