"""Authentication on a real server: 401/403/200 by role, revocation, and `vigil serve`'s
refusals, over a real socket against a registry-backed server."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from tests._waiting import wait_for
from tests.serving.conftest import ServerThread
from typer.testing import CliRunner

from vigil.app import Vigil, reset_default
from vigil.auth.keys import KeyStore
from vigil.capture.reader import read_capture
from vigil.cli import app as cli
from vigil.errors import ConfigurationError
from vigil.serving.app import create_app
from vigil.serving.config import ServingSettings
from vigil.serving.provider import StaticProvider
from vigil.serving.registry_provider import RegistryProvider
from vigil.serving.routes import ROUTES
from vigil.settings import load_settings

FEATURES = ["tenure", "spend", "calls", "age"]
ROW = {"tenure": 0.5, "spend": -1.0, "calls": 0.2, "age": 1.5}
CACHE_SECONDS = 0.3
ROLES = ("read", "predict", "admin")


def register_churn(home: Path) -> Vigil:
    """``churn`` versions 1 and 2 (different models), production on 1."""
    X, y = make_classification(n_samples=200, n_features=4, random_state=0)
    frame = pd.DataFrame(X, columns=FEATURES)
    vigil = Vigil(load_settings(home=home))
    for c in (1.0, 0.01):
        model = LogisticRegression(C=c).fit(frame, y)
        vigil.register(model, name="churn", reference=frame.assign(y=y), target="y")
    vigil.registry.set_alias("churn", "production", 1)
    return vigil


def make_tokens(vigil: Vigil) -> dict[str, str]:
    store = KeyStore.from_vigil(vigil)
    return {role: store.create(role, name=f"{role}-test").token for role in ROLES}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Vigil, ServerThread]]:
    """A registry-backed server with authentication on, and its composition root."""
    vigil = register_churn(tmp_path_factory.mktemp("auth-home"))
    settings = ServingSettings(auth="on", auth_cache_seconds=CACHE_SECONDS)
    provider = RegistryProvider(vigil, poll_interval=0.2, settings=settings)
    with ServerThread(vigil.serving_app(provider)) as server:
        yield vigil, server


@pytest.fixture(scope="module")
def tokens(served: tuple[Vigil, ServerThread]) -> dict[str, str]:
    return make_tokens(served[0])


@pytest.fixture
def http(served: tuple[Vigil, ServerThread]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[1].url, timeout=30) as client:
        yield client


PREDICT: list[tuple[str, str, Any]] = [
    ("POST", "/v1/models/churn/predict", {"inputs": ROW}),
    ("POST", "/v1/models/churn@production/predict", {"inputs": ROW}),
    (
        "POST",
        "/v2/models/churn/infer",
        {
            "inputs": [
                {"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in ROW.items()
            ]
        },
    ),
    ("POST", "/v1/models/churn/invocations", {"dataframe_records": [ROW]}),
]
READ = [
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/churn", None),
    ("GET", "/v2/models/churn", None),
]
OPEN = ["/v2", "/livez", "/readyz", "/v2/health/live", "/v2/health/ready", "/ping", "/health", "/version", "/metrics", "/openapi.json", "/docs", "/docs/init.js"]  # fmt: skip


OPEN_ROUTES = {
    "livez", "readyz", "v2_live", "v2_ready", "v2_server_metadata", "mlflow_ping",
    "mlflow_health", "mlflow_version", "metrics", "openapi", "docs", "docs_asset",
}  # fmt: skip


def test_every_other_route_declares_a_role():
    # A route added without a role would be open to anyone once authentication is on.
    assert {r.name for r in ROUTES if r.role is None} == OPEN_ROUTES


def test_probes_metrics_and_docs_need_no_key(http: httpx.Client):
    assert {path: http.get(path).status_code for path in OPEN} == dict.fromkeys(OPEN, 200)


@pytest.mark.parametrize(("method", "path", "body"), PREDICT + READ)
def test_without_a_key_every_model_route_answers_401(
    http: httpx.Client, method: str, path: str, body: Any
):
    r = http.request(method, path, json=body)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == 'Bearer realm="vigil"'
    problem = r.json()
    if path.endswith("invocations"):  # MLflow's own error shape
        assert "needs an API key" in problem["message"]
    elif path.startswith("/v2"):
        assert problem["code"] == "unauthenticated" and "needs an API key" in problem["error"]
    else:
        assert problem["error"] == "unauthenticated"
        assert "vigil key create" in problem["message"]


def test_status_by_role(http: httpx.Client, tokens: dict[str, str]):
    seen: dict[tuple[str, str], int] = {}
    for role, token in tokens.items():
        for method, path, body in PREDICT + READ:
            r = http.request(method, path, json=body, headers=bearer(token))
            seen[(role, path)] = r.status_code
            if r.status_code == 200 and "predict" in path:
                assert r.json()["version"] == 1
    for method, path, _ in PREDICT:
        assert (seen[("read", path)], seen[("predict", path)], seen[("admin", path)]) == (
            403,
            200,
            200,
        ), (method, path)
    for _, path, _ in READ:
        assert {seen[(role, path)] for role in ROLES} == {200}, path
    denied = http.post(
        "/v1/models/churn/predict", json={"inputs": ROW}, headers=bearer(tokens["read"])
    )
    assert denied.json()["error"] == "forbidden" and "needs 'predict'" in denied.json()["message"]
    assert "www-authenticate" not in denied.headers


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwdw==", "Bearer", "Bearer not-a-key", "Bearer vk_000000000000_" + "A" * 43],
)
def test_bad_credentials_answer_401(http: httpx.Client, authorization: str):
    r = http.post(
        "/v1/models/churn/predict", json={"inputs": ROW}, headers={"Authorization": authorization}
    )
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    assert authorization.split()[-1] not in r.text or authorization.split()[-1] == "Bearer"


def test_the_body_is_not_read_before_authentication(http: httpx.Client):
    # Larger than the body limit: an unauthenticated client gets 401, not 413.
    big = b"{" + b" " * (ServingSettings().max_body_bytes + 10) + b"}"
    r = http.post(
        "/v1/models/churn/predict", content=big, headers={"content-type": "application/json"}
    )
    assert r.status_code == 401


def test_a_revoked_key_is_refused_within_the_cache_time(
    http: httpx.Client, served: tuple[Vigil, ServerThread]
):
    store = KeyStore.from_vigil(served[0])
    created = store.create("predict", name="to-revoke")
    ok = http.post("/v1/models/churn/predict", json={"inputs": ROW}, headers=bearer(created.token))
    assert ok.status_code == 200
    store.revoke(created.key.id)
    revoked_at = time.monotonic()
    statuses = []
    while time.monotonic() - revoked_at < 5:
        r = http.post(
            "/v1/models/churn/predict", json={"inputs": ROW}, headers=bearer(created.token)
        )
        statuses.append(r.status_code)
        if r.status_code == 401:
            break
        time.sleep(0.02)
    elapsed = time.monotonic() - revoked_at
    assert statuses[-1] == 401 and set(statuses[:-1]) <= {200}
    assert "was revoked" in r.json()["message"]
    assert elapsed < CACHE_SECONDS + 1.0, elapsed


def test_a_key_the_cache_admits_is_answered_by_the_fast_lane_and_logged_with_its_caller(
    http: httpx.Client, served: tuple[Vigil, ServerThread], monkeypatch: pytest.MonkeyPatch
):
    vigil, server = served
    app = server.server.config.app
    assert app.lane is not None
    taken: list[bool] = []
    offer = app.lane.offer

    def spy(*args: Any) -> Any:
        result = offer(*args)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(app.lane, "offer", spy)
    store = KeyStore.from_vigil(vigil)
    key = store.create("predict", name="lane-caller")
    reader = store.create("read", name="lane-reader")
    ids = []
    for _ in range(20):  # the cache keeps a check CACHE_SECONDS: a slow machine may look again
        r = http.post("/v1/models/churn/predict", json={"inputs": ROW}, headers=bearer(key.token))
        assert r.status_code == 200
        ids.append(r.json()["request_id"])
        if taken[-1]:
            break
    # The first is the key's first use (a lookup, by the app); the cache admits a later one.
    assert taken[0] is False and taken[-1] is True
    sent = len(taken)
    for _ in range(2):  # a role the route refuses is never the lane's, cached or not
        r = http.post(
            "/v1/models/churn/predict", json={"inputs": ROW}, headers=bearer(reader.token)
        )
        assert r.status_code == 403
    assert taken[sent:] == [False, False]
    wait_for(
        lambda: set(ids) <= set(read_capture(log_dir=vigil.capture_dir)["request_id"]),
        what="the predictions in the inference log",
    )
    frame = read_capture(log_dir=vigil.capture_dir)
    assert frame[frame["request_id"].isin(ids)]["caller"].tolist() == [key.key.id] * len(ids)


def test_the_key_is_recorded_as_used(http: httpx.Client, served: tuple[Vigil, ServerThread]):
    store = KeyStore.from_vigil(served[0])
    created = store.create("read", name="usage")
    assert http.get("/v1/models", headers=bearer(created.token)).status_code == 200
    wait_for(lambda: store.get(created.key.id).last_used_at, what="the use to be recorded")


def test_auth_on_needs_a_registry():
    with pytest.raises(ConfigurationError, match="no registry to read API keys from"):
        create_app(StaticProvider([]), ServingSettings(auth="on"))


# -- vigil serve: refusals, without binding a socket -----------------------------------


@pytest.fixture
def run_workers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Replace the worker launcher; record what `vigil serve` would have started."""
    import vigil.serving.workers

    calls: list[dict[str, Any]] = []
    for name in (
        "VIGIL_SERVE_AUTH",
        "VIGIL_WORKER_MODELS",
        "VIGIL_WORKER_ALIASES",
        "VIGIL_WORKER_POLL_INTERVAL",
    ):
        # `vigil serve` writes these into os.environ; setenv makes monkeypatch remove them
        # after the test (delenv alone does not record a variable that was unset).
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)

    def fake(provider: str, on_bound: Any = None, **options: Any) -> None:
        import os

        # The logging configuration has its own tests (tests/serving/test_logs.py).
        options.pop("log_config", None)
        calls.append({**options, "auth": os.environ["VIGIL_SERVE_AUTH"]})
        if on_bound is not None:  # what `vigil serve` says once the socket is bound
            on_bound(options["port"])

    monkeypatch.setattr(vigil.serving.workers, "serve", fake)
    # Nothing listens: no thread waiting for a ready server.
    monkeypatch.setattr("vigil.cli.serve._announce_when_ready", lambda *args: None)
    reset_default()
    yield calls
    reset_default()  # the CLI's Vigil points at this test's home: forget it


