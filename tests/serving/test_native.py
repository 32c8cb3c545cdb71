"""The native JSON protocol over a real socket: answers equal the model's own."""

from __future__ import annotations

import httpx
import numpy as np
from tests.serving.conftest import CLF_FEATURES, REG_FEATURES, Models, records


def test_records_match_the_model_including_probabilities(client: httpx.Client, models: Models):
    X = models.X_clf[:7]
    r = client.post(
        "/v1/models/clf/predict", json={"instances": records(X, CLF_FEATURES), "return_proba": True}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "clf" and body["version"] == 1  # default alias 'production'
    assert body["predictions"] == models.clf.predict(X).tolist()
    np.testing.assert_allclose(body["probabilities"], models.clf.predict_proba(X), rtol=0, atol=0)
    assert body["classes"] == [0, 1]
    assert len(body["request_id"]) == 32 and r.headers["x-request-id"] == body["request_id"]


def test_columns_in_any_order_split_and_single_record(client: httpx.Client, models: Models):
    X = models.X_clf[:5]
    order = CLF_FEATURES[::-1]
    shuffled = [[row[CLF_FEATURES.index(c)] for c in order] for row in X.tolist()]
    split = client.post("/v1/models/clf/predict", json={"columns": order, "data": shuffled})
    assert split.json()["predictions"] == models.clf.predict(X).tolist()
    one = client.post("/v1/models/clf/predict", json={"inputs": records(X[:1], CLF_FEATURES)[0]})
    assert one.json()["predictions"] == models.clf.predict(X[:1]).tolist()
    rows = client.post("/v1/models/clf/predict", json={"instances": X.tolist()})
    assert rows.json()["predictions"] == models.clf.predict(X).tolist()


def test_alias_and_version_routes_pick_the_right_model(client: httpx.Client, models: Models):
    X = models.X_clf[:20]
    payload = {"instances": records(X, CLF_FEATURES), "return_proba": True}
    challenger = client.post("/v1/models/clf@challenger/predict", json=payload).json()
    version2 = client.post("/v1/models/clf/versions/2/predict", json=payload).json()
    assert challenger["version"] == version2["version"] == 2
    np.testing.assert_allclose(version2["probabilities"], models.clf2.predict_proba(X), atol=0)
    assert challenger["probabilities"] == version2["probabilities"]


def test_regressor_with_nulls_and_integer_feature(client: httpx.Client, models: Models):
    X = models.X_reg[:6].copy()
    rows = records(X, REG_FEATURES)
    rows[2]["x1"] = None  # nullable feature: a missing value the model handles natively
    X[2, 1] = np.nan
    r = client.post("/v1/models/reg/predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], models.reg.predict(X), rtol=1e-12)


def test_categorical_pipeline_gets_a_frame(client: httpx.Client, models: Models):
    frame = models.shop_frame
    r = client.post(
        "/v1/models/shop/predict",
        json={"instances": frame.to_dict("records"), "return_proba": True},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 3 and body["classes"] == ["no", "yes"]
    assert body["predictions"] == models.shop.predict(frame).tolist()
    np.testing.assert_allclose(body["probabilities"], models.shop.predict_proba(frame), atol=0)


def test_client_request_id_is_echoed(client: httpx.Client, models: Models):
    r = client.post(
        "/v1/models/clf/predict",
        json={"instances": records(models.X_clf[:1], CLF_FEATURES)},
        headers={"X-Request-ID": "trace-42"},
    )
    assert r.json()["request_id"] == "trace-42" == r.headers["x-request-id"]


def test_model_listing_and_metadata(client: httpx.Client):
    listed = client.get("/v1/models").json()["models"]
    assert [(m["name"], m["version"]) for m in listed] == [
        ("clf", 1),
        ("clf", 2),
        ("reg", 1),
        ("shop", 3),
        ("slow", 1),
    ]
    meta = client.get("/v1/models/clf@challenger").json()
    assert meta["version"] == 2 and meta["ready"] is True and meta["flavor"] == "sklearn"
    assert [f["name"] for f in meta["signature"]["inputs"]] == CLF_FEATURES
    ready = client.get("/readyz").json()
    assert ready == {"status": "ready", "models": len(client.get("/v1/models").json()["models"])}
    assert client.get("/livez").status_code == 200


def test_surplus_columns_are_413_and_duplicates_422(client: httpx.Client):
    wide = {f"c{i}": 1.0 for i in range(5_000)}
    for body in (
        {"inputs": wide},
        {"instances": [wide]},
        {"columns": list(wide), "data": [list(wide.values())]},
    ):
        r = client.post("/v1/models/clf/predict", json=body)
        assert r.status_code == 413, r.text
        assert r.json()["error"] == "payload_too_large"
        assert r.json()["detail"] == {"limit": 144, "columns": 5_000}
    r = client.post(
        "/v1/models/clf/predict", json={"columns": [*CLF_FEATURES, "f3"], "data": [[0.5] * 21]}
    )
    assert r.status_code == 422 and r.json()["message"] == "column 'f3' appears twice"
