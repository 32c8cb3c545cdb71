"""The MLflow scoring protocol with payloads exactly as MLflow's clients write them."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pytest
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


CSV = {"Content-Type": "text/csv"}


@pytest.mark.parametrize("quoted", [False, True])
def test_a_csv_header_past_the_column_limit_is_413_before_parsing(
    client: httpx.Client, quoted: bool
):
    # 20,000 columns took pandas seconds on the event loop (2,000,000 took half an hour);
    # clf takes 20 features, so at most 4 x 20 + 64 = 144 columns are read.
    names = [f'"c,{i}"' if quoted else f"c{i}" for i in range(20_000)]
    body = ",".join(names) + "\n" + ",".join(["1"] * len(names)) + "\n"
    r = client.post("/invocations", content=body.encode(), headers=CSV)
    assert r.status_code == 413, r.text
    assert r.json()["error_code"] == "BAD_REQUEST"
    counted = "more than 144" if quoted else "20000"  # quoted names are read up to the 145th
    assert f"the CSV header has {counted} columns" in r.json()["message"]
    assert "accepts at most 144 per request" in r.json()["message"]


def test_a_quoted_header_within_the_limit_is_counted_exactly(client: httpx.Client, models: Models):
    # 144 names, each with a comma inside its quotes: 287 commas, 144 columns.
    extra = [f'"x,{i}"' for i in range(144 - len(CLF_FEATURES))]
    header = ",".join(CLF_FEATURES + extra)
    row = ",".join(["0.5"] * 144)
    r = client.post("/invocations", content=f"{header}\n{row}\n".encode(), headers=CSV)
    assert r.status_code == 400 and "unknown feature 'x," in r.json()["message"], r.text


@pytest.mark.parametrize("digits", [400, 5000])
def test_a_huge_csv_number_is_a_400_naming_the_feature(client: httpx.Client, digits: int):
    header = ",".join(CLF_FEATURES)
    row = ",".join(["9" * digits] + ["0.5"] * (len(CLF_FEATURES) - 1))
    r = client.post("/invocations", content=f"{header}\n{row}\n".encode(), headers=CSV)
    assert r.status_code == 400, r.text
    assert "feature 'f0' in row 0" in r.json()["message"] and len(r.text) < 1000


def test_nan_bodies_are_parsed_with_bounded_nesting_and_numbers(client: httpx.Client):
    # Python's json reads the NaN token orjson refuses; it recursed on [ x 200,000.
    deep = client.post("/invocations", content=b"[" * 200_000 + b"NaN", headers=JSON)
    assert deep.status_code == 400 and "not valid JSON" in deep.json()["message"], deep.text

    def split(*values: str) -> bytes:
        row = ",".join([*values] + ["0.5"] * (len(CLF_FEATURES) - len(values)))
        return b'{"dataframe_split": {"columns": %s, "data": [[%s]]}}' % (
            json.dumps(CLF_FEATURES).encode(),
            row.encode(),
        )

    # A 401-digit integer (past float64) reads as infinity, as orjson reads numbers.
    for values, message in [
        (("NaN", "1" + "0" * 400), "feature 'f0' in row 0 is missing"),
        (("0.5", "1" + "0" * 400, "NaN"), "feature 'f1' in row 0 is infinite"),
    ]:
        r = client.post("/invocations", content=split(*values), headers=JSON)
        assert r.status_code == 400 and message in r.json()["message"], r.text


def test_duplicate_and_surplus_columns_in_dataframe_split(client: httpx.Client):
    columns = [f"c{i}" for i in range(5_000)] + ["c0"]
    body = {"dataframe_split": {"columns": columns, "data": [[1.0] * len(columns)]}}
    r = client.post("/invocations", json=body)
    assert r.status_code == 413 and "5001 columns" in r.json()["message"], r.text
    body = {"dataframe_split": {"columns": [*CLF_FEATURES, "f0"], "data": [[1.0] * 21]}}
    r = client.post("/invocations", json=body)
    assert r.status_code == 400 and "column 'f0' appears twice" in r.json()["message"]


def test_long_field_names_are_cut_in_errors(client: httpx.Client):
    r = client.post("/invocations", json={"k" * 100_000: 1, "q" * 100_000: 2})
    assert r.status_code == 400 and len(r.text) < 1000, r.text[:200]
