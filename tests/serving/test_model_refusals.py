"""No input a client sends produces a 500: a null the model cannot take is a 422 naming the
feature, and a model that raises on a well-formed input it cannot handle is a 422 carrying
the model's message; only a model that fails on everything is the server's 500. On every
protocol: native, Open Inference Protocol v2, MLflow ``/invocations`` (400, as MLflow
answers bad input) and experiment endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from tests._waiting import wait_for
from tests.experiments._endpoints import ConstantClassifier, create_endpoint, make_vigil, register
from tests.serving.conftest import Models, ServerThread, SklearnAdapter, shop_signature

from vigil.bundle.model import LoadedBundle
from vigil.bundle.signature import FeatureSpec, OutputSpec, Signature
from vigil.serving.app import create_app
from vigil.serving.config import ServingSettings
from vigil.serving.provider import StaticProvider
from vigil.serving.registry_provider import RegistryProvider

NAMES = ["a", "b"]


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 2))
    logistic = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    # A bundle registered before nullability was probed: every feature marked nullable,
    # though LogisticRegression raises on NaN.
    signature = Signature(
        inputs=[FeatureSpec(name=n, dtype="float64") for n in NAMES],
        outputs=OutputSpec(task="classification", dtype="int64", classes=[0, 1], has_proba=True),
    )
    picky = ConstantClassifier(1, fail_above=10.0).fit(X, None)
    broken = SklearnAdapter(logistic)
    provider = StaticProvider(
        [
            LoadedBundle(SklearnAdapter(logistic), signature, name="old", version=1),
            LoadedBundle(SklearnAdapter(picky), signature, name="picky", version=1),
            LoadedBundle(broken, signature, name="broken", version=1),
        ],
        settings=ServingSettings(mlflow_model="old"),
    )
    with ServerThread(create_app(provider)) as server, httpx.Client(base_url=server.url) as http:
        wait_for(lambda: http.get("/readyz").status_code == 200, what="readiness")
        broken.estimator = None  # from now on it fails on every input
        yield http


def _native(http: httpx.Client, model: str, row: dict[str, Any]) -> httpx.Response:
    return http.post(f"/v1/models/{model}/predict", json={"instances": [row]})


def _v2(http: httpx.Client, model: str, row: dict[str, Any]) -> httpx.Response:
    inputs = [{"name": n, "shape": [1], "datatype": "FP64", "data": [row[n]]} for n in NAMES]
    return http.post(f"/v2/models/{model}/infer", json={"inputs": inputs})


def _mlflow(http: httpx.Client, model: str, row: dict[str, Any]) -> httpx.Response:
    return http.post(f"/v1/models/{model}/invocations", json={"dataframe_records": [row]})


PROTOCOLS = {"native": (_native, 422), "v2": (_v2, 422), "mlflow": (_mlflow, 400)}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_null_the_model_cannot_take_is_a_client_error(
    client: httpx.Client, protocol: str
) -> None:
    send, status = PROTOCOLS[protocol]
    r = send(client, "old", {"a": None, "b": 0.5})
    assert r.status_code == status, r.text
    assert "contains NaN" in r.text and "Traceback" not in r.text
    if protocol == "native":
        body = r.json()
        assert body["error"] == "model_rejected_input"
        assert body["detail"]["model_error"].startswith("ValueError: Input X contains NaN")
    # the model still answers complete rows
    assert send(client, "old", {"a": 1.0, "b": 0.5}).status_code == 200


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_value_the_model_refuses_is_a_client_error(client: httpx.Client, protocol: str) -> None:
    send, status = PROTOCOLS[protocol]
    r = send(client, "picky", {"a": 11.0, "b": 0.5})
    assert r.status_code == status, r.text
    assert "f0 above 10.0" in r.text


def test_a_model_that_fails_on_everything_is_the_servers_500(client: httpx.Client) -> None:
    r = _native(client, "broken", {"a": 1.0, "b": 0.5})
    assert r.status_code == 500
    assert r.json()["error"] == "prediction_failed" and "Traceback" not in r.text


def test_on_an_endpoint_a_refusal_is_a_422_and_counts_against_its_variant(
    tmp_path: Path,
) -> None:
    vigil = make_vigil(tmp_path / "home")
    # Fails for f0 > 1; the reference data (f0 in [0, 1]) never makes it fail.
    register(vigil, "m", ConstantClassifier(0, fail_above=1.0), alias="production")
    register(vigil, "m", ConstantClassifier(1, fail_above=1.0))
    create_endpoint(
        vigil,
        {
            "name": "ep",
            "salt": "s",
            "variants": [
                {"name": "a", "model": "models:/m@production"},
                {"name": "b", "model": "models:/m/2"},
            ],
            "policy": {"kind": "split", "weights": {"a": 50, "b": 50}},
        },
    )
    provider = RegistryProvider(vigil, poll_interval=0.2)
    router = vigil.endpoint_router(provider, poll_interval=0.2, flush_interval=0.1)
    app = vigil.serving_app(provider, endpoints=router)
    with ServerThread(app) as server, httpx.Client(base_url=server.url) as http:
        wait_for(lambda: http.get("/readyz").status_code == 200, what="readiness")
        url = "/v1/endpoints/ep/predict"
        refused = http.post(url, json={"instances": [{"f0": 5.0, "f1": 0.5, "f2": 0.5}]})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == "model_rejected_input"
        variant = refused.json()["detail"]["variant"]
        assert variant in ("a", "b")
        assert http.post(url, json={"instances": [{"f0": 0.5, "f1": 0.5, "f2": 0.5}]}).is_success
        wait_for(
            lambda: (
                variant in router.state.stats("ep")
                and router.state.stats("ep")[variant].errors == 1
            ),
            what="the refusal counted against the variant",
        )


def test_a_registered_logistic_regression_refuses_null_by_name(tmp_path: Path) -> None:
    """The first-hour flow: register without reference, send a null, get a 422 naming it,
    directly and through an endpoint."""
    vigil = make_vigil(tmp_path / "home")
    frame = pd.DataFrame({"tenure": [1.0, 5.0, 9.0, 3.0], "spend": [3.0, 1.0, 2.0, 4.0]})
    for c in (1.0, 0.1):
        model = LogisticRegression(C=c).fit(frame, [0, 1, 1, 0])
        vigil.register(model, name="churn", alias="production")
    create_endpoint(
        vigil,
        {
            "name": "ab",
            "salt": "s",
            "variants": [
                {"name": "a", "model": "models:/churn/1"},
                {"name": "b", "model": "models:/churn/2"},
            ],
            "policy": {"kind": "split", "weights": {"a": 50, "b": 50}},
        },
    )
    provider = RegistryProvider(vigil, poll_interval=0.2)
    router = vigil.endpoint_router(provider, poll_interval=0.2, flush_interval=0.1)
    with ServerThread(vigil.serving_app(provider, endpoints=router)) as server:
        row = {"tenure": None, "spend": 1.0}
        for path in ("/v1/models/churn/predict", "/v1/endpoints/ab/predict"):
            r = httpx.post(f"{server.url}{path}", json={"instances": [row]})
            assert r.status_code == 422, r.text
            assert r.json()["error"] == "validation_error"
            assert r.json()["detail"]["field"] == "tenure" and r.json()["detail"]["got"] == "null"
            assert "does not accept missing values" in r.json()["message"]


@pytest.mark.parametrize(("policy", "status"), [("accept", 200), ("refuse", 422)])
def test_unseen_category_policy_over_http(models: Models, policy: str, status: int) -> None:
    settings = ServingSettings(unseen_categories=policy)  # type: ignore[arg-type]
    bundle = LoadedBundle(SklearnAdapter(models.shop), shop_signature(), name="shop", version=1)
    provider = StaticProvider([bundle], settings=settings)
    with ServerThread(create_app(provider, settings)) as server:
        wait_for(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, what="readiness")
        row = {"age": 30.0, "income": 50.0, "city": "oslo"}
        r = httpx.post(f"{server.url}/v1/models/shop/predict", json={"instances": [row]})
    assert r.status_code == status, r.text
    if status == 422:
        assert r.json()["detail"] == {
            "field": "city",
            "row": 0,
            "expected": "a category ('paris', 'lyon', 'nice')",
            "got": "the unseen category 'oslo'",
        }
