"""A real server with capture on: scikit-learn models, masking rules, a local artifact store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from tests.serving.conftest import (
    SETTINGS,
    ServerThread,
    SklearnAdapter,
    clf_signature,
    shop_signature,
)

from vigil.bundle.model import LoadedBundle
from vigil.capture.settings import CaptureSettings
from vigil.serving.app import ServingApp, create_app
from vigil.serving.capture_runtime import CaptureRuntime
from vigil.serving.provider import StaticProvider
from vigil.storage.artifacts import ArtifactStore

HASH_KEY = "capture-test-key-0123456789"
MASK = {"f0": "mask", "f1": "hash", "f2": "drop", "city": "hash"}


@dataclass
class Captured:
    """A running server with capture, and where its log lives."""

    url: str
    app: ServingApp
    runtime: CaptureRuntime
    capture_dir: Path
    store: ArtifactStore
    X: np.ndarray
    shop_rows: pd.DataFrame


def _shop() -> tuple[Pipeline, pd.DataFrame]:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "age": rng.uniform(18, 80, 200),
            "income": rng.normal(50, 10, 200),
            "city": rng.choice(["paris", "lyon", "nice"], 200),
        }
    )
    labels = np.where((frame["city"] == "paris") | (frame["age"] > 50), "yes", "no")
    encode = ColumnTransformer(
        [("city", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
    )
    model = Pipeline([("prep", encode), ("model", LogisticRegression(max_iter=500))])
    return model.fit(frame, labels), frame.iloc[:10].reset_index(drop=True)


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Captured]:
    home = tmp_path_factory.mktemp("capture-home")
    X, y = make_classification(n_samples=300, n_features=20, n_informative=8, random_state=0)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    shop, shop_rows = _shop()
    provider = StaticProvider(
        [
            LoadedBundle(SklearnAdapter(clf), clf_signature(), name="clf", version=1),
            LoadedBundle(SklearnAdapter(shop), shop_signature(), name="shop", version=3),
        ],
        aliases={"clf": {"production": 1}},
        settings=SETTINGS,
    )
    store = ArtifactStore(str(home / "artifacts"))
    settings = CaptureSettings(mask=MASK, hash_key=HASH_KEY, compact_interval_s=3600)
    runtime = CaptureRuntime.from_settings(settings, home=home, store=store)
    assert runtime is not None
    app = create_app(provider, capture=runtime)
    with ServerThread(app) as server:
        yield Captured(server.url, app, runtime, home / "capture", store, X[:40], shop_rows)
