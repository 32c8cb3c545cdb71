"""Capture through a real socket: every field of the record for the three protocols, masking,
rejected requests, group commit, and no 2xx when the log cannot be written."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import tritonclient.http as triton
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.capture.conftest import HASH_KEY, Captured
from tests.serving.conftest import CLF_FEATURES

from vigil.capture.masking import MASKED
from vigil.capture.reader import read_capture


def _hash(value: object) -> str:
    return hmac.new(HASH_KEY.encode(), orjson.dumps(value), hashlib.sha256).hexdigest()


def _rows(captured: Captured, request_id: str) -> pd.DataFrame:
    frame = read_capture(store=captured.store, log_dir=captured.capture_dir)
    return frame[frame["request_id"] == request_id].sort_values("row").reset_index(drop=True)


def _rid() -> str:
    return uuid.uuid4().hex


def _check_features(rows: pd.DataFrame, X: np.ndarray) -> None:
    """f0 masked, f1 hashed with the key, f2 dropped, the others as validated (float64)."""
    assert "feature.f2" not in rows.columns
    assert list(rows["feature.f0"]) == [MASKED] * len(X)
    assert list(rows["feature.f1"]) == [_hash(float(v)) for v in X[:, 1]]
    for j in range(3, 20):
        np.testing.assert_array_equal(rows[f"feature.f{j}"].to_numpy(float), X[:, j])


def _check_common(rows: pd.DataFrame, route: str, n: int) -> None:
    assert list(rows["row"]) == list(range(n))
    assert set(rows["route"]) == {route}
    assert set(rows["model"]) == {"clf"} and set(rows["version"]) == {1}
    assert set(rows["status"]) == {200}
    assert rows["caller"].isna().all() and rows["variant"].isna().all()
    assert rows["endpoint"].isna().all() and rows["error_code"].isna().all()
    latency = rows["latency_ms"].to_numpy(float)
    assert (latency > 0).all() and (latency < 10_000).all() and len(set(latency)) == 1


def test_native_prediction_is_logged_with_every_field(captured: Captured) -> None:
    X = captured.X[:3]
    rid = _rid()
    body = {"instances": [dict(zip(CLF_FEATURES, map(float, r), strict=True)) for r in X]}
    r = httpx.post(
        f"{captured.url}/v1/models/clf/predict",
        json={**body, "return_proba": True},
        headers={"x-request-id": rid},
    )
    assert r.status_code == 200
    answer = r.json()
    rows = _rows(captured, rid)
    assert len(rows) == 3
    _check_common(rows, "native_predict", 3)
    _check_features(rows, X)
    assert list(rows["prediction"]) == answer["predictions"]
    proba = np.array(answer["probabilities"])
    np.testing.assert_allclose(rows[["proba.0", "proba.1"]].to_numpy(float), proba)
    # The times are UTC and recent.
    age = pd.Timestamp.now(tz="UTC") - rows["time"].iloc[0]
    assert pd.Timedelta(0) <= age < pd.Timedelta(minutes=5)


def test_v2_inference_is_logged(captured: Captured) -> None:
    X = captured.X[3:5]
    rid = _rid()
    tensor = {"name": "input", "shape": [2, 20], "datatype": "FP64", "data": X.ravel().tolist()}
    r = httpx.post(
        f"{captured.url}/v2/models/clf/infer",
        json={"inputs": [tensor]},
        headers={"x-request-id": rid},
    )
    assert r.status_code == 200
    outputs = {o["name"]: o for o in r.json()["outputs"]}
    rows = _rows(captured, rid)
    _check_common(rows, "v2_infer", 2)
    _check_features(rows, X)
    assert list(rows["prediction"]) == outputs["predict"]["data"]
    np.testing.assert_allclose(
        rows[["proba.0", "proba.1"]].to_numpy(float).ravel(), outputs["predict_proba"]["data"]
    )


def test_v2_binary_inference_is_logged_as_its_json_twin(captured: Captured) -> None:
    """tritonclient's defaults (binary tensors both ways): the same record as JSON."""
    X = captured.X[3:5]
    rid = _rid()
    client = triton.InferenceServerClient(captured.url.removeprefix("http://"))
    try:
        tensor = triton.InferInput("input", list(X.shape), "FP64")
        tensor.set_data_from_numpy(X)
        result = client.infer("clf", [tensor], request_id=rid, headers={"x-request-id": rid})
    finally:
        client.close()
    rows = _rows(captured, rid)
    _check_common(rows, "v2_infer", 2)
    _check_features(rows, X)
    assert list(rows["prediction"]) == result.as_numpy("predict").tolist()
    np.testing.assert_array_equal(
        rows[["proba.0", "proba.1"]].to_numpy(float), result.as_numpy("predict_proba")
    )


