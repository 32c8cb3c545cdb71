"""``vigil serve --grpc-port`` end to end: two workers sharing the gRPC port, API keys from
``authorization`` metadata, an A/B endpoint through the request's parameters, and the
calls in the inference log and the metrics, all with the published tritonclient.grpc."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as tg
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from tests._waiting import wait_for
from tests.serving.test_auth import FEATURES, make_tokens, register_churn
from tritonclient.utils import InferenceServerException

from vigil.app import Vigil
from vigil.capture.reader import read_capture
from vigil.experiments.config import parse_endpoint
from vigil.experiments.store import EndpointStore
from vigil.serving.server import free_port

ROOT = Path(__file__).resolve().parents[2]
ROWS = np.array([[0.5, -1.0, 0.2, 1.5], [-0.3, 0.8, -1.1, 0.0], [1.2, 0.1, 0.4, -0.6]])

pytestmark = pytest.mark.slow


@dataclass
class Served:
    vigil: Vigil
    home: Path
    url: str
    target: str
    grpc_port: int
    tokens: dict[str, str]
    pids: set[int]


def _worker_pids(url: str) -> set[int]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        int(s.labels["pid"])
        for fam in text_string_to_metric_families(text)
        if fam.name == "vigil_process_resident_memory_bytes"
        for s in fam.samples
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("grpc-serve")
    vigil = register_churn(home)
    EndpointStore(vigil).create(
        parse_endpoint(
            {
                "name": "checkout",
                "salt": "grpc-test",
                "variants": [
                    {"name": "a", "model": "models:/churn@production"},
                    {"name": "b", "model": "models:/churn/2"},
                ],
                "policy": {"kind": "split", "weights": {"a": 50, "b": 50}},
            }
        ),
        actor="tester",
    )
    tokens = make_tokens(vigil)
    port, grpc_port = free_port(), free_port()
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "VIGIL_HOME": str(home), "PYTHONPATH": path}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [
        *(sys.executable, "-m", "vigil.cli", "serve", "--port", str(port)),
        *("--grpc-port", str(grpc_port), "--workers", "2", "--auth", "on"),
    ]
    url = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile(prefix="vigil-grpc-serve-") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

        def ready() -> set[int]:
            if proc.poll() is not None:
                raise RuntimeError(f"vigil serve exited:\n{Path(log.name).read_text()}")
            with contextlib.suppress(httpx.TransportError):
                # A worker's pid shows from its import on; its gRPC socket once it is ready.
                pids = _worker_pids(url)
                if len(pids) == 2 and len(_listening_inodes(grpc_port)) == 2:
                    return pids
            return set()

        try:
            pids = wait_for(ready, 120, what="two ready workers", interval=0.1)
            yield Served(vigil, home, url, f"127.0.0.1:{grpc_port}", grpc_port, tokens, pids)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def client(served: Served) -> Iterator[tg.InferenceServerClient]:
    triton = tg.InferenceServerClient(served.target)
    yield triton
    triton.close()


def _inputs(X: np.ndarray) -> list[tg.InferInput]:
    inputs = []
    for j, name in enumerate(FEATURES):
        tensor = tg.InferInput(name, [len(X)], "FP64")
        tensor.set_data_from_numpy(np.ascontiguousarray(X[:, j]))
        inputs.append(tensor)
    return inputs


def _auth(served: Served, role: str) -> dict[str, str]:
    return {"authorization": f"Bearer {served.tokens[role]}"}


def _models() -> dict[int, LogisticRegression]:
    """Versions 1 and 2 as register_churn fitted them (same data, same seeds)."""
    X, y = make_classification(n_samples=200, n_features=4, random_state=0)
    frame = pd.DataFrame(X, columns=FEATURES)
    return {v: LogisticRegression(C=c).fit(frame, y) for v, c in ((1, 1.0), (2, 0.01))}


def _frame(X: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(X, columns=FEATURES)


def test_probes_are_open_and_models_need_a_key(served: Served, client: tg.InferenceServerClient):
    assert client.is_server_live() and client.is_server_ready()
    with pytest.raises(InferenceServerException) as missing:
        client.infer("churn", _inputs(ROWS))
    assert missing.value.status() == "StatusCode.UNAUTHENTICATED"
    assert "vigil key create --role predict" in missing.value.message()
    with pytest.raises(InferenceServerException) as unread:
        client.get_model_metadata("churn")
    assert unread.value.status() == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(InferenceServerException) as forged:
        client.infer("churn", _inputs(ROWS), headers={"authorization": "Bearer vk_nope_nope"})
    assert forged.value.status() == "StatusCode.UNAUTHENTICATED"


def test_a_read_key_describes_but_may_not_predict(served: Served, client: tg.InferenceServerClient):
    read = _auth(served, "read")
    meta = client.get_model_metadata("churn", headers=read, as_json=True)
    assert [t["name"] for t in meta["inputs"]] == FEATURES
    assert client.is_model_ready("churn", headers=read)
    with pytest.raises(InferenceServerException) as denied:
        client.infer("churn", _inputs(ROWS), headers=read)
    assert denied.value.status() == "StatusCode.PERMISSION_DENIED"
    assert "needs 'predict'" in denied.value.message()


def _rest_proba(served: Served, X: np.ndarray, version: int) -> np.ndarray:
    """The same rows through REST v2 (JSON), for comparison to the last bit."""
    body = {
        "inputs": [
            {"name": n, "shape": [len(X)], "datatype": "FP64", "data": X[:, j].tolist()}
            for j, n in enumerate(FEATURES)
        ]
    }
    r = httpx.post(
        f"{served.url}/v2/models/churn/versions/{version}/infer",
        json=body,
        headers={"Authorization": f"Bearer {served.tokens['predict']}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    proba = next(o for o in r.json()["outputs"] if o["name"] == "predict_proba")
    return np.reshape(proba["data"], proba["shape"])


def test_predictions_equal_the_registered_model(served: Served, client: tg.InferenceServerClient):
    models = _models()
    for version, role in ((1, "predict"), (2, "admin")):
        result = client.infer(
            "churn", _inputs(ROWS), model_version=str(version), headers=_auth(served, role)
        )
        model = models[version]
        np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(_frame(ROWS)))
        proba = result.as_numpy("predict_proba")
        # Bit for bit what REST answers; the model called on a DataFrame (column-major) may
        # differ from the server's row-major input in the last bit of a float.
        np.testing.assert_array_equal(proba, _rest_proba(served, ROWS, version))
        np.testing.assert_allclose(proba, model.predict_proba(_frame(ROWS)), rtol=1e-14, atol=0)


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(fields[9])
    return inodes


def test_both_workers_listen_on_the_grpc_port_and_answer(served: Served):
    inodes = _listening_inodes(served.grpc_port)
    holders = set()
    for pid in served.pids:
        fds = Path(f"/proc/{pid}/fd")
        links = {os.readlink(fd) for fd in fds.iterdir() if fd.is_symlink()}
        if any(f"socket:[{inode}]" in links for inode in inodes):
            holders.add(pid)
    assert holders == served.pids  # each worker bound its own socket (SO_REUSEPORT)
    # Fresh connections, spread by the kernel: every one answered.
    for _ in range(20):
        fresh = tg.InferenceServerClient(served.target)
        try:
            result = fresh.infer("churn", _inputs(ROWS[:1]), headers=_auth(served, "predict"))
            assert result.as_numpy("predict").shape == (1,)
        finally:
            fresh.close()


def _endpoint_call(
    client: tg.InferenceServerClient, served: Served, X: np.ndarray, **extra: object
) -> tuple[str, np.ndarray]:
    result = client.infer(
        "checkout",
        _inputs(X),
        headers=_auth(served, "predict"),
        parameters={"endpoint": "checkout", **extra},
    )
    response = result.get_response()
    params = response.parameters
    assert params["endpoint"].string_param == "checkout"
    variant = params["variant"].string_param
    assert response.model_name == "churn"
    assert response.model_version == {"a": "1", "b": "2"}[variant]
    return variant, result.as_numpy("predict_proba")


def test_an_endpoint_with_a_split_through_parameters(
    served: Served, client: tg.InferenceServerClient
):
    expected = {"a": _rest_proba(served, ROWS, 1), "b": _rest_proba(served, ROWS, 2)}
    seen: Counter[str] = Counter()
    for unit in range(40):
        variant, proba = _endpoint_call(client, served, ROWS, unit_id=f"user-{unit}")
        np.testing.assert_array_equal(proba, expected[variant])
        seen[variant] += 1
        # Sticky: the same unit lands on the same variant, by parameter or by metadata.
        again, _ = _endpoint_call(client, served, ROWS, unit_id=f"user-{unit}")
        assert again == variant
        result = client.infer(
            "checkout",
            _inputs(ROWS),
            headers={**_auth(served, "predict"), "x-unit-id": f"user-{unit}"},
            parameters={"endpoint": "checkout"},
        )
        assert result.get_response().parameters["variant"].string_param == variant
    assert set(seen) == {"a", "b"}  # 40 units at 50/50: both arms, all but surely


def _grpc_request_counts(url: str) -> Counter[tuple[str, str]]:
    """``vigil_requests_total`` over gRPC by (route, status class), summed over models."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    counts: Counter[tuple[str, str]] = Counter()
    for fam in text_string_to_metric_families(text):
        if fam.name == "vigil_requests":
            for s in fam.samples:
                if s.name == "vigil_requests_total" and s.labels.get("protocol") == "grpc":
                    counts[(s.labels["route"], s.labels["status"])] += s.value
    return counts


