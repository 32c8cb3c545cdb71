"""The MLflow scoring protocol with payloads exactly as MLflow's clients write them."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
from mlflow.utils.proto_json_utils import dump_input_data
from tests.serving.conftest import CLF_FEATURES, REG_FEATURES, Models

JSON = {"Content-Type": "application/json"}


def test_dataframe_split_from_mlflow_client_and_pandas(client: httpx.Client, models: Models):
    frame = pd.DataFrame(models.X_clf[:8], columns=CLF_FEATURES)
    expected = models.clf.predict(frame.to_numpy()).tolist()
    # What mlflow's ScoringServerClient.invoke posts to /invocations.
    r = client.post("/invocations", content=dump_input_data(frame), headers=JSON)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": expected}
    # What a requests user posts by hand.
    body = {"dataframe_split": json.loads(frame.to_json(orient="split"))}
    assert client.post("/invocations", json=body).json()["predictions"] == expected


def test_records_instances_inputs_and_csv(client: httpx.Client, models: Models):
    frame = pd.DataFrame(models.X_reg[:5], columns=REG_FEATURES)
    expected = models.reg.predict(frame.to_numpy())
    url = "/v1/models/reg/invocations"
    payloads = [
        {"dataframe_records": frame.to_dict(orient="records")},
        {"instances": frame.to_dict(orient="records")},
        {"inputs": frame.to_dict(orient="list")},
        {"inputs": frame.to_numpy().tolist()},
    ]
    for payload in payloads:
        r = client.post(url, json=payload)
        assert r.status_code == 200, (payload, r.text)
        np.testing.assert_allclose(r.json()["predictions"], expected, rtol=1e-12)
    csv = client.post(url, content=frame.to_csv(index=False), headers={"Content-Type": "text/csv"})
    assert csv.status_code == 200, csv.text
    np.testing.assert_allclose(csv.json()["predictions"], expected, rtol=1e-12)


def test_mlflow_nan_token_and_categorical_csv(client: httpx.Client, models: Models):
    frame = pd.DataFrame(models.X_reg[:3], columns=REG_FEATURES)
    frame.loc[1, "x2"] = np.nan
    r = client.post("/v1/models/reg/invocations", content=dump_input_data(frame), headers=JSON)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], models.reg.predict(frame.to_numpy()))
    shop = models.shop_frame.iloc[:6]
    csv = client.post(
        "/v1/models/shop/invocations",
        content=shop.to_csv(index=False).encode(),
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    assert csv.json() == {"predictions": models.shop.predict(shop).tolist()}


def test_errors_in_mlflow_style(client: httpx.Client, models: Models):
    frame = pd.DataFrame(models.X_clf[:2], columns=CLF_FEATURES)
    frame.loc[0, "f3"] = np.nan  # not nullable for this model
    r = client.post("/invocations", content=dump_input_data(frame), headers=JSON)
    assert r.status_code == 400
    body = r.json()
    assert body["error_code"] == "BAD_REQUEST" and "'f3' in row 0" in body["message"]
    both = client.post("/invocations", json={"instances": [], "inputs": []})
    assert both.status_code == 400 and "exactly one of" in both.json()["message"]
    plain = client.post("/invocations", content=b"a", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415 and plain.json()["error_code"] == "BAD_REQUEST"
    latin = client.post(
        "/invocations", content=b"f0\n1", headers={"Content-Type": "text/csv; charset=latin-1"}
    )
    assert latin.status_code == 415 and "UTF-8" in latin.json()["message"]
    missing = client.post("/v1/models/nope/invocations", json={"inputs": [[1.0]]})
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_ping_health_version(client: httpx.Client):
    assert client.get("/ping").status_code == 200
    assert client.get("/health").status_code == 200
    assert client.get("/version").text == "0.1.0"