def serve(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["serve", "--port", "1", *args])
    return result.exit_code, result.output


def test_non_loopback_needs_a_predict_key(run_workers: list[dict[str, Any]], vigil_home: Path):
    code, output = serve("--host", "0.0.0.0")
    assert code == 1 and "needs API keys" in output and "vigil key create --role predict" in output
    store = KeyStore.from_vigil(Vigil(load_settings(home=vigil_home)))
    store.create("read")
    assert serve("--host", "0.0.0.0")[0] == 1  # a read key cannot predict
    store.create("predict")
    code, output = serve("--host", "0.0.0.0")
    assert code == 0, output
    assert run_workers == [
        {
            "host": "0.0.0.0",
            "port": 1,
            "workers": 1,
            "grpc_port": None,
            "log_level": "warning",
            "auth": "on",
        }
    ]
    assert "authentication is on" in output


def test_auth_off_is_refused_off_loopback(run_workers: list[dict[str, Any]]):
    code, output = serve("--host", "10.1.2.3", "--auth", "off")
    assert code == 1 and "with authentication off" in output and run_workers == []


def test_loopback_defaults_off_with_a_warning_and_can_be_turned_on(
    run_workers: list[dict[str, Any]], vigil_home: Path
):
    code, output = serve()
    assert code == 0 and "authentication is off" in output
    code, output = serve("--auth", "on")
    assert code == 1 and "no active key may predict" in output
    KeyStore.from_vigil(Vigil(load_settings(home=vigil_home))).create("admin")
    assert serve("--auth", "on")[0] == 0
    assert [c["auth"] for c in run_workers] == ["off", "on"]
    assert serve("--auth", "maybe")[0] == 1


