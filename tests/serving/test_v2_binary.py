"""The v2 binary tensor data extension, both ways: tritonclient with its defaults, by-hand
bodies, the malformed-framing table (docs/serving.md) and a fuzz of the framing."""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import ml_dtypes
import numpy as np
import orjson
import pandas as pd
import pytest
import tritonclient.http as triton
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from tests._waiting import wait_for
from tests.serving.conftest import CLF_FEATURES, REG_FEATURES, Models, ServerThread
from tests.serving.test_metrics_openapi import _samples

from vigil.app import Vigil
from vigil.errors import PayloadTooLargeError
from vigil.experiments.config import parse_endpoint
from vigil.experiments.store import EndpointStore
from vigil.serving.codecs import v2, v2_binary
from vigil.serving.provider import StaticProvider
from vigil.serving.server import free_port
from vigil.settings import load_settings


@pytest.fixture
def triton_client(server: ServerThread) -> Any:
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    yield client
    client.close()


def _input(name: str, array: np.ndarray, datatype: str, binary: bool = True) -> Any:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    if binary:
        tensor.set_data_from_numpy(array)  # the client's default: binary_data=True
    else:
        tensor.set_data_from_numpy(array, binary_data=False)
    return tensor


def _framed(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, dict[str, str]]:
    head = orjson.dumps(header)
    return head + b"".join(chunks), {"inference-header-content-length": str(len(head))}


def _split(response: httpx.Response) -> tuple[dict[str, Any], bytes]:
    length = int(response.headers["inference-header-content-length"])
    return orjson.loads(response.content[:length]), response.content[length:]


# -- tritonclient as published, with its defaults ---------------------------------------


def test_one_2d_tensor_binary_both_ways(triton_client: Any, models: Models) -> None:
    X = models.X_clf[:7]
    result = triton_client.infer("clf", [_input("input-0", X, "FP64")])  # no outputs named
    response = result.get_response()
    assert all("data" not in o for o in response["outputs"])  # both came back as binary
    assert [o["parameters"]["binary_data_size"] for o in response["outputs"]] == [7 * 8, 7 * 2 * 8]
    np.testing.assert_array_equal(result.as_numpy("predict"), models.clf.predict(X))
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), models.clf.predict_proba(X))


@pytest.mark.parametrize("datatype", ["FP64", "FP32", "FP16", "BF16"])
def test_one_tensor_per_feature_binary(triton_client: Any, models: Models, datatype: str) -> None:
    np_type = {"FP64": np.float64, "FP32": np.float32, "FP16": np.float16}.get(
        datatype, ml_dtypes.bfloat16
    )
    X = models.X_clf[:5].astype(np_type)
    inputs = [_input(n, X[:, j].copy(), datatype) for j, n in enumerate(CLF_FEATURES)]
    outputs = [triton.InferRequestedOutput("predict"), triton.InferRequestedOutput("predict_proba")]
    result = triton_client.infer("clf", inputs[::-1], outputs=outputs, model_version="2")
    # What the model sees: the values sent, widened exactly to float64.
    expected = X.astype(np.float64)
    np.testing.assert_array_equal(result.as_numpy("predict"), models.clf2.predict(expected))
    np.testing.assert_array_equal(
        result.as_numpy("predict_proba"), models.clf2.predict_proba(expected)
    )


@pytest.mark.parametrize(
    ("binary_in", "binary_out"), [(False, True), (True, False), (False, False)]
)
def test_json_and_binary_either_way(
    triton_client: Any, models: Models, binary_in: bool, binary_out: bool
) -> None:
    X = models.X_clf[5:9]
    outputs = [triton.InferRequestedOutput("predict_proba", binary_data=binary_out)]
    result = triton_client.infer("clf", [_input("x", X, "FP64", binary_in)], outputs=outputs)
    out = result.get_response()["outputs"]
    assert [o["name"] for o in out] == ["predict_proba"]
    assert ("data" not in out[0]) is binary_out
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), models.clf.predict_proba(X))


