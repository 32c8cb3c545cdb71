"""/metrics parses and counts what we caused; /openapi.json is valid and covers every route."""

from __future__ import annotations

import httpx
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families
from tests.serving.conftest import Models

from vigil.serving.routes import ROUTES


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_requests_and_errors(client: httpx.Client, models: Models):
    key = (
        "vigil_requests_total",
        (
            ("model", "reg"),
            ("protocol", "http"),
            ("route", "native_predict"),
            ("status", "2xx"),
            ("version", "1"),
        ),
    )
    err = (
        "vigil_errors_total",
        (("kind", "model_not_found"), ("protocol", "http"), ("route", "native_predict")),
    )
    before = _samples(client.get("/metrics").text)
    row = {"x0": 1.0, "x1": 2.0, "x2": 3.0, "x3": 4.0, "rooms": 2}
    for _ in range(3):
        assert client.post("/v1/models/reg/predict", json={"inputs": row}).status_code == 200
    assert client.post("/v1/models/nobody/predict", json={"inputs": row}).status_code == 404
    after = _samples(client.get("/metrics").text)
    assert after[key] - before.get(key, 0.0) == 3
    assert after[err] - before.get(err, 0.0) == 1
    latency = (
        "vigil_request_duration_seconds_count",
        (("model", "reg"), ("protocol", "http"), ("route", "native_predict"), ("version", "1")),
    )
    assert after[latency] - before.get(latency, 0.0) == 3
    assert after[("vigil_model_load_seconds", (("model", "clf"), ("version", "1")))] > 0
    # Client-typed names never become label values.
    assert not any(dict(labels).get("model") == "nobody" for _, labels in after)


def test_openapi_is_valid_and_covers_every_route(client: httpx.Client):
    doc = client.get("/openapi.json").json()
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    documented = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}
    assert documented == {(r.method, r.template) for r in ROUTES}
    op = doc["paths"]["/v1/models/{name}@{alias}/predict"]["post"]
    assert [p["name"] for p in op["parameters"]] == ["name", "alias"]
    page = client.get("/docs")
    assert page.headers["content-type"].startswith("text/html")
    assert all(r.template in page.text for r in ROUTES)  # the <noscript> list
    assert "https://" not in page.text and "http://" not in page.text  # offline, no CDN


def test_openapi_describes_binary_tensors_on_the_v2_infer_routes(client: httpx.Client):
    doc = client.get("/openapi.json").json()
    for path in ("/v2/models/{name}/infer", "/v2/endpoints/{endpoint}/infer"):
        op = doc["paths"][path]["post"]
        assert set(op["requestBody"]["content"]) == {"application/json", "application/octet-stream"}
        assert "Inference-Header-Content-Length" in op["requestBody"]["description"]
        header = [p for p in op["parameters"] if p["in"] == "header"]
        assert [p["name"] for p in header] == ["Inference-Header-Content-Length"]
        ok = op["responses"]["200"]
        assert "application/octet-stream" in ok["content"]
        assert "Inference-Header-Content-Length" in ok["headers"]
    tensor = doc["components"]["schemas"]["V2Tensor"]
    assert "data" not in tensor["required"] and "binary_data_size" in str(tensor["properties"])
    # Nothing else takes raw bytes.
    others = [
        path
        for path, ops in doc["paths"].items()
        for op in ops.values()
        if "application/octet-stream" in op.get("requestBody", {}).get("content", {})
    ]
    assert sorted(others) == [
        "/v2/endpoints/{endpoint}/infer",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    ]
