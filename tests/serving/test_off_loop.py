"""Where work runs: a large body is decoded and validated on a worker thread, a small one on
the event loop (a hand-off would cost it more than the work)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from tests.serving.conftest import CLF_FEATURES, ServerThread

from vigil.serving.codecs import mlflow, v2
from vigil.serving.executors import INLINE_BODY_BYTES, INLINE_CELLS
from vigil.serving.http import Request
from vigil.serving.validation import Validator

ROWS = 1_000  # 20,000 values in about 200 KB: past both inline limits, within the body limit


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """``(what, thread name)`` of each decode and validation the server makes."""
    seen: list[tuple[str, str]] = []

    def spy(what: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            seen.append((what, threading.current_thread().name))
            return fn(*args, **kwargs)

        return recorded

    monkeypatch.setattr(Request, "read_json", spy("json", Request.read_json))
    monkeypatch.setattr(Validator, "validate", spy("validate", Validator.validate))
    one_record = Validator.one_record

    def fused(self: Validator, records: Any) -> Any:  # the fast lane's validation
        valid = one_record(self, records)
        if valid is not None:
            seen.append(("validate", threading.current_thread().name))
        return valid

    monkeypatch.setattr(Validator, "one_record", fused)
    monkeypatch.setattr(mlflow, "decode_request", spy("mlflow", mlflow.decode_request))
    monkeypatch.setattr(v2, "decode", spy("v2", v2.decode))
    yield seen


def _placed(seen: list[tuple[str, str]], loop: str) -> list[tuple[str, str]]:
    return [(what, "loop" if name == loop else name.rsplit("_", 1)[0]) for what, name in seen]


def test_a_large_body_is_decoded_and_validated_on_the_decode_pool(
    server: ServerThread, client: httpx.Client, threads: list[tuple[str, str]]
) -> None:
    X = np.random.default_rng(0).normal(size=(ROWS, len(CLF_FEATURES))).round(6)
    assert X.size > INLINE_CELLS
    body = {"instances": X.tolist()}
    csv = ",".join(CLF_FEATURES) + "\n" + "\n".join(",".join(map(str, r)) for r in X.tolist())
    tensor = {"name": "x", "shape": list(X.shape), "datatype": "FP64", "data": X.ravel().tolist()}
    sent = [
        client.post("/v1/models/clf/predict", json=body),
        client.post("/v2/models/clf/infer", json={"inputs": [tensor]}),
        client.post("/invocations", content=csv, headers={"content-type": "text/csv"}),
    ]
    assert all(len(r.request.content) > INLINE_BODY_BYTES for r in sent)
    assert [r.status_code for r in sent] == [200, 200, 200]
    loop = server.thread.name
    assert _placed(threads, loop) == [
        ("json", "vigil-decode"),
        ("validate", "vigil-decode"),
        ("json", "vigil-decode"),
        ("v2", "vigil-decode"),
        ("validate", "vigil-decode"),
        ("mlflow", "vigil-decode"),
        ("validate", "vigil-decode"),
    ]


def test_a_small_body_stays_on_the_event_loop(
    server: ServerThread, client: httpx.Client, threads: list[tuple[str, str]]
) -> None:
    row = dict.fromkeys(CLF_FEATURES, 0.5)
    assert client.post("/v1/models/clf/predict", json={"instances": [row]}).status_code == 200
    csv = ",".join(CLF_FEATURES) + "\n" + ",".join(["0.5"] * len(CLF_FEATURES))
    r = client.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    assert r.status_code == 200
    assert _placed(threads, server.thread.name) == [
        ("validate", "loop"),
        ("mlflow", "loop"),
        ("validate", "loop"),
    ]


def test_a_large_binary_v2_body_is_decoded_and_validated_on_the_decode_pool(
    server: ServerThread, client: httpx.Client, threads: list[tuple[str, str]]
) -> None:
    X = np.random.default_rng(1).normal(size=(ROWS, len(CLF_FEATURES)))
    tensor = {"name": "x", "shape": list(X.shape), "datatype": "FP64"}
    header = orjson.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": X.nbytes}}]})
    framing = {"inference-header-content-length": str(len(header))}
    small = orjson.dumps(
        {"inputs": [{**tensor, "shape": [1, 20], "parameters": {"binary_data_size": 160}}]}
    )
    sent = [
        client.post("/v2/models/clf/infer", content=header + X.tobytes(), headers=framing),
        client.post(
            "/v2/models/clf/infer",
            content=small + X[:1].tobytes(),
            headers={"inference-header-content-length": str(len(small))},
        ),
    ]
    assert len(sent[0].request.content) > INLINE_BODY_BYTES > len(sent[1].request.content)
    assert [r.status_code for r in sent] == [200, 200]
    assert _placed(threads, server.thread.name) == [
        ("json", "vigil-decode"),
        ("v2", "vigil-decode"),
        ("validate", "vigil-decode"),
        ("v2", "loop"),
        ("validate", "loop"),
    ]