def test_mixed_json_and_binary_inputs(triton_client: Any, models: Models) -> None:
    X = models.X_reg[:6]
    inputs = [
        _input(n, X[:, j].copy(), "FP64", binary=j % 2 == 0) for j, n in enumerate(REG_FEATURES[:4])
    ]
    inputs.append(_input("rooms", X[:, 4].astype(np.int64), "INT64"))
    result = triton_client.infer("reg", inputs)
    np.testing.assert_array_equal(result.as_numpy("predict"), models.reg.predict(X))


def test_bytes_inputs_and_outputs_for_a_string_feature(triton_client: Any, models: Models) -> None:
    frame = models.shop_frame.iloc[:9]
    inputs = [
        _input("age", frame["age"].to_numpy(), "FP64"),
        _input("income", frame["income"].to_numpy(np.float32), "FP32"),
        _input("city", frame["city"].to_numpy(dtype=object), "BYTES"),
    ]
    result = triton_client.infer("shop", inputs)
    expected = frame.assign(income=frame["income"].astype(np.float32).astype(np.float64))
    predict = result.as_numpy("predict")  # BYTES back: 4-byte lengths, then UTF-8
    assert [p.decode() for p in predict] == models.shop.predict(expected).tolist()
    np.testing.assert_array_equal(
        result.as_numpy("predict_proba"), models.shop.predict_proba(expected)
    )
    # The same strings sent as JSON give the same answer.
    inputs[2] = _input("city", frame["city"].to_numpy(dtype=object), "BYTES", binary=False)
    again = triton_client.infer("shop", inputs).as_numpy("predict")
    assert again.tolist() == predict.tolist()


def test_server_metadata_names_the_extension(triton_client: Any) -> None:
    assert "binary_tensor_data" in triton_client.get_server_metadata()["extensions"]


def test_validation_is_the_json_path(triton_client: Any, client: httpx.Client) -> None:
    """A NaN in a feature that takes no missing values: the same 422 as in JSON."""
    X = np.zeros((2, 20))
    X[1, 3] = np.nan
    with pytest.raises(triton.InferenceServerException) as raised:
        triton_client.infer("clf", [_input("x", X, "FP64")])
    assert raised.value.status() == "422"
    body, _ = _framed(
        {
            "inputs": [
                {"name": "x", "shape": [2, 20], "datatype": "FP64", "data": X.ravel().tolist()}
            ]
        }
    )
    json_answer = client.post("/v2/models/clf/infer", content=orjson.dumps(orjson.loads(body)))
    assert json_answer.status_code == 422
    assert raised.value.message() == json_answer.json()["error"]


# -- by hand -----------------------------------------------------------------------------


def test_octet_stream_content_type_and_response_framing(
    client: httpx.Client, models: Models
) -> None:
    X = models.X_clf[:3]
    header = {
        "id": "bin-1",
        "inputs": [
            {
                "name": "x",
                "shape": [3, 20],
                "datatype": "FP64",
                "parameters": {"binary_data_size": X.nbytes},
            }
        ],
        "outputs": [
            {"name": "predict", "parameters": {"binary_data": True}},
            {"name": "predict_proba"},
        ],
    }
    body, headers = _framed(header, X.tobytes())
    r = client.post(
        "/v2/models/clf/infer",
        content=body,
        headers={**headers, "content-type": "application/octet-stream"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    meta, raw = _split(r)
    assert meta["id"] == "bin-1" and r.headers["x-request-id"]
    predict, proba = meta["outputs"]
    assert predict == {
        "name": "predict",
        "shape": [3],
        "datatype": "INT64",
        "parameters": {"binary_data_size": 24},
    }
    assert raw == models.clf.predict(X).astype("<i8").tobytes()
    assert proba["data"] == models.clf.predict_proba(X).ravel().tolist()  # JSON: not asked


def test_a_per_output_false_overrides_binary_data_output(client: httpx.Client) -> None:
    header = {
        "inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [0.0] * 20}],
        "outputs": [
            {"name": "predict", "parameters": {"binary_data": False}},
            {"name": "predict_proba"},
        ],
        "parameters": {"binary_data_output": True},
    }
    r = client.post("/v2/models/clf/infer", content=orjson.dumps(header))
    meta, raw = _split(r)
    assert "data" in meta["outputs"][0] and "data" not in meta["outputs"][1]
    assert len(raw) == meta["outputs"][1]["parameters"]["binary_data_size"] == 16


def test_json_requests_without_binary_outputs_are_answered_as_before(client: httpx.Client) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [0.0] * 20}]}
    r = client.post("/v2/models/clf/infer", json=body)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in r.headers


