"""Global importance, computed at registration and stored with the version: equal to
shap's mean |SHAP value| over the same reference rows, and shown by ``vigil model show``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsRegressor
from typer.testing import CliRunner

from vigil.app import Vigil, reset_default
from vigil.cli import app as cli
from vigil.explain.explainers import import_shap


def test_registration_stores_global_importance_equal_to_shaps(
    vigil_home: Path, binary: tuple[pd.DataFrame, Any], regression: tuple[pd.DataFrame, Any]
) -> None:
    X, y = binary
    vigil = Vigil()
    model = LogisticRegression().fit(X, y)
    mv = vigil.register(model, name="churn", reference=X)
    importance = mv.manifest["importance"]
    assert (importance["method"], importance["output"], importance["exact"]) == (
        "linear",
        "log-odds",
        True,
    )
    # Over the stored reference sample (all 200 rows here), against the reference mean.
    sample = vigil.load("models:/churn/1").profile
    assert sample is not None
    rows = pd.DataFrame({c: sample.sample[c] for c in X.columns})
    assert importance["rows"] == len(rows) == 200
    shap = import_shap()
    masker = shap.maskers.Independent(X.to_numpy().mean(axis=0)[None, :], max_samples=1)
    want = np.abs(shap.LinearExplainer(model, masker)(rows.to_numpy()).values).mean(axis=0)
    got = importance["features"]
    assert list(got) == [X.columns[i] for i in np.argsort(-want)]  # largest first
    np.testing.assert_allclose([got[c] for c in X.columns], want, atol=1e-9)

    Xr, yr = regression
    sampled = vigil.register(KNeighborsRegressor().fit(Xr, yr), name="price", reference=Xr)
    assert sampled.manifest["importance"]["exact"] is False
    assert sampled.manifest["importance"]["rows"] == 16
    unexplained = vigil.register(LogisticRegression().fit(X, y), name="bare")  # no reference
    assert unexplained.manifest.get("importance") is None

    reset_default()
    shown = CliRunner().invoke(cli, ["model", "show", "models:/churn/1"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "Global importance" in shown.stdout
    assert "linear attributions (exact) of the log-odds, over 200 reference rows" in shown.stdout
    top = next(iter(got))
    assert any(f"│ {top} " in line and "█" * 20 in line for line in shown.stdout.splitlines())
    as_json = CliRunner().invoke(cli, ["model", "show", "models:/churn/1", "--json"])
    assert json.loads(as_json.stdout)["manifest"]["importance"]["features"] == got
