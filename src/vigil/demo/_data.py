"""The demo's data and model: scikit-learn's breast-cancer set (shipped, no download)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MODEL_NAME = "breast-cancer"
CARD = {
    "purpose": "Flag breast-mass biopsies whose cell measurements look malignant, so that a "
    "pathologist reviews them first.",
    "owner": "vigil demo team",
    "intended_use": "A second reader beside a pathologist, on fine-needle aspirate "
    "measurements taken like those of the Wisconsin data set.",
    "limitations": "Trained on 569 cases from one clinic in the 1990s; not validated on "
    "other populations or instruments.\nNever a diagnosis on its own.",
}
"""The facts of the demo model's card (``vigil card``), given at registration."""


def train(seed: int = 0) -> tuple[Any, Any, Any, Any, dict[str, float]]:
    """``(model, reference with target, holdout features, holdout labels, metrics)``."""

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    features = frame.drop(columns=["target"])
    train_x, test_x, train_y, test_y = train_test_split(
        features, frame["target"], test_size=0.3, random_state=seed, stratify=frame["target"]
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    model.fit(train_x, train_y)
    proba = model.predict_proba(test_x)[:, 1]
    metrics = {
        "accuracy": float(accuracy_score(test_y, model.predict(test_x))),
        "roc_auc": float(roc_auc_score(test_y, proba)),
    }
    reference = train_x.assign(target=train_y.to_numpy())
    assert np.isfinite(proba).all()
    return model, reference, test_x, test_y, metrics
