"""The demo's retraining job: ``python -m vigil.demo.retrain``, run by the update policy.

The policy's ``command`` action runs it with the run's facts in its environment
(``VIGIL_POLICY_TRAIN_FILE``, ``VIGIL_POLICY_MANIFEST``, ``VIGIL_POLICY_LABEL``,
``VIGIL_POLICY_MODEL``, ``VIGIL_HOME``; see docs/policies.md). It fits the served model's
recipe (scaler and logistic regression) again, on the exported traffic: the captured
features, before and after they shifted, with the labels that came back. Having seen the
shifted rows with their labels, it stops reading larger sizes as malignancy, which is what
the served version gets wrong since the shift. It registers the result with the exported
rows as its reference and ``candidate_for`` the model, which hands it to the run's gate.

Only vigil's core dependencies (pandas, scikit-learn) are needed: ``make demo`` installs no
more than ``vigil[serve]``.
"""

from __future__ import annotations

import json
import os
import sys

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vigil.app import Vigil
from vigil.settings import load_settings


def main() -> int:
    model_name = os.environ["VIGIL_POLICY_MODEL"]
    label = os.environ["VIGIL_POLICY_LABEL"]
    with open(os.environ["VIGIL_POLICY_MANIFEST"], encoding="utf-8") as f:
        features = list(json.load(f)["features"])
    data = pd.read_parquet(os.environ["VIGIL_POLICY_TRAIN_FILE"])
    print(f"training on {len(data)} exported rows, {len(features)} features", flush=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    model.fit(data[features], data[label])
    v = Vigil(load_settings())
    mv = v.register(
        model,
        name=model_name,
        reference=data[[*features, label]],
        target=label,
        description="retrained by the update policy on the exported traffic",
        tags={"trained_by": "vigil.demo.retrain"},
        candidate_for=model_name,
    )
    print(f"registered models:/{mv.name}/{mv.version} as the run's candidate", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