def test_bool_and_integer_datatypes_read_as_their_values() -> None:
    cases = [
        ("BOOL", b"\x00\x01", [False, True]),
        ("INT8", struct.pack("<2b", -3, 4), [-3, 4]),
        ("UINT16", struct.pack("<2H", 7, 65535), [7, 65535]),
        ("INT32", struct.pack("<2i", -1, 2), [-1, 2]),
        ("UINT64", struct.pack("<2Q", 2**64 - 1, 0), [2**64 - 1, 0]),
        ("FP16", np.array([0.5, -2.0], "<f2").tobytes(), [0.5, -2.0]),
        ("BF16", np.array([1.5, -3.0], ml_dtypes.bfloat16).tobytes(), [1.5, -3.0]),
        ("BYTES", b"\x00\x00\x00\x00\x03\x00\x00\x00\xc3\xa9t", ["", "\u00e9t"]),
    ]
    for datatype, raw, values in cases:
        tensor = {"name": "t", "shape": [2], "datatype": datatype}
        tensor["parameters"] = {"binary_data_size": len(raw)}
        assert v2_binary.read_inputs([tensor], memoryview(raw))[0]["data"] == values, datatype


def test_a_tensor_past_the_value_limit_is_413_before_it_is_read(provider: StaticProvider) -> None:
    served = provider.get("clf")
    limit = served.validator.max_cells
    assert limit is not None
    n = limit + 1  # zero-length strings: 4 bytes each
    tensor = {"name": "s", "shape": [n], "datatype": "BYTES"}
    tensor["parameters"] = {"binary_data_size": 4 * n}
    with pytest.raises(PayloadTooLargeError, match="input 's' holds"):
        v2.decode(served, {"inputs": [tensor]}, memoryview(bytes(4 * n)))


# -- malformed framing: the table in docs/serving.md ---------------------------------------

_X = np.arange(40, dtype=np.float64).reshape(2, 20)
_ROWS = {"name": "x", "shape": [2, 20], "datatype": "FP64"}


def _sized(size: int, **tensor: Any) -> dict[str, Any]:
    return {**_ROWS, **tensor, "parameters": {"binary_data_size": size}}


def _city(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def _shop(city: dict[str, Any]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "age", "shape": [2], "datatype": "FP64", "data": [30.0, 40.0]},
            {"name": "income", "shape": [2], "datatype": "FP64", "data": [50.0, 60.0]},
            {"name": "city", "shape": [2], "datatype": "BYTES", **city},
        ]
    }


