"""End to end on a home: a registered model served by ``vigil serve``'s app (capture on),
explained over HTTP with its stored reference sample, and a captured prediction explained
afterwards by ``vigil explain REQUEST_ID``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from sklearn.neighbors import KNeighborsClassifier
from tests.explain.conftest import NAMES
from tests.serving.conftest import ServerThread
from typer.testing import CliRunner

from vigil.app import Vigil, reset_default
from vigil.cli import app as cli
from vigil.errors import NotFoundError
from vigil.explain.explainers import explain, explainer_for
from vigil.serving.validation import Records, Validator


def test_serve_explain_then_explain_the_captured_request(
    vigil_home: Path, binary: tuple[pd.DataFrame, Any]
) -> None:
    X, y = binary
    vigil = Vigil()
    vigil.register(KNeighborsClassifier().fit(X, y), name="knn", reference=X, alias="production")
    rows = [dict(zip(NAMES, map(float, r), strict=True)) for r in X.to_numpy()[:3]]
    app = vigil.serving_app(provider=vigil.serving_provider(uris=["models:/knn/1"]))
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        explained = http.post("/v1/models/knn/explain", json={"instances": rows})
        assert explained.status_code == 200, explained.text
        assert explained.json()["method"] == "permutation"  # the stored sample, read on demand
        answered = http.post("/v1/models/knn/predict", json={"instances": rows})
        assert answered.status_code == 200, answered.text
    request_id = answered.json()["request_id"]
    predictions = answered.json()["predictions"]

    reset_default()  # the CLI's Vigil reads this test's home
    result = CliRunner().invoke(cli, ["explain", request_id, "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert (body["model"], body["version"], body["method"]) == ("knn", 1, "permutation")
    bundle = vigil.load("models:/knn/1")
    want = explain(explainer_for(bundle), Validator(bundle.signature).validate(Records(rows)).X)
    for i, row in enumerate(body["explanations"]):
        assert row["inputs"] == rows[i]
        assert row["label"] == 1  # a binary model: its positive class ...
        np.testing.assert_allclose(list(row["attributions"].values()), want.values[i])
        proba = bundle.model.predict_proba(X.iloc[[i]])[0, 1]  # ... whose probability it is
        assert abs(row["output"] - proba) < 1e-12
        assert predictions[i] == int(proba > 0.5)
    # The same explanation as the server gave (same model, same reference sample, seed).
    served = explained.json()["explanations"]
    for a, b in zip(served, body["explanations"], strict=True):
        np.testing.assert_allclose(
            list(a["attributions"].values()), list(b["attributions"].values())
        )

    shown = CliRunner().invoke(cli, ["explain", request_id], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "model knn version 1, permutation attributions" in shown.stdout
    assert "row 2, class" in shown.stdout and "x4" in shown.stdout

    missing = CliRunner().invoke(cli, ["explain", "no-such-id"])
    assert isinstance(missing.exception, NotFoundError)  # main() prints it as one line
    assert "no answered request has id 'no-such-id'" in missing.exception.message
