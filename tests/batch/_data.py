"""Real scikit-learn models (behind vigil's own sklearn flavor) and seeded data, and the
helpers that write and read every format batch scoring handles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from vigil.bundle.flavors.sklearn import SklearnModel, estimator_signature
from vigil.bundle.model import LoadedBundle
from vigil.bundle.signature import FeatureSpec, OutputSpec, Signature

FEATURES = ["f0", "f1", "f2", "f3", "f4"]


@dataclass
class Models:
    clf: LoadedBundle
    """LogisticRegression on FEATURES, classes 'no'/'yes'."""
    reg: LoadedBundle
    """LinearRegression on FEATURES (no predict_proba)."""
    shop: LoadedBundle
    """One-hot + LogisticRegression over float, int, bool and string features."""
    frame: pd.DataFrame
    """600 rows: an ``id`` column, then FEATURES."""
    shop_frame: pd.DataFrame
    """400 rows: ``id``, tenure (float), rooms (int), active (bool), plan (string)."""


def shop_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "tenure": rng.uniform(0, 10, rows),
            "rooms": rng.integers(1, 6, rows),
            "active": rng.random(rows) < 0.5,
            "plan": rng.choice(["basic", "pro", "team"], rows),
        }
    )


def build_models() -> Models:
    X, y = make_classification(n_samples=600, n_features=5, n_informative=3, random_state=0)
    frame = pd.DataFrame(X, columns=FEATURES)
    labels = np.where(y == 1, "yes", "no")
    lr = LogisticRegression().fit(frame, labels)
    linear = LinearRegression().fit(frame, X[:, 0] * 2 + 1)

    shop = shop_frame(400, seed=1)
    shop_y = np.where((shop["plan"] == "pro") ^ shop["active"] | (shop["tenure"] > 7), 1, 0)
    features = ["tenure", "rooms", "active", "plan"]
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"])],
                    remainder="passthrough",
                ),
            ),
            ("lr", LogisticRegression(max_iter=500)),
        ]
    ).fit(shop[features], shop_y)
    shop_sig = Signature(
        inputs=[
            FeatureSpec(name="tenure", dtype="float64", nullable=False),
            FeatureSpec(name="rooms", dtype="int64", nullable=False),
            FeatureSpec(name="active", dtype="bool", nullable=False),
            FeatureSpec(name="plan", dtype="string", nullable=False),
        ],
        outputs=OutputSpec(task="classification", dtype="int64", classes=[0, 1], has_proba=True),
    )
    clf_sig, reg_sig = estimator_signature(lr), estimator_signature(linear)
    assert clf_sig is not None and reg_sig is not None
    return Models(
        clf=LoadedBundle(SklearnModel(lr), clf_sig, name="clf", version=1),
        reg=LoadedBundle(SklearnModel(linear), reg_sig, name="reg", version=1),
        shop=LoadedBundle(SklearnModel(pipe), shop_sig, name="shop", version=1),
        frame=frame.assign(id=np.arange(600))[["id", *FEATURES]],
        shop_frame=shop,
    )


def write(frame: pd.DataFrame | pa.Table, path: Path) -> Path:
    """Write ``frame`` in the format ``path``'s suffix names (JSON lines at full precision)."""
    table = (
        frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    )
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.suffix == ".csv":
        pcsv.write_csv(table, path)
    else:
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in table.to_pylist()))
    return path


def read(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    if path.suffix == ".csv":
        return pcsv.read_csv(path)
    return pjson.read_json(path)