# (what, model, JSON header, binary part, header value or None to use the JSON's length,
#  the answer's status, the tensor it names, a piece of its message)
MALFORMED: list[tuple[str, str, dict[str, Any], bytes, str | None, int, str, str]] = [
    (
        "header length past the body",
        "clf",
        {"inputs": [_sized(320)]},
        _X.tobytes(),
        "99999",
        400,
        "Inference-Header-Content-Length",
        "but the body holds",
    ),
    (
        "header length not a number",
        "clf",
        {"inputs": [_sized(320)]},
        _X.tobytes(),
        "12a",
        400,
        "Inference-Header-Content-Length",
        "send the length in bytes of the JSON part",
    ),
    (
        "header length zero",
        "clf",
        {"inputs": [_sized(320)]},
        _X.tobytes(),
        "0",
        400,
        "Inference-Header-Content-Length",
        "more than 0",
    ),
    (
        "header length cuts the JSON",
        "clf",
        {"inputs": [_sized(320)]},
        _X.tobytes(),
        "10",
        400,
        "",
        "not valid JSON",
    ),
    (
        "size past the binary part",
        "clf",
        {"inputs": [_sized(328)]},
        _X.tobytes(),
        None,
        400,
        "x",
        "binary_data_size is 328 bytes but only 320 bytes",
    ),
    (
        "bytes left after the last input",
        "clf",
        {"inputs": [_sized(320)]},
        _X.tobytes() + b"\x00",
        None,
        400,
        "binary_data_size",
        "321 bytes of binary data follow the JSON but",
    ),
    (
        "size not shape x datatype",
        "clf",
        {"inputs": [_sized(160)]},
        _X.tobytes()[:160],
        None,
        400,
        "x",
        "binary_data_size is 160 bytes but shape [2, 20] of FP64 (8 bytes each) needs 320",
    ),
    (
        "size not shape x datatype (FP32)",
        "clf",
        {"inputs": [_sized(320, datatype="FP32")]},
        _X.tobytes(),
        None,
        400,
        "x",
        "of FP32 (4 bytes each) needs 160",
    ),
    (
        "size not an integer",
        "clf",
        {"inputs": [_sized(-1)]},
        _X.tobytes(),
        None,
        400,
        "x",
        "must be the tensor's size in bytes",
    ),
    (
        "both data and binary_data_size",
        "clf",
        {"inputs": [_sized(320, data=[0.0] * 40)]},
        _X.tobytes(),
        None,
        400,
        "x",
        "has both 'data' and parameters.binary_data_size",
    ),
    (
        "binary_data_size without the header",
        "clf",
        {"inputs": [_sized(0, shape=[0, 20])]},
        b"",
        "",
        400,
        "x",
        "no Inference-Header-Content-Length header",
    ),
    (
        "raw bytes without the header",
        "clf",
        {"inputs": [_sized(320)]},
        _X.tobytes(),
        "",
        400,
        "",
        "needs the Inference-Header-Content-Length header",
    ),
    (
        "unknown datatype",
        "clf",
        {"inputs": [_sized(320, datatype="FP128")]},
        _X.tobytes(),
        None,
        400,
        "x",
        "datatype must be one of",
    ),
    (
        "BOOL byte other than 0 or 1",
        "clf",
        {"inputs": [_sized(2, shape=[2], datatype="BOOL", name="f0")]},
        b"\x01\x02",
        None,
        400,
        "f0",
        "a BOOL is one byte, 0 (false) or 1 (true)",
    ),
    (
        "BYTES element length cut off",
        "shop",
        _shop({"parameters": {"binary_data_size": 11}}),
        _city(b"paris") + struct.pack("<I", 1000)[:2],
        None,
        400,
        "city",
        "BYTES element 1 of 2 starts at byte 9",
    ),
    (
        "BYTES element running past the tensor",
        "shop",
        _shop({"parameters": {"binary_data_size": 13}}),
        _city(b"paris") + struct.pack("<I", 1000),
        None,
        400,
        "city",
        "says it is 1000 bytes long but only 0 bytes",
    ),
    (
        "BYTES more elements than the shape",
        "shop",
        _shop({"parameters": {"binary_data_size": 21}}),
        _city(b"paris", b"lyon", b""),
        None,
        400,
        "city",
        "4 bytes are left after the 2 BYTES elements",
    ),
    (
        "BYTES shape too large for the size",
        "shop",
        _shop({"shape": [2**40], "parameters": {"binary_data_size": 8}}),
        _city(b"", b""),
        None,
        400,
        "city",
        "BYTES elements but binary_data_size is 8 bytes",
    ),
    (
        "BYTES not UTF-8",
        "shop",
        _shop({"parameters": {"binary_data_size": 10}}),
        _city(b"\xff\xfe", b""),
        None,
        400,
        "city",
        "BYTES element 0 is not UTF-8 text",
    ),
    (
        "binary_data_output not a boolean",
        "clf",
        {"inputs": [_sized(320)], "parameters": {"binary_data_output": "yes"}},
        _X.tobytes(),
        None,
        400,
        "parameters.binary_data_output",
        "must be true or false",
    ),
    (
        "classification asked of an output",
        "clf",
        {
            "inputs": [_sized(320)],
            "outputs": [{"name": "predict_proba", "parameters": {"classification": 2}}],
        },
        _X.tobytes(),
        None,
        400,
        "predict_proba",
        "the classification extension is not supported",
    ),
]