def test_a_rejected_binary_request_logs_its_json_part(captured: Captured) -> None:
    X = np.full((1, 20), np.nan)  # no feature of clf takes a missing value: 422
    rid = _rid()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 20],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": X.nbytes},
                }
            ]
        }
    )
    r = httpx.post(
        f"{captured.url}/v2/models/clf/infer",
        content=header + X.tobytes(),
        headers={"x-request-id": rid, "inference-header-content-length": str(len(header))},
    )
    assert r.status_code == 422, r.text
    record = _rows(captured, rid).iloc[0]
    assert (record["status"], record["error_code"]) == (422, "validation_error")
    assert record["error_message"] == r.json()["error"]
    assert orjson.loads(record["raw_body"]) == orjson.loads(header)  # not the raw bytes


def test_mlflow_invocation_is_logged_without_probabilities(captured: Captured) -> None:
    X = captured.X[5:9]
    rid = _rid()
    r = httpx.post(
        f"{captured.url}/invocations",
        json={"dataframe_split": {"columns": CLF_FEATURES, "data": X.tolist()}},
        headers={"x-request-id": rid},
    )
    assert r.status_code == 200
    rows = _rows(captured, rid)
    _check_common(rows, "mlflow_invocations", 4)
    _check_features(rows, X)
    assert list(rows["prediction"]) == r.json()["predictions"]
    assert rows["proba.0"].isna().all()  # MLflow's predict asks for no probabilities


def test_mixed_type_model_logs_its_columns(captured: Captured) -> None:
    frame = captured.shop_rows.iloc[:3]
    rid = _rid()
    r = httpx.post(
        f"{captured.url}/v1/models/shop/predict",
        json={"instances": frame.to_dict("records"), "return_proba": True},
        headers={"x-request-id": rid},
    )
    assert r.status_code == 200
    rows = _rows(captured, rid)
    assert set(rows["model"]) == {"shop"} and set(rows["version"]) == {3}
    np.testing.assert_allclose(rows["feature.age"].to_numpy(float), frame["age"])
    assert list(rows["feature.city"]) == [_hash(c) for c in frame["city"]]
    assert list(rows["prediction"]) == r.json()["predictions"]
    np.testing.assert_allclose(
        rows[["proba.no", "proba.yes"]].to_numpy(float), r.json()["probabilities"]
    )


def test_rejected_requests_are_logged_masked(captured: Captured) -> None:
    secret = 1234.5678
    row = dict(zip(CLF_FEATURES, [0.5] * 20, strict=True))
    bad = {**row, "f0": secret, "f1": secret, "f3": "not a number"}
    cases = [
        ("/v1/models/clf/predict", {"instances": [bad]}, 422, "validation_error", "clf"),
        ("/invocations", {"dataframe_records": [bad]}, 400, "validation_error", "clf"),
        ("/v1/models/nobody/predict", {"instances": [bad]}, 404, "model_not_found", ""),
    ]
    for path, body, status, code, model in cases:
        rid = _rid()
        r = httpx.post(captured.url + path, json=body, headers={"x-request-id": rid})
        assert r.status_code == status, (path, r.text)
        rows = _rows(captured, rid)
        assert len(rows) == 1, path
        record = rows.iloc[0]
        assert (record["status"], record["error_code"], record["model"]) == (status, code, model)
        assert record["error_message"] == r.json().get("message"), path
        assert pd.isna(record["prediction"])
        assert str(secret) not in record["raw_body"]
        logged = orjson.loads(record["raw_body"])
        item = next(iter(logged.values()))[0]
        expected = {k: v for k, v in bad.items() if k != "f2"} | {"f0": MASKED, "f1": _hash(secret)}
        assert item == expected, path

    # A body that is not JSON cannot be masked field by field: it is withheld.
    rid = _rid()
    r = httpx.post(
        f"{captured.url}/v1/models/clf/predict",
        content=b'{"instances": [{"f0": 1234.5678',
        headers={"x-request-id": rid, "content-type": "application/json"},
    )
    assert r.status_code == 400
    record = _rows(captured, rid).iloc[0]
    assert record["error_code"] == "malformed_request" and record["raw_body"].startswith(
        "<withheld"
    )


