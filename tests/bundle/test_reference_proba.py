"""The classifier's probabilities stored on the profile's labelled sample at registration
(what performance estimated before labels calibrates on)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from vigil.bundle.flavors.sklearn import SklearnModel
from vigil.bundle.profile import build_profile
from vigil.bundle.reference_proba import sample_probabilities
from vigil.bundle.signature import FeatureSpec, OutputSpec, Signature


def test_rows_the_model_refuses_are_left_nan_and_the_others_kept() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    frame["y"] = (frame["a"] + rng.normal(size=200) > 0).astype(int)
    model = LogisticRegression().fit(frame[["a", "b"]], frame["y"])
    frame.loc[3, "a"] = np.nan  # LogisticRegression refuses NaN
    signature = Signature(
        inputs=[FeatureSpec(name="a", dtype="float64"), FeatureSpec(name="b", dtype="float64")],
        outputs=OutputSpec(task="classification", classes=[0, 1], has_proba=True),
    )
    profile = build_profile(frame, signature, target="y", sample_size=500)
    assert profile.target_name == "y"
    proba = np.asarray(sample_probabilities(SklearnModel(model), signature, profile))
    rows = pd.DataFrame(profile.sample)[["a", "b"]]
    missing = rows["a"].isna().to_numpy()
    assert missing.sum() == 1 and np.isnan(proba[missing]).all()
    assert np.allclose(proba[~missing], model.predict_proba(rows[~missing]))
    # No labels in the reference: nothing to calibrate on, nothing stored.
    unlabelled = build_profile(frame.drop(columns="y"), signature, sample_size=500)
    assert sample_probabilities(SklearnModel(model), signature, unlabelled) == []
