"""Shared by the policy tests: a served model that ignores two of its three features,
labelled traffic in the inference log, and a retraining script that trains on the export
and registers its candidate with ``--candidate-for``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from tests.monitor._data import FEATURES, capture_sink, make_frame, write_traffic

from vigil.app import Vigil

RETRAIN = """
import os, subprocess, sys
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.preprocessing import OneHotEncoder
from skops.io import dump

export = os.environ["VIGIL_POLICY_EXPORT_DIR"]
label = os.environ["VIGIL_POLICY_LABEL"]
data = pd.read_parquet(os.environ["VIGIL_POLICY_TRAIN_FILE"])
features = ["age", "income", "plan"]
print("training on", len(data), "rows from", export, "for", os.environ["VIGIL_POLICY_MODEL"],
      "served", os.environ["VIGIL_POLICY_SERVED_VERSION"], flush=True)
if os.environ.get("MODE") == "worse":
    model = DummyClassifier(strategy="constant", constant=0)
    model = Pipeline([("clf", model)])
else:
    prep = ColumnTransformer([("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"])],
                             remainder="passthrough")
    model = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=1000))])
model.fit(data[features], data[label])
work = os.path.join(export, "..", "job")
os.makedirs(work, exist_ok=True)
dump(model, os.path.join(work, "model.skops"))
data[features + [label]].to_parquet(os.path.join(work, "reference.parquet"))
done = subprocess.run([sys.executable, "-m", "vigil.cli", "register",
    os.environ["VIGIL_POLICY_MODEL"], os.path.join(work, "model.skops"),
    "--reference", os.path.join(work, "reference.parquet"), "--target", label,
    "--trust-type", "sklearn.compose._column_transformer._RemainderColsList",
    "--candidate-for", os.environ["VIGIL_POLICY_MODEL"]])
sys.exit(done.returncode)
"""


def weak_model(reference: Any) -> Pipeline:
    """Regularised until it barely reads its features: a retrained model beats it."""
    prep = ColumnTransformer(
        [("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"])], remainder="passthrough"
    )
    return Pipeline([("prep", prep), ("clf", LogisticRegression(C=1e-5))]).fit(
        reference[FEATURES], reference["label"]
    )


def build(app: Vigil, *, rows: int = 800, traffic_at: datetime | None = None) -> list[str]:
    """Register the weak served model (``production``) and log ``rows`` labelled requests
    over the last hour; their request ids."""
    reference = make_frame(600, seed=1)
    model = weak_model(reference)
    app.register(model, name="churn", reference=reference, target="label", alias="production")
    traffic = make_frame(rows, seed=7)
    sink = capture_sink(app)
    start = traffic_at or datetime.now(UTC) - timedelta(hours=1)
    ids = write_traffic(sink, model, traffic, start=start, step=timedelta(seconds=2))
    sink.close()
    store = app.feedback_store()
    try:
        store.submit(
            [
                {"request_id": rid, "row": 0, "label": int(traffic["label"].iloc[i])}
                for i, rid in enumerate(ids)
            ]
        )
    finally:
        store.close()
    return ids


def retrain_script(directory: Path) -> list[str]:
    script = directory / "retrain.py"
    script.write_text(RETRAIN)
    return [sys.executable, str(script)]
