"""``POST /v1/models/{name}/explain`` on a real server: the engine's values over HTTP, the
same validation as predict, bounded work, and clear 4xx answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC
from tests.explain.conftest import NAMES, Bundler
from tests.serving.conftest import ServerThread

from vigil.explain.explainers import ExplainLimits, explain, explainer_for
from vigil.serving.app import create_app
from vigil.serving.config import ServingSettings
from vigil.serving.provider import ServedModel, StaticProvider


@pytest.fixture(scope="module")
def served(
    binary: tuple[pd.DataFrame, Any],
    regression: tuple[pd.DataFrame, Any],
    bundled: Bundler,
) -> dict[str, Any]:
    X, y = binary
    Xr, yr = regression
    return {
        "logit": (bundled(LogisticRegression().fit(X, y), X), X),
        "price": (bundled(LinearRegression().fit(Xr, yr), Xr), Xr),
        "knn": (bundled(KNeighborsClassifier().fit(X, y), X), X),
        "svc": (bundled(SVC().fit(X, y), X), X),
    }


@pytest.fixture(scope="module")
def client(served: dict[str, Any]) -> Iterator[httpx.Client]:
    settings = ServingSettings(max_wait_ms=1.0)
    models = [ServedModel(b, name=n, version=1, settings=settings) for n, (b, _) in served.items()]
    app = create_app(StaticProvider(models, settings=settings))
    app.dataplane.explanations.limits = ExplainLimits(max_evals=64, background_rows=16)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def _records(X: pd.DataFrame) -> list[dict[str, float]]:
    return [dict(zip(NAMES, map(float, row), strict=True)) for row in X.to_numpy()]


def test_linear_attributions_over_http_equal_the_engine_and_add_up(
    client: httpx.Client, served: dict[str, Any]
) -> None:
    bundle, X = served["logit"]
    r = client.post("/v1/models/logit/explain", json={"instances": _records(X.iloc[:4])})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["request_id"] == r.headers["x-request-id"]
    assert (body["model"], body["version"], body["method"], body["exact"]) == (
        "logit",
        1,
        "linear",
        True,
    )
    assert body["output"] == "log-odds"
    want = explain(explainer_for(bundle), X.to_numpy()[:4])
    for i, row in enumerate(body["explanations"]):
        assert row["label"] == 1
        assert list(row["attributions"]) == NAMES
        np.testing.assert_allclose(list(row["attributions"].values()), want.values[i])
        assert row["base_value"] + sum(row["attributions"].values()) == pytest.approx(
            row["output"], abs=1e-9
        )
        expected = bundle.model.estimator.decision_function(X.iloc[[i]])[0]
        assert row["output"] == pytest.approx(expected, abs=1e-9)
    other = client.post(
        "/v1/models/logit/versions/1/explain",
        json={"columns": NAMES, "data": X.to_numpy()[:1].tolist(), "class": 0},
    )
    assert other.status_code == 200, other.text
    assert other.json()["explanations"][0]["label"] == 0
    assert other.json()["explanations"][0]["output"] == pytest.approx(
        -body["explanations"][0]["output"]
    )


def test_a_model_without_an_exact_explainer_is_sampled_within_bounds(
    client: httpx.Client, served: dict[str, Any]
) -> None:
    _, X = served["knn"]
    r = client.post("/v1/models/knn/explain", json={"instances": _records(X.iloc[:2])})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["method"], body["exact"], body["output"]) == ("permutation", False, "probability")
    for row in body["explanations"]:
        assert 0.0 <= row["output"] <= 1.0
        assert row["base_value"] + sum(row["attributions"].values()) == pytest.approx(row["output"])
    many = client.post("/v1/models/knn/explain", json={"instances": _records(X.iloc[:11])})
    assert many.status_code == 413
    assert "at most 10 rows" in many.json()["message"]


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/v1/models/logit/explain", {"inputs": {"x0": 1.0}}, 422, "missing"),
        ("/v1/models/logit/explain", {"inputs": {n: "a" for n in NAMES}}, 422, "expected a number"),
        ("/v1/models/logit/explain", {"inputs": dict.fromkeys(NAMES, 0.0), "class": 7}, 422, "unknown class 7"),
        ("/v1/models/price/explain", {"inputs": dict.fromkeys(NAMES, 0.0), "class": 1}, 422, "regressor"),
        ("/v1/models/svc/explain", {"inputs": dict.fromkeys(NAMES, 0.0)}, 422, "no class probabilities"),
        ("/v1/models/nope/explain", {"inputs": dict.fromkeys(NAMES, 0.0)}, 404, "no model named"),
        ("/v1/models/logit/explain", {"inputs": dict.fromkeys(NAMES, 0.0), "return_proba": True}, 422, "predict option"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_4xx_that_says_what_to_fix(
    client: httpx.Client, path: str, body: dict[str, Any], status: int, fragment: str
) -> None:
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert fragment in r.json()["message"]


def test_the_exact_path_bounds_rows_per_request(client: httpx.Client) -> None:
    rows = [dict.fromkeys(NAMES, 0.0)] * 1_001
    r = client.post("/v1/models/price/explain", json={"instances": rows})
    assert r.status_code == 413
    assert "at most 1000 rows" in r.json()["message"]
