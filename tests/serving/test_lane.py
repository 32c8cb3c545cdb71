"""The fast lane (vigil.serving.lane): a plain native prediction is answered from the HTTP
protocol with the same bytes and the same log record as the app's, and everything else is
declined before anything is done and answered by the app, errors included."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.serving.conftest import (
    CLF_FEATURES,
    SETTINGS,
    Models,
    ServerThread,
    SklearnAdapter,
    bundles,
    clf_signature,
    records,
)

from vigil.bundle.model import LoadedBundle
from vigil.capture.reader import read_capture
from vigil.capture.settings import CaptureSettings
from vigil.serving.app import ServingApp, create_app
from vigil.serving.capture_runtime import CaptureRuntime
from vigil.serving.provider import StaticProvider


class _Failing(SklearnAdapter):
    """Fails on a row whose first feature is 1e6, after the lane has queued it."""

    def predict(self, X: Any) -> np.ndarray:
        if (np.asarray(X)[:, 0] == 1e6).any():
            raise RuntimeError("the model failed")
        return super().predict(X)


@dataclass
class Served:
    server: ServerThread
    app: ServingApp
    home: Path
    offers: list[bool]
    """Whether the lane took each request offered to it, in order."""

    def exchange(self, raw: bytes, responses: int = 1) -> list[bytes]:
        """Send ``raw`` bytes on one connection; the ``responses`` answers read back."""
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as sock:
            sock.sendall(raw)
            return _read_responses(sock, responses)


def _read_responses(sock: socket.socket, count: int) -> list[bytes]:
    data = b""
    answers: list[bytes] = []
    while len(answers) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = data[:head_end].lower()
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            end = head_end + 4 + length
            if len(data) >= end:
                answers.append(data[:end])
                data = data[end:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed after {len(answers)} answers: {data!r}")
        data += chunk
    return answers


def _post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _json(path: str, payload: Any, *headers: str) -> bytes:
    return _post(path, json.dumps(payload).encode(), "Content-Type: application/json", *headers)


def _parts(answer: bytes) -> tuple[int, list[bytes], bytes]:
    """Status, header lines without ``date`` (it changes each second) and body."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    return status, [h for h in lines[1:] if not h.lower().startswith(b"date:")], body