def test_calls_are_captured_and_counted_with_their_protocol(
    served: Served, client: tg.InferenceServerClient
):
    # Everything this test asserts comes from its own calls (request ids, count deltas):
    # the server is the module's, and the other tests' calls are in its log and counters.
    before = _grpc_request_counts(served.url)
    predict = _auth(served, "predict")
    with pytest.raises(InferenceServerException):  # refused for its key: never logged
        client.infer("churn", _inputs(ROWS[:1]), headers={"x-request-id": "grpc-nokey-1"})
    ok = client.infer("churn", _inputs(ROWS[:2]), headers=predict, request_id="grpc-ok-1")
    assert ok.get_response().id == "grpc-ok-1"
    bad = _inputs(ROWS[:1])[:3]  # the last feature is missing
    with pytest.raises(InferenceServerException) as refused:
        client.infer("churn", bad, headers={**predict, "x-request-id": "grpc-bad-1"})
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "age" in refused.value.message()
    routed = client.infer(
        "checkout",
        _inputs(ROWS[:1]),
        headers=predict,
        request_id="grpc-routed-1",
        parameters={"endpoint": "checkout", "unit_id": "captured-unit"},
    )
    variant = routed.get_response().parameters["variant"].string_param
    mine = {"grpc-ok-1", "grpc-bad-1", "grpc-routed-1"}

    def captured() -> list[pd.DataFrame]:
        frame = read_capture("churn", log_dir=served.home / "capture")
        rows = frame[frame["route"].str.startswith("grpc_")]
        return [rows] if mine <= set(rows["request_id"]) else []

    [rows] = wait_for(captured, 30, what="the gRPC calls in the inference log")
    assert "grpc-nokey-1" not in set(rows["request_id"])  # logged before the later ones
    answered = rows[rows["request_id"] == "grpc-ok-1"]
    assert len(answered) == 2 and set(answered["status"]) == {200}
    assert set(answered["route"]) == {"grpc_model_infer"}
    rejected = rows[rows["request_id"] == "grpc-bad-1"].iloc[0]
    assert (rejected["status"], rejected["error_code"]) == (422, "validation_error")
    through = rows[rows["request_id"] == "grpc-routed-1"].iloc[0]
    assert (through["route"], through["status"]) == ("grpc_endpoint_infer", 200)
    assert (through["endpoint"], through["variant"]) == ("checkout", variant)
    assert variant in ("a", "b") and through["version"] == {"a": 1, "b": 2}[variant]

    # Counted before each answer left the server, so already in the counters.
    counts = _grpc_request_counts(served.url)
    counts.subtract(before)
    assert {key: n for key, n in counts.items() if n} == {
        ("grpc_model_infer", "2xx"): 1,
        ("grpc_model_infer", "4xx"): 2,  # no key, and the missing feature
        ("grpc_endpoint_infer", "2xx"): 1,
    }


def test_the_documented_example_runs(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    text = (ROOT / "docs" / "serving.md").read_text()
    example = text.split("## gRPC", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.setenv("VIGIL_TOKEN", served.tokens["predict"])
    exec(compile(example.replace("localhost:8001", served.target), "serving.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] in ("a", "b") and "[" in printed[0]


def test_an_unknown_endpoint_is_not_found(served: Served, client: tg.InferenceServerClient):
    with pytest.raises(InferenceServerException) as caught:
        client.infer(
            "nope",
            _inputs(ROWS),
            headers=_auth(served, "predict"),
            parameters={"endpoint": "nope"},
        )
    assert caught.value.status() == "StatusCode.NOT_FOUND"
    assert "nope" in caught.value.message()
