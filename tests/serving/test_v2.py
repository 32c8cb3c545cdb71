"""Open Inference Protocol v2 over a real socket, by hand and with tritonclient."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tests.serving.conftest import CLF_FEATURES, Models, ServerThread

from vigil.errors import ValidationError
from vigil.serving.codecs import v2
from vigil.serving.provider import StaticProvider


def test_one_2d_tensor_flat_and_nested(client: httpx.Client, models: Models):
    X = models.X_clf[:4]
    for data in (X.ravel().tolist(), X.tolist()):
        body = {
            "id": "req-1",
            "inputs": [{"name": "input-0", "shape": [4, 20], "datatype": "FP64", "data": data}],
        }
        r = client.post("/v2/models/clf/infer", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out["model_name"], out["model_version"], out["id"]) == ("clf", "1", "req-1")
        predict, proba = out["outputs"]
        assert predict == {
            "name": "predict",
            "shape": [4],
            "datatype": "INT64",
            "data": models.clf.predict(X).tolist(),
        }
        assert proba["name"] == "predict_proba" and proba["shape"] == [4, 2]
        np.testing.assert_allclose(
            np.reshape(proba["data"], (4, 2)), models.clf.predict_proba(X), atol=0
        )


def test_one_tensor_per_feature_and_requested_outputs(client: httpx.Client, models: Models):
    X = models.X_clf[:3]
    inputs = [
        {"name": n, "shape": [3, 1] if j % 2 else [3], "datatype": "FP64", "data": X[:, j].tolist()}
        for j, n in enumerate(CLF_FEATURES)
    ][::-1]
    body = {"inputs": inputs, "outputs": [{"name": "predict"}]}
    r = client.post("/v2/models/clf/versions/2/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_version"] == "2" and [o["name"] for o in out["outputs"]] == ["predict"]
    assert out["outputs"][0]["data"] == models.clf2.predict(X).tolist()


def test_bytes_tensor_for_a_categorical_model(client: httpx.Client, models: Models):
    frame = models.shop_frame.iloc[:5]
    inputs = [
        {"name": "age", "shape": [5], "datatype": "FP64", "data": frame["age"].tolist()},
        {"name": "income", "shape": [5], "datatype": "FP32", "data": frame["income"].tolist()},
        {"name": "city", "shape": [5], "datatype": "BYTES", "data": frame["city"].tolist()},
    ]
    out = client.post("/v2/models/shop/infer", json={"inputs": inputs}).json()
    assert out["outputs"][0]["datatype"] == "BYTES"
    assert out["outputs"][0]["data"] == models.shop.predict(frame).tolist()


def test_metadata_health_and_errors(client: httpx.Client):
    assert client.get("/v2").json()["name"] == "vigil"
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2/models/clf").json()
    assert meta["versions"] == ["1", "2"] and meta["platform"] == "vigil_sklearn"
    assert meta["inputs"][0] == {"name": "f0", "datatype": "FP64", "shape": [-1]}
    assert meta["outputs"][1] == {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}
    assert client.get("/v2/models/clf/versions/2/ready").json() == {"name": "clf", "ready": True}
    missing = client.get("/v2/models/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    wrong = client.post(
        "/v2/models/clf/infer",
        json={"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
    )
    assert wrong.status_code == 422 and "[N, 20]" in wrong.json()["error"]
    short = client.post(
        "/v2/models/clf/infer",
        json={"inputs": [{"name": "x", "shape": [2, 20], "datatype": "FP64", "data": [1.0] * 39}]},
    )
    assert short.status_code == 400 and "needs 40 values, got 39" in short.json()["error"]


def test_tritonclient_round_trip(server: ServerThread, models: Models):
    """The published v2 client, with JSON tensors both ways (binary_data=False; its
    defaults, binary tensors, are in test_v2_binary.py)."""
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("clf")
        assert client.get_model_metadata("clf")["name"] == "clf"
        X = models.X_clf[:6]
        tensor = triton.InferInput("input-0", list(X.shape), "FP64")
        tensor.set_data_from_numpy(X, binary_data=False)
        outputs = [
            triton.InferRequestedOutput("predict", binary_data=False),
            triton.InferRequestedOutput("predict_proba", binary_data=False),
        ]
        result = client.infer("clf", [tensor], outputs=outputs, model_version="2")
        np.testing.assert_array_equal(result.as_numpy("predict"), models.clf2.predict(X))
        np.testing.assert_allclose(
            result.as_numpy("predict_proba"), models.clf2.predict_proba(X), atol=0
        )
    finally:
        client.close()


def test_more_input_tensors_than_the_column_limit_is_413(client: httpx.Client):
    # clf has 20 features: 4 x 20 + 64 = 144 columns at most.
    inputs = [
        {"name": f"x{i}", "shape": [1], "datatype": "FP64", "data": [1.0]} for i in range(145)
    ]
    r = client.post("/v2/models/clf/infer", json={"inputs": inputs})
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "payload_too_large" and r.json()["detail"]["limit"] == 144
    assert "VIGIL_SERVE_MAX_COLUMNS" in r.json()["error"]


def test_a_shape_of_many_dimensions_is_refused_before_its_product(provider: StaticProvider):
    # The product of 100,000 sizes of 2**62 is a 6-million-bit integer that took minutes
    # to compute (each multiplication costs as much as all the ones before); a tabular
    # tensor has one or two dimensions, so the shape is refused at once. 1 s is a liveness
    # budget (the check takes microseconds).
    tensor = {"name": "x", "shape": [2**62] * 100_000, "datatype": "FP64", "data": [1.0]}
    started = time.perf_counter()
    with pytest.raises(ValidationError, match="input 'x': a tabular tensor has shape"):
        v2.decode(provider.get("clf"), {"inputs": [tensor]})
    assert time.perf_counter() - started < 1.0


def test_long_tensor_names_are_cut_in_errors(client: httpx.Client):
    name = "n" * 100_000
    r = client.post(
        "/v2/models/clf/infer",
        json={"inputs": [{"name": name, "shape": [1], "datatype": "FP64", "data": "x"}]},
    )
    assert r.status_code == 400 and len(r.text) < 1000, r.text[:200]
