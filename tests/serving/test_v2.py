"""Open Inference Protocol v2 over a real socket, by hand and with tritonclient."""

from __future__ import annotations

import httpx
import numpy as np
import tritonclient.http as triton
from tests.serving.conftest import CLF_FEATURES, Models, ServerThread


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
    """The published v2 client, with JSON tensors (binary_data=False: the binary extension
    is not implemented)."""
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