@pytest.fixture(scope="module")
def served(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("lane")
    failing = LoadedBundle(_Failing(models.clf), clf_signature(), name="failing", version=1)
    provider = StaticProvider(
        [*bundles(models), failing],
        aliases={"clf": {"production": 1, "challenger": 2}},
        settings=SETTINGS,
    )
    capture = CaptureRuntime.from_settings(CaptureSettings(), home=home, store=None)
    app = create_app(provider, capture=capture)
    assert app.lane is not None
    offers: list[bool] = []
    lane_offer = app.lane.offer

    def offer(*args: Any) -> Any:
        taken = lane_offer(*args)
        offers.append(taken is not None)
        return taken

    app.lane.offer = offer  # type: ignore[method-assign]
    with ServerThread(app) as server:
        running = Served(server, app, home, offers)
        # A Host value's first request goes through the app, which admits it for the lane.
        running.exchange(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        yield running


def _row(models: Models, i: int = 0) -> dict[str, float]:
    return records(models.X_clf[i : i + 1], CLF_FEATURES)[0]


PLAIN = [
    ("/v1/models/clf/predict", lambda row: {"inputs": row}),
    ("/v1/models/clf/predict", lambda row: {"instances": [row], "return_proba": True}),
    ("/v1/models/clf@challenger/predict", lambda row: {"instances": [row]}),
    ("/v1/models/clf/versions/2/predict", lambda row: {"inputs": row, "return_proba": False}),
    ("/v1/models/slow/predict", lambda row: {"inputs": row}),
]


@pytest.mark.parametrize(("path", "payload"), PLAIN)
def test_the_lane_answers_a_plain_prediction_with_the_apps_bytes(
    served: Served, models: Models, path: str, payload: Any
) -> None:
    body = payload(_row(models, 3))
    del served.offers[:]
    lane = served.exchange(_json(path, body, "X-Request-ID: same-id"))[0]
    # An Origin header (which a prediction route does not check) sends it through the app.
    app = served.exchange(_json(path, body, "X-Request-ID: same-id", "Origin: http://x"))[0]
    assert served.offers == [True, False]
    assert _parts(lane) == _parts(app)
    status, _, answer = _parts(lane)
    assert status == 200
    decoded = json.loads(answer)
    assert decoded["request_id"] == "same-id"
    version = 2 if ("challenger" in path or "versions/2" in path) else 1
    model = models.clf2 if version == 2 else models.clf
    X = models.X_clf[3:4]
    assert decoded["predictions"] == model.predict(X).tolist()
    if "probabilities" in decoded:
        np.testing.assert_allclose(decoded["probabilities"], model.predict_proba(X), rtol=1e-12)


def test_a_fresh_request_id_is_made_and_sent_back(served: Served, models: Models) -> None:
    answers = [
        served.exchange(_json("/v1/models/clf/predict", {"inputs": _row(models)}))[0]
        for _ in range(2)
    ]
    ids = [json.loads(_parts(a)[2])["request_id"] for a in answers]
    assert ids[0] != ids[1] and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    for answer, rid in zip(answers, ids, strict=True):
        assert f"x-request-id: {rid}".encode() in _parts(answer)[1]


def _declined(models: Models) -> list[tuple[str, bytes, int]]:
    row = _row(models)
    big = json.dumps({"instances": [row] * 200}).encode()  # more than the lane's 64 KiB
    assert len(big) > 64 * 1024
    nan = json.dumps({"inputs": row}).replace(str(row["f0"]), "NaN", 1).encode()
    return [
        (
            "malformed JSON",
            _post("/v1/models/clf/predict", b'{"inputs": {', "Content-Type: application/json"),
            400,
        ),
        ("NaN", _post("/v1/models/clf/predict", nan, "Content-Type: application/json"), 400),
        (
            "a missing feature",
            _json(
                "/v1/models/clf/predict", {"inputs": {k: v for k, v in row.items() if k != "f3"}}
            ),
            422,
        ),
        ("an extra feature", _json("/v1/models/clf/predict", {"inputs": {**row, "zz": 1.0}}), 422),
        (
            "text for a number",
            _json("/v1/models/clf/predict", {"inputs": {**row, "f1": "high"}}),
            422,
        ),
        ("an unknown key", _json("/v1/models/clf/predict", {"inputs": row, "extra": 1}), 422),
        (
            "text/plain",
            _post(
                "/v1/models/clf/predict",
                json.dumps({"inputs": row}).encode(),
                "Content-Type: text/plain",
            ),
            415,
        ),
        ("an unknown model", _json("/v1/models/nope/predict", {"inputs": row}), 404),
        ("a bad version", _json("/v1/models/clf/versions/9/predict", {"inputs": row}), 404),
        (
            "passthrough",
            _json("/v1/models/clf/predict", {"instances": [row], "passthrough": {"s": ["a"]}}),
            200,
        ),
        ("two records", _json("/v1/models/clf/predict", {"instances": [row, row]}), 200),
        (
            "columns and data",
            _json("/v1/models/clf/predict", {"columns": list(row), "data": [list(row.values())]}),
            200,
        ),
        (
            "a body past 64 KiB",
            _post("/v1/models/clf/predict", big, "Content-Type: application/json"),
            200,
        ),
        (
            "a model with an int feature",
            _json(
                "/v1/models/reg/predict",
                {"inputs": {"x0": 1.0, "x1": 2.0, "x2": 3.0, "x3": 4.0, "rooms": 3}},
            ),
            200,
        ),
    ]


def test_what_the_lane_declines_the_app_answers(served: Served, models: Models) -> None:
    for what, raw, status in _declined(models):
        del served.offers[:]
        answer = served.exchange(raw)[0]
        assert _parts(answer)[0] == status, (what, answer)
        assert True not in served.offers, what
    # And the server still answers the plain case from the lane.
    del served.offers[:]
    ok = served.exchange(_json("/v1/models/clf/predict", {"inputs": _row(models)}))[0]
    assert _parts(ok)[0] == 200 and served.offers == [True]


def test_pipelined_requests_are_answered_in_order(served: Served, models: Models) -> None:
    row = _row(models)
    raw = b"".join(
        [
            _json("/v1/models/clf/predict", {"inputs": row}, "X-Request-ID: one"),
            _json(
                "/v1/models/clf/predict", {"inputs": row}, "X-Request-ID: two", "Origin: http://x"
            ),
            _json("/v1/models/slow/predict", {"inputs": row}, "X-Request-ID: three"),
            _post(
                "/v1/models/clf/predict",
                b"{",
                "Content-Type: application/json",
                "X-Request-ID: four",
            ),
        ]
    )
    answers = served.exchange(raw, responses=4)
    assert [_parts(a)[0] for a in answers] == [200, 200, 200, 400]
    ids = [json.loads(_parts(a)[2]).get("request_id") for a in answers]
    assert ids == ["one", "two", "three", "four"]


def test_a_body_in_pieces_and_connection_close(served: Served, models: Models) -> None:
    body = json.dumps({"inputs": _row(models)}).encode()
    head = _post(
        "/v1/models/clf/predict", b"", "Content-Type: application/json", "Connection: close"
    )
    head = head.replace(b"Content-Length: 0", f"Content-Length: {len(body)}".encode())
    del served.offers[:]
    with socket.create_connection(("127.0.0.1", served.server.port), timeout=30) as sock:
        sock.sendall(head)
        sock.sendall(body[:10])
        sock.sendall(body[10:])
        answer = _read_responses(sock, 1)[0]
        assert sock.recv(1) == b""  # closed after the answer, as asked
    status, headers, _ = _parts(answer)
    assert status == 200 and b"connection: close" in headers
    assert served.offers == [True]


def test_a_model_failure_after_queueing_is_answered_and_logged_as_the_app_does(
    served: Served, models: Models
) -> None:
    row = {**_row(models), "f0": 1e6}
    del served.offers[:]
    path = "/v1/models/failing/predict"
    lane = served.exchange(_json(path, {"inputs": row}, "X-Request-ID: failed-lane"))[0]
    app = served.exchange(
        _json(path, {"inputs": row}, "X-Request-ID: failed-lane", "Origin: http://x")
    )[0]
    assert served.offers == [True, False]
    assert _parts(lane) == _parts(app)
    status, _, body = _parts(lane)
    assert status == 422 and json.loads(body)["error"] == "model_rejected_input", body
    frame = read_capture(log_dir=served.home / "capture")
    logged = frame[frame["request_id"] == "failed-lane"]
    assert logged["status"].tolist() == [422, 422]
    assert set(logged["error_code"]) == {"model_rejected_input"}
    again = served.exchange(_json(path, {"inputs": _row(models)}))[0]
    assert _parts(again)[0] == 200


def test_the_lane_logs_what_the_app_logs(served: Served, models: Models) -> None:
    body = {"inputs": _row(models, 5), "return_proba": True}
    served.exchange(_json("/v1/models/clf/predict", body, "X-Request-ID: logged-lane"))
    served.exchange(
        _json("/v1/models/clf/predict", body, "X-Request-ID: logged-app", "Origin: http://x")
    )
    frame = read_capture(log_dir=served.home / "capture")
    lane = frame[frame["request_id"] == "logged-lane"].drop(columns=["request_id"])
    app = frame[frame["request_id"] == "logged-app"].drop(columns=["request_id"])
    assert len(lane) == len(app) == 1
    varying = [c for c in ("time", "latency_ms", "ts", "timestamp") if c in frame.columns]
    left = lane.drop(columns=varying).iloc[0].to_json()
    right = app.drop(columns=varying).iloc[0].to_json()
    assert left == right
    assert lane.iloc[0]["model"] == "clf" and lane.iloc[0]["route"] == "native_predict"


def test_the_lane_counts_its_requests_in_the_metrics(served: Served, models: Models) -> None:
    def total() -> float:
        text = served.exchange(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")[0]
        for line in _parts(text)[2].decode().splitlines():
            wanted = ('route="native_predict"', 'model="clf"', 'version="1"', 'status="2xx"')
            if line.startswith("vigil_requests_total{") and all(w in line for w in wanted):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = total()
    for _ in range(5):
        served.exchange(_json("/v1/models/clf/predict", {"inputs": _row(models)}))
    assert total() - before == 5