@pytest.mark.parametrize(
    ("model", "header", "binary", "length", "status", "field", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in MALFORMED],
)
def test_malformed_binary_requests(
    client: httpx.Client,
    model: str,
    header: dict[str, Any],
    binary: bytes,
    length: str | None,
    status: int,
    field: str,
    message: str,
) -> None:
    head = orjson.dumps(header)
    headers = {} if length == "" else {"inference-header-content-length": length or str(len(head))}
    r = client.post(f"/v2/models/{model}/infer", content=head + binary, headers=headers)
    assert r.status_code == status, r.text
    problem = r.json()
    assert problem["code"] == "malformed_request"
    assert message in problem["error"], problem["error"]
    if field:
        assert problem["detail"]["field"] == field


def test_the_docs_table_lists_every_malformed_case() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "serving.md").read_text()
    protocols = doc.split("## Protocols", 1)[1].split("\n## ", 1)[0]  # not gRPC's table
    rows = {
        line.split(" | ")[0][2:]: line for line in protocols.splitlines() if line.startswith("| ")
    }
    for what, *_, message in MALFORMED:
        assert what in rows, f"docs/serving.md has no row for {what!r}"
        assert message in rows[what], f"the row for {what!r} does not say {message!r}"


# -- fuzzing the framing ------------------------------------------------------------------

_DATATYPES = ["FP64", "FP32", "FP16", "BF16", "INT64", "INT32", "UINT8", "BOOL", "BYTES", "??"]


