"""A table of bad requests: exact status and a JSON body naming the problem; the server
keeps serving afterwards."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.serving.conftest import CLF_FEATURES, Models, records

ROW = {n: 0.5 for n in CLF_FEATURES}
URL = "/v1/models/clf/predict"


def row(**changes: Any) -> dict[str, Any]:
    return {**ROW, **changes}


def without(name: str) -> dict[str, Any]:
    return {k: v for k, v in ROW.items() if k != name}


JSON = {"Content-Type": "application/json"}

# (id, method, url, body (dict -> JSON, bytes -> raw), headers, status, error code, detail)
CASES: list[tuple[str, str, str, Any, dict[str, str], int, str, dict[str, Any]]] = [
    ("malformed-json", "POST", URL, b'{"instances": [', JSON, 400, "malformed_request", {}),
    (
        "string-number",
        "POST",
        URL,
        {"instances": [row(f2="1.5")]},
        {},
        422,
        "validation_error",
        {"field": "f2", "row": 0, "got": "the string '1.5'"},
    ),
    (
        "bool-for-number",
        "POST",
        URL,
        {"instances": [ROW, row(f7=True)]},
        {},
        422,
        "validation_error",
        {"field": "f7", "row": 1, "got": "the boolean true"},
    ),
    (
        "null-not-nullable",
        "POST",
        URL,
        {"instances": [row(f0=None)]},
        {},
        422,
        "validation_error",
        {"field": "f0", "row": 0, "got": "null"},
    ),
    (
        "infinity",
        "POST",
        URL,
        b'{"instances": [{"f0": 1e400}]}',
        JSON,
        400,
        "malformed_request",
        {},
    ),
    (
        "nan-in-split",
        "POST",
        URL,
        {"columns": CLF_FEATURES, "data": [[None] * 20]},
        {},
        422,
        "validation_error",
        {"field": "f0", "row": 0},
    ),
    (
        "missing-feature",
        "POST",
        URL,
        {"instances": [without("f9")]},
        {},
        422,
        "validation_error",
        {"field": "f9", "got": "missing"},
    ),
    (
        "extra-feature",
        "POST",
        URL,
        {"instances": [row(zz=1.0)]},
        {},
        422,
        "validation_error",
        {"field": "zz", "got": "an extra feature"},
    ),
    (
        "empty-instances",
        "POST",
        URL,
        {"instances": []},
        {},
        422,
        "validation_error",
        {"got": "0 rows"},
    ),
    (
        "ragged-rows",
        "POST",
        URL,
        {"instances": [[0.1] * 20, [0.1] * 19]},
        {},
        422,
        "validation_error",
        {"row": 1, "got": "19 values"},
    ),
    (
        "ragged-split",
        "POST",
        URL,
        {"columns": CLF_FEATURES, "data": [[0.1] * 21]},
        {},
        422,
        "validation_error",
        {"row": 0, "got": "21 values"},
    ),
    ("no-input-key", "POST", URL, {"rows": []}, {}, 422, "validation_error", {"field": "rows"}),
    (
        "wrong-content-type",
        "POST",
        URL,
        b"f0=1",
        {"Content-Type": "text/plain"},
        415,
        "unsupported_media_type",
        {"got": "text/plain"},
    ),
    (
        "unknown-model",
        "POST",
        "/v1/models/nope/predict",
        {"instances": [ROW]},
        {},
        404,
        "model_not_found",
        {"model": "nope"},
    ),
    (
        "unknown-version",
        "POST",
        "/v1/models/clf/versions/9/predict",
        {"instances": [ROW]},
        {},
        404,
        "version_not_found",
        {"version": "9"},
    ),
    # str.isdigit() holds for '²' but int() refuses it; 5,000 digits pass neither int() nor
    # any integer column: each is simply a version this server does not have.
    (
        "superscript-version",
        "GET",
        "/v1/models/clf/versions/%C2%B2",
        None,
        {},
        404,
        "version_not_found",
        {"version": "²"},
    ),
    (
        "huge-version",
        "POST",
        "/v1/models/clf/versions/" + "9" * 5000 + "/predict",
        {"instances": [ROW]},
        {},
        404,
        "version_not_found",
        {"version": "9" * 20},
    ),
    (
        "unknown-alias",
        "POST",
        "/v1/models/clf@staging/predict",
        {"instances": [ROW]},
        {},
        404,
        "alias_not_found",
        {"alias": "staging"},
    ),
    (
        "traversal-name",
        "POST",
        "/v1/models/..%2Fetc/predict",
        {"instances": [ROW]},
        {},
        404,
        "not_found",
        {},
    ),
    (
        "bad-name-characters",
        "POST",
        "/v1/models/bad$name/predict",
        {"instances": [ROW]},
        {},
        422,
        "invalid_name",
        {"kind": "model name", "value": "bad$name"},
    ),
    (
        "no-proba",
        "POST",
        "/v1/models/reg/predict",
        {"instances": [{"x0": 1, "x1": 1, "x2": 1, "x3": 1, "rooms": 2}], "return_proba": True},
        {},
        422,
        "validation_error",
        {"field": "return_proba"},
    ),
    (
        "fractional-int",
        "POST",
        "/v1/models/reg/predict",
        {"instances": [{"x0": 1, "x1": 1, "x2": 1, "x3": 1, "rooms": 2.5}]},
        {},
        422,
        "validation_error",
        {"field": "rooms", "row": 0},
    ),
    (
        "unknown-category-type",
        "POST",
        "/v1/models/shop/predict",
        {"instances": [{"age": 30, "income": 50, "city": 7}]},
        {},
        422,
        "validation_error",
        {"field": "city", "got": "the number 7"},
    ),
    ("unknown-path", "GET", "/v1/nothing", None, {}, 404, "not_found", {}),
    ("wrong-method", "GET", URL, None, {}, 405, "method_not_allowed", {"allowed": ["POST"]}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_request_answers(client: httpx.Client, case: tuple[Any, ...]):
    _, method, url, body, headers, status, code, detail = case
    if isinstance(body, bytes):
        r = client.request(method, url, content=body, headers=headers)
    else:
        r = client.request(method, url, json=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    problem = r.json()
    assert problem["error"] == code and problem["message"]
    for key, value in detail.items():
        assert problem["detail"][key] == value, problem


def test_oversized_payload_is_refused_before_reading(client: httpx.Client):
    big = {"instances": [ROW] * 3000}  # ~1.3 MB against a 256 KiB limit
    r = client.post(URL, json=big)
    assert r.status_code == 413
    assert r.json()["detail"]["limit"] == 256 * 1024


def test_model_failure_is_a_500_without_traceback(client: httpx.Client, provider: Any):
    served = provider.get("reg")
    original = served.bundle.model.estimator
    served.bundle.model.estimator = None  # predict now raises AttributeError inside the model
    try:
        r = client.post(
            "/v1/models/reg/predict",
            json={"instances": [{"x0": 1, "x1": 1, "x2": 1, "x3": 1, "rooms": 2}]},
        )
    finally:
        served.bundle.model.estimator = original
    assert r.status_code == 500
    assert r.json()["error"] == "prediction_failed" and "Traceback" not in r.text


def test_server_still_serves_after_the_bad_requests(client: httpx.Client, models: Models):
    for case in CASES:
        if isinstance(case[3], bytes):
            client.request(case[1], case[2], content=case[3], headers=case[4])
        else:
            client.request(case[1], case[2], json=case[3], headers=case[4])
    r = client.post(URL, json={"instances": records(models.X_clf[:3], CLF_FEATURES)})
    assert r.status_code == 200
    assert r.json()["predictions"] == models.clf.predict(models.X_clf[:3]).tolist()


@pytest.mark.parametrize("version", ["%C2%B2", "9" * 5000, "9223372036854775808"])
def test_v2_routes_answer_a_bad_version_404(client: httpx.Client, version: str):
    for path in ("", "/ready"):
        r = client.get(f"/v2/models/clf/versions/{version}{path}")
        assert r.status_code == 404, r.text
        assert r.json()["code"] == "version_not_found" and "served versions: [1, 2]" in r.text