def test_concurrent_requests_share_writes(captured: Captured) -> None:
    commit = captured.runtime.commit
    writes, requests = commit.writes, commit.requests
    ids = [_rid() for _ in range(48)]
    body = {"inputs": dict(zip(CLF_FEATURES, captured.X[0].tolist(), strict=True))}

    async def fire() -> list[int]:
        async with httpx.AsyncClient(base_url=captured.url, timeout=30) as http:
            calls = [
                http.post("/v1/models/clf/predict", json=body, headers={"x-request-id": i})
                for i in ids
            ]
            return [r.status_code for r in await asyncio.gather(*calls)]

    assert asyncio.run(fire()) == [200] * 48
    logged = read_capture(log_dir=captured.capture_dir)
    assert set(ids) <= set(logged["request_id"])
    assert commit.requests - requests == 48
    assert commit.writes - writes < 48  # several requests per write


@contextmanager
def _disk_full(captured: Captured) -> Iterator[None]:
    """Point the live segment's descriptor at /dev/full: the kernel answers ENOSPC."""
    log = captured.runtime.sink.log
    fd = log._fd
    assert fd is not None
    saved = os.dup(fd)
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, fd)
    try:
        yield
    finally:
        if log._fd == fd:  # nothing failed: put the segment back
            os.dup2(saved, fd)
        os.close(saved)
        os.close(full)


def test_no_2xx_when_the_log_cannot_be_written(captured: Captured) -> None:
    row = dict(zip(CLF_FEATURES, captured.X[0].tolist(), strict=True))
    assert httpx.post(f"{captured.url}/v1/models/clf/predict", json={"inputs": row}).is_success
    rid = _rid()
    with _disk_full(captured):
        r = httpx.post(
            f"{captured.url}/v1/models/clf/predict",
            json={"inputs": row},
            headers={"x-request-id": rid},
        )
    assert r.status_code == 503
    assert "inference log cannot be written" in r.json()["message"]
    assert "No space left on device" in r.json()["message"]
    assert _rows(captured, rid).empty
    after = httpx.post(f"{captured.url}/v1/models/clf/predict", json={"inputs": row})
    assert after.status_code == 200


@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_capture_survives_odd_values(captured: Captured, layout: str) -> None:
    """Values a client can send but JSON cannot hold plainly (NaN in a nullable feature
    becomes null; unicode keys and long strings) never break the log."""
    sink = captured.runtime.sink
    rid = _rid()
    features: object = (
        np.array([[float("nan"), 1.0]])
        if layout == "rows"
        else pd.DataFrame({"a": [float("nan")], "b": ["é\u2028\n" * 50]})
    )
    sink.record_prediction(
        request_id=rid,
        model="odd",
        version=1,
        features=features,
        feature_names=["a", "b"],
        predictions=np.array(["x"], dtype=object),
    )
    rows = _rows(captured, rid)
    assert rows["feature.a"].isna().all() and list(rows["prediction"]) == ["x"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=40, derandomize=True, deadline=None, database=None)
@given(
    path=st.sampled_from(["/v1/models/clf/predict", "/v2/models/clf/infer", "/invocations"]),
    body=st.one_of(
        _JSON.map(lambda v: json.dumps(v).encode()),  # big integers, NaN tokens and all
        st.fixed_dictionaries(
            {
                "instances": st.lists(
                    st.dictionaries(st.sampled_from([*CLF_FEATURES, "email"]), _JSON, max_size=21),
                    max_size=3,
                )
            }
        ).map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=64),
    ),
)
def test_any_body_is_answered_and_logged_never_5xx(
    captured: Captured, path: str, body: bytes
) -> None:
    rid = _rid()
    r = httpx.post(
        captured.url + path,
        content=body,
        headers={"x-request-id": rid, "content-type": "application/json"},
    )
    assert r.status_code < 500, r.text
    rows = _rows(captured, rid)
    assert len(rows) >= 1 and set(rows["status"]) == {r.status_code}