def test_slow_feedback_cannot_starve_key_checks(tmp_path: Path) -> None:
    # Feedback and key checks shared the event loop's default executor (6 threads on a
    # 2-core machine): six slow feedback calls held them all, and every request with a key
    # not yet cached waited for them. Each now has a pool of its own.
    vigil = register_churn(tmp_path / "home")
    tokens = make_tokens(vigil)
    settings = ServingSettings(auth="on", auth_cache_seconds=CACHE_SECONDS)
    app = vigil.serving_app(RegistryProvider(vigil, poll_interval=0, settings=settings))
    release, entered = threading.Event(), threading.Event()
    with ServerThread(app) as server:
        assert app.dataplane.capture is not None
        feedback = app.dataplane.capture.feedback
        assert feedback is not None
        submit = feedback.submit

        def stuck(records: Any, **options: Any) -> Any:
            entered.set()
            release.wait(60)
            return submit(records, **options)

        feedback.submit = stuck  # type: ignore[method-assign]
        post = functools.partial(
            httpx.post,
            f"{server.url}/v1/feedback",
            headers=bearer(tokens["predict"]),
            timeout=90,
        )
        with ThreadPoolExecutor(10) as clients:
            try:
                calls = [clients.submit(post, json={"request_id": "r0", "label": 1})]
                assert entered.wait(30)  # the key is cached now; feedback is stuck
                calls += [
                    clients.submit(post, json={"request_id": f"r{i}", "label": 1})
                    for i in range(1, 10)
                ]
                wait_for(
                    lambda: app.dataplane.executors.feedback._work_queue.qsize() == 9,
                    what="the nine others to queue behind the first",
                )
                fresh = KeyStore.from_vigil(vigil).create("read", name="fresh").token
                # A key never seen: its check reads the database on the key-check pool.
                r = httpx.get(f"{server.url}/v1/models", headers=bearer(fresh), timeout=10)
                assert r.status_code == 200 and r.json()["models"][0]["name"] == "churn"
            finally:
                release.set()
            assert [c.result().status_code for c in calls] == [200] * 10
    # Stopping the app stopped its pools.
    for pool in (app.dataplane.executors.auth, app.dataplane.executors.feedback):
        with pytest.raises(RuntimeError, match="shutdown"):
            pool.submit(print)