@st.composite
def _framed_tensor(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    """A tensor and its raw bytes: mostly sized honestly (so the bytes are interpreted),
    sometimes with a size that lies or is not a size at all."""
    datatype = draw(st.sampled_from(_DATATYPES))
    if draw(st.integers(0, 2)) == 0:  # the rows of clf, whole: a request that can succeed
        datatype = draw(st.sampled_from(["UINT8", "INT8", "INT32", "FP16", "BF16", "FP64"]))
        width = (
            8 if datatype == "FP64" else 4 if datatype == "INT32" else 2 if "16" in datatype else 1
        )
        rows = draw(st.integers(1, 3))
        chunk = draw(st.binary(min_size=rows * 20 * width, max_size=rows * 20 * width))
        tensor = {"name": "x", "shape": [rows, 20], "datatype": datatype}
        return {**tensor, "parameters": {"binary_data_size": len(chunk)}}, chunk
    if datatype == "BYTES" and draw(st.booleans()):
        elements = draw(st.lists(st.binary(max_size=8), max_size=4))
        chunk = _city(*elements)
        shape: list[Any] = [len(elements)]
    else:
        chunk = draw(st.binary(max_size=200))
        itemsize = {"FP64": 8, "INT64": 8, "FP32": 4, "INT32": 4, "UINT8": 1, "BOOL": 1}
        width = itemsize.get(datatype, 2)
        shape = [len(chunk) // width]
        if draw(st.booleans()):
            shape = [1, shape[0]] if draw(st.booleans()) else [shape[0], 1]
    shape = draw(st.one_of(st.just(shape), st.lists(st.integers(-1, 2**63), max_size=3)))
    size: Any = len(chunk)
    if draw(st.integers(0, 4)) == 0:
        size = draw(st.one_of(st.integers(-2, 400), st.none(), st.text(max_size=3)))
    tensor = {
        "name": draw(st.sampled_from(["x", "f0", "f1", "city", "age", "\u00e9"])),
        "shape": shape,
        "datatype": datatype,
        "parameters": {"binary_data_size": size},
    }
    return tensor, chunk


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    model=st.sampled_from(["clf", "shop"]),
    tensors=st.lists(_framed_tensor(), min_size=0, max_size=3),
    trailing=st.one_of(st.just(b""), st.binary(max_size=8)),
    length_delta=st.one_of(st.just(0), st.just(0), st.integers(-50, 50)),
    outputs=st.sampled_from([None, [{"name": "predict", "parameters": {"binary_data": True}}]]),
)
def test_fuzzed_framing_is_never_a_server_error(
    client: httpx.Client,
    model: str,
    tensors: list[tuple[dict[str, Any], bytes]],
    trailing: bytes,
    length_delta: int,
    outputs: Any,
) -> None:
    header: dict[str, Any] = {
        "inputs": [t for t, _ in tensors],
        "parameters": {"binary_data_output": True},
    }
    if outputs is not None:
        header["outputs"] = outputs
    head = orjson.dumps(header)
    body = head + b"".join(c for _, c in tensors) + trailing
    headers = {"inference-header-content-length": str(len(head) + length_delta)}
    r = client.post(f"/v2/models/{model}/infer", content=body, headers=headers, timeout=10)
    assert r.status_code < 500, r.text
    event(f"status {r.status_code}")  # --hypothesis-show-statistics: how deep it got
    if r.status_code >= 400:
        assert r.json()["error"]
    else:
        meta, raw = _split(r)
        assert len(raw) == sum(o["parameters"]["binary_data_size"] for o in meta["outputs"])


def test_metrics_count_binary_requests_as_json_ones(
    triton_client: Any, client: httpx.Client, models: Models
) -> None:
    ok = (
        "vigil_requests_total",
        (
            ("model", "reg"),
            ("protocol", "http"),
            ("route", "v2_infer"),
            ("status", "2xx"),
            ("version", "1"),
        ),
    )
    rows = ("vigil_predicted_rows_total", (("model", "reg"), ("version", "1")))
    bad = (
        "vigil_errors_total",
        (("kind", "malformed_request"), ("protocol", "http"), ("route", "v2_infer")),
    )
    before = _samples(client.get("/metrics").text)
    X = models.X_reg[:4]
    inputs = [_input(n, X[:, j].copy(), "FP64") for j, n in enumerate(REG_FEATURES[:4])]
    inputs.append(_input("rooms", X[:, 4].astype(np.int64), "INT64"))
    triton_client.infer("reg", inputs)
    body, headers = _framed({"inputs": [_sized(8)]}, b"")
    assert client.post("/v2/models/reg/infer", content=body, headers=headers).status_code == 400
    after = _samples(client.get("/metrics").text)
    assert after[ok] - before.get(ok, 0.0) == 1
    assert after[rows] - before.get(rows, 0.0) == 4
    assert after[bad] - before.get(bad, 0.0) == 1


# -- a real `vigil serve` -----------------------------------------------------------------


@pytest.mark.slow
def test_tritonclient_defaults_against_vigil_serve(tmp_path: Path) -> None:
    """Registered models (skops) behind `vigil serve`, called by tritonclient as published
    with its defaults, and an experiment endpoint called with a binary body."""
    X, y = make_classification(n_samples=200, n_features=4, random_state=3)
    frame = pd.DataFrame(X, columns=list("abcd"))
    vigil = Vigil(load_settings(home=tmp_path))
    churn = LogisticRegression().fit(frame, y)
    vigil.register(churn, name="churn", reference=frame.assign(y=y), target="y", alias="production")
    rng = np.random.default_rng(4)
    shop_frame = pd.DataFrame(
        {"age": rng.uniform(18, 80, 200), "city": rng.choice(["paris", "lyon", "nice"], 200)}
    )
    labels = np.where(shop_frame["city"] == "paris", "yes", "no")
    encode = ColumnTransformer(
        [("city", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
    )
    shop = Pipeline([("prep", encode), ("model", LogisticRegression())]).fit(shop_frame, labels)
    vigil.register(
        shop, name="shop", reference=shop_frame.assign(y=labels), target="y", alias="production"
    )
    endpoint = {
        "name": "ep",
        "variants": [{"name": "a", "model": "models:/churn@production"}],
        "policy": {"kind": "fixed", "variant": "a"},
    }
    EndpointStore(vigil).put(parse_endpoint(endpoint), actor="test")
    port = free_port()
    env = {**os.environ, "VIGIL_HOME": str(tmp_path), "VIGIL_MONITOR_ENABLED": "false"}
    command = [sys.executable, "-m", "vigil.cli", "serve", "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:

            def ready() -> bool:
                if proc.poll() is not None:
                    log.seek(0)
                    raise AssertionError(f"vigil serve exited: {log.read().decode()[-2000:]}")
                with contextlib.suppress(httpx.TransportError):
                    return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
                return False

            wait_for(ready, 120, what="/readyz", interval=0.05)
            client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
            try:
                rows = X[:6]
                # One 2-D tensor, binary both ways.
                result = client.infer("churn", [_input("input-0", rows, "FP64")])
                np.testing.assert_array_equal(result.as_numpy("predict"), churn.predict(frame[:6]))
                # The server hands the model a C-ordered matrix, a DataFrame gives it
                # columns: the dot products may round differently in the last bit.
                np.testing.assert_allclose(
                    result.as_numpy("predict_proba"), churn.predict_proba(frame[:6]), rtol=1e-12
                )
                # The JSON twin of the request answers exactly the same.
                as_json = client.infer(
                    "churn",
                    [_input("input-0", rows, "FP64", binary=False)],
                    outputs=[triton.InferRequestedOutput("predict_proba", binary_data=False)],
                )
                np.testing.assert_array_equal(
                    as_json.as_numpy("predict_proba"), result.as_numpy("predict_proba")
                )
                # One 1-D tensor per named feature.
                inputs = [_input(n, rows[:, j].copy(), "FP64") for j, n in enumerate("abcd")]
                result = client.infer("churn", inputs)
                np.testing.assert_array_equal(result.as_numpy("predict"), churn.predict(frame[:6]))
                # A string feature as BYTES, string labels back as BYTES.
                part = shop_frame[:7]
                inputs = [
                    _input("age", part["age"].to_numpy(), "FP64"),
                    _input("city", part["city"].to_numpy(dtype=object), "BYTES"),
                ]
                result = client.infer("shop", inputs)
                predicted = [p.decode() for p in result.as_numpy("predict")]
                assert predicted == shop.predict(part).tolist()
            finally:
                client.close()
            # Through an experiment endpoint: the same framing, the variant named.
            header = {
                "inputs": [_sized(rows.nbytes, shape=list(rows.shape))],
                "parameters": {"binary_data_output": True},
            }
            body, headers = _framed(header, rows.tobytes())
            r = httpx.post(
                f"http://127.0.0.1:{port}/v2/endpoints/ep/infer", content=body, headers=headers
            )
            assert r.status_code == 200, r.text
            meta, raw = _split(r)
            assert meta["parameters"] == {"endpoint": "ep", "variant": "a"}
            assert r.headers["x-vigil-variant"] == "a"
            np.testing.assert_array_equal(
                np.frombuffer(raw[: 6 * 8], "<i8"), churn.predict(frame[:6])
            )
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
