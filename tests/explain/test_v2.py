"""Explanations on the Open Inference Protocol v2 infer route (``parameters.explain``),
called with tritonclient as published: REST with binary tensors both ways and JSON, and
gRPC."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as tg
import tritonclient.http as triton
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC
from tests.explain.conftest import NAMES, Bundler
from tests.serving.test_grpc import GrpcServerThread
from tritonclient.utils import InferenceServerException

from vigil.explain.explainers import explain, explainer_for
from vigil.serving.app import create_app
from vigil.serving.config import ServingSettings
from vigil.serving.provider import ServedModel, StaticProvider


@pytest.fixture(scope="module")
def served(binary: tuple[pd.DataFrame, Any], bundled: Bundler) -> dict[str, Any]:
    X, y = binary
    return {
        "logit": (bundled(LogisticRegression().fit(X, y), X), X),
        "svc": (bundled(SVC().fit(X, y), X), X),  # no probabilities: not explainable
    }


@pytest.fixture(scope="module")
def server(served: dict[str, Any]) -> Iterator[GrpcServerThread]:
    settings = ServingSettings(max_wait_ms=1.0)
    models = [ServedModel(b, name=n, version=1, settings=settings) for n, (b, _) in served.items()]
    with GrpcServerThread(create_app(StaticProvider(models, settings=settings))) as running:
        yield running


@pytest.fixture
def triton_client(server: GrpcServerThread) -> Iterator[Any]:
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    yield client
    client.close()


def _input(X: np.ndarray, binary: bool = True) -> Any:
    tensor = triton.InferInput("input-0", list(X.shape), "FP64")
    tensor.set_data_from_numpy(X, binary_data=binary)
    return tensor


def test_infer_with_explain_answers_attributions_beside_predictions(
    triton_client: Any, served: dict[str, Any]
) -> None:
    bundle, frame = served["logit"]
    X = frame.to_numpy()[:5]
    result = triton_client.infer("logit", [_input(X)], parameters={"explain": True})
    response = result.get_response()
    # tritonclient's default: every output came back as binary data, these two included.
    assert [o["name"] for o in response["outputs"]] == [
        "predict",
        "predict_proba",
        "explanation",
        "explanation_base_value",
    ]
    assert all("data" not in o for o in response["outputs"])
    model = bundle.model.estimator
    np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(frame.iloc[:5]))
    values = result.as_numpy("explanation")
    base = result.as_numpy("explanation_base_value")
    assert values.shape == (5, len(NAMES)) and base.shape == (5,)
    parameters = response["parameters"]
    assert (parameters["explain_method"], parameters["explain_exact"]) == ("linear", True)
    assert parameters["explain_output"] == "log-odds"
    assert json.loads(parameters["explain_features"]) == NAMES
    assert json.loads(parameters["explain_labels"]) == [1] * 5
    # The engine's values (checked against shap in tests/explain/test_explainers.py), adding
    # up to scikit-learn's own decision function.
    want = explain(explainer_for(bundle), X)
    np.testing.assert_allclose(values, want.values, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(base + values.sum(axis=1), model.decision_function(frame.iloc[:5]))

    # The JSON twin, explaining class 0: the same rows, the other side of the log-odds.
    as_json = triton_client.infer(
        "logit",
        [_input(X, binary=False)],
        outputs=[triton.InferRequestedOutput("predict", binary_data=False)],
        parameters={"explain": True, "explain_class": 0},
    )
    assert json.loads(as_json.get_response()["parameters"]["explain_labels"]) == [0] * 5
    np.testing.assert_allclose(as_json.as_numpy("explanation"), -values, atol=1e-12)


def test_without_the_parameter_nothing_changes(triton_client: Any) -> None:
    X = np.zeros((2, len(NAMES)))
    response = triton_client.infer("logit", [_input(X)]).get_response()
    assert [o["name"] for o in response["outputs"]] == ["predict", "predict_proba"]
    assert "parameters" not in response


def test_bad_explain_requests_are_4xx_that_say_why(server: GrpcServerThread) -> None:
    tensor = {"name": "input-0", "shape": [1, 5], "datatype": "FP64", "data": [0.0] * 5}
    cases = [
        ("logit", {"explain": "yes"}, 400, "parameters.explain must be true or false"),
        ("logit", {"explain_class": 1}, 400, "needs parameters.explain: true"),
        ("logit", {"explain": True, "explain_class": 7}, 422, "7"),
        ("svc", {"explain": True}, 422, "probabilit"),
    ]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for model, parameters, status, message in cases:
            r = http.post(
                f"/v2/models/{model}/infer", json={"inputs": [tensor], "parameters": parameters}
            )
            assert r.status_code == status, (parameters, r.text)
            assert message in r.json()["error"], r.text


def test_tritonclient_sees_a_refused_explanation_as_an_error(triton_client: Any) -> None:
    X = np.zeros((1, len(NAMES)))
    with pytest.raises(InferenceServerException, match="probabilit"):
        triton_client.infer("svc", [_input(X)], parameters={"explain": True})


def test_grpc_model_infer_explains_the_same(
    server: GrpcServerThread, served: dict[str, Any]
) -> None:
    bundle, frame = served["logit"]
    X = frame.to_numpy()[:3]
    client = tg.InferenceServerClient(server.target)
    try:
        tensor = tg.InferInput("input-0", list(X.shape), "FP64")
        tensor.set_data_from_numpy(X)
        result = client.infer("logit", [tensor], parameters={"explain": True, "explain_class": 1})
        values = result.as_numpy("explanation")
        base = result.as_numpy("explanation_base_value")
        want = explain(explainer_for(bundle), X)
        np.testing.assert_allclose(values, want.values, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(base, want.base_values, rtol=1e-12, atol=1e-12)
        parameters = result.get_response(as_json=True)["parameters"]
        assert parameters["explain_method"] == {"string_param": "linear"}
        assert parameters["explain_exact"] == {"bool_param": True}
        assert json.loads(parameters["explain_features"]["string_param"]) == NAMES
        with pytest.raises(InferenceServerException, match="probabilit"):
            client.infer("svc", [tensor], parameters={"explain": True})
    finally:
        client.close()
