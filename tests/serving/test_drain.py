"""SIGTERM under load, on real processes: readyz turns 503 at once, every request held is
answered (or, past the drain timeout, gets a 503 problem body), capture is flushed, exit 0.

The server is ``python -m vigil.serving.workers`` (what ``vigil serve`` runs) over
:func:`slow_app`: a classifier whose every model call sleeps, built by the composition
root as a ``vigil serve`` worker builds its app (inference log on, in ``VIGIL_HOME``).
The load comes from threads that behave like a load balancer: they stop sending new
requests once they have seen ``/readyz`` answer 503.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from tests._waiting import wait_for
from tests.serving.conftest import CLF_FEATURES, SklearnAdapter, clf_signature
from tests.serving.test_workers import WorkerServer

from vigil.bundle.model import LoadedBundle
from vigil.capture.reader import read_capture
from vigil.serving.app import ServingApp

pytestmark = pytest.mark.slow

FACTORY = "tests.serving.test_drain:slow_app"
ROW = dict(zip(CLF_FEATURES, np.linspace(-1, 1, 20).tolist(), strict=True))


def slow_app() -> ServingApp:
    """The app every worker builds: ``slow``, each call sleeping ``DRAIN_TEST_DELAY`` s."""
    from vigil.app import Vigil
    from vigil.serving.provider import StaticProvider

    X, y = make_classification(n_samples=300, n_features=20, n_informative=8, random_state=0)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    delay = float(os.environ["DRAIN_TEST_DELAY"])
    root = Vigil()
    bundle = LoadedBundle(SklearnAdapter(clf, delay=delay), clf_signature(), name="slow")
    provider = StaticProvider([bundle], settings=root.serving_settings)
    return root.serving_app(provider)


@pytest.fixture
def start(vigil_home: Path) -> Iterator[Any]:
    servers: list[WorkerServer] = []

    def started(workers: int, **env: str) -> WorkerServer:
        server = WorkerServer(workers, FACTORY, env={"VIGIL_SERVE_READINESS_CHECKS": "", **env})
        servers.append(server)
        if workers > 1:
            server.wait_ready()  # every worker up (one pid label each)
        wait_for(lambda: _ready(server), 60, what=lambda: f"readyz 200:\n{server.output()}")
        return server

    yield started
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)
        server.log.close()


def _ready(server: WorkerServer) -> bool:
    if server.proc.poll() is not None:
        raise RuntimeError(f"the server exited:\n{server.output()}")
    try:
        return httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _in_flight(server: WorkerServer) -> int:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    gauge = re.search(r"^vigil_in_flight_requests (\S+)$", text, re.MULTILINE)
    assert gauge is not None
    return int(float(gauge[1])) - 1  # less the /metrics request itself


class Load:
    """``clients`` threads posting predictions in a loop until told to stop, or until
    they have seen /readyz answer 503 (``watch``), as a load balancer would."""

    def __init__(self, server: WorkerServer, clients: int) -> None:
        self.server = server
        self.stop = threading.Event()
        self.draining_seen = threading.Event()
        self.readyz: list[tuple[float, int | None, str]] = []
        self.answers: list[tuple[float, int, dict[str, Any] | None]] = []
        self.failures: list[str] = []
        self.refused: list[float] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(clients + 1)
        self._futures = [self._pool.submit(self._client) for _ in range(clients)]
        self._futures.append(self._pool.submit(self._watch))

    def _watch(self) -> None:
        while not self.stop.is_set():
            try:
                r = httpx.get(f"{self.server.url}/readyz", timeout=5)
                self.readyz.append((time.monotonic(), r.status_code, r.text))
                if r.status_code == 503:
                    self.draining_seen.set()
            except httpx.HTTPError as exc:
                self.readyz.append((time.monotonic(), None, repr(exc)))
                self.draining_seen.set()
            time.sleep(0.02)

    def _client(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=60) as http:
            while not self.stop.is_set() and not self.draining_seen.is_set():
                try:
                    r = http.post("/v1/models/slow/predict", json={"instances": [ROW]})
                    body = r.json()
                except httpx.ConnectError:
                    # Refused: the request was never sent, and a load balancer sends it to
                    # another backend. A client of this thread's starved for longer than
                    # the shutdown delay (a loaded machine) meets it; when is checked.
                    with self._lock:
                        self.refused.append(time.monotonic())
                    return
                except (httpx.HTTPError, ValueError) as exc:
                    with self._lock:
                        self.failures.append(repr(exc))
                    continue
                with self._lock:
                    self.answers.append((time.monotonic(), r.status_code, body))

    def join(self) -> None:
        self.stop.set()
        for future in self._futures:
            future.result(timeout=120)
        self._pool.shutdown()


def _captured(home: Path) -> set[str]:
    frame = read_capture(log_dir=home / "capture")
    return set(frame["request_id"])


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_answers_every_request_then_exits_0(
    start: Any, vigil_home: Path, workers: int
) -> None:
    server = start(
        workers,
        DRAIN_TEST_DELAY="0.05",
        VIGIL_SERVE_SHUTDOWN_DELAY="1.0",
        VIGIL_SERVE_DRAIN_TIMEOUT="30",
        VIGIL_SERVE_MAX_BATCH_SIZE="2",
    )
    load = Load(server, clients=12)
    wait_for(lambda: len(load.answers) >= 20, 60, what="the load to flow")
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(60)
    exited = time.monotonic()
    load.join()

    assert code == 0, server.output()
    # No request sent was dropped; a connection is refused only once the delay is over.
    assert load.failures == []
    assert all(t - signalled >= 1.0 for t in load.refused), (load.refused, signalled)
    statuses = [status for _, status, _ in load.answers]
    assert set(statuses) == {200}, statuses
    answered_after = [t for t, _, _ in load.answers if t > signalled]
    assert answered_after, "no request was answered during the drain"
    # readyz: 200 before the signal, "draining" at once (the supervisor passes the signal
    # on as it arrives; measured 0.06 to 0.08 s, a busy machine allowed for), never 200
    # again.
    after = [(t, s, text) for t, s, text in load.readyz if t > signalled]
    first_503 = next(t for t, s, _ in after if s == 503)
    assert first_503 - signalled < 0.5
    assert all(s != 200 for t, s, _ in after if t >= first_503)
    assert any('"draining"' in text for _, s, text in after if s == 503)
    # The socket stayed open through the shutdown delay.
    assert exited - signalled >= 1.0
    # Every answered prediction is in the inference log, flushed before the exit.
    ids = {body["request_id"] for _, _, body in load.answers if body}
    assert ids <= _captured(vigil_home)


def test_drain_timeout_bounds_the_wait_and_answers_503(start: Any, vigil_home: Path) -> None:
    server = start(
        1,
        DRAIN_TEST_DELAY="0.3",
        VIGIL_SERVE_DRAIN_TIMEOUT="1.0",
        VIGIL_SERVE_MAX_BATCH_SIZE="1",
    )
    results: list[tuple[int, dict[str, Any]]] = []
    failures: list[str] = []

    def one() -> None:
        try:
            r = httpx.post(
                f"{server.url}/v1/models/slow/predict", json={"instances": [ROW]}, timeout=60
            )
            results.append((r.status_code, r.json()))
        except Exception as exc:
            failures.append(repr(exc))

    # 20 requests queued one call each: 6 s of work, far more than the 1 s allowed.
    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    # Every request is held by the server (in flight: queued or in the model call).
    wait_for(lambda: _in_flight(server) + len(results) >= 20, 30, what="20 requests in")
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(30)
    exited = time.monotonic()
    for thread in threads:
        thread.join(30)

    assert code == 0, server.output()
    assert failures == []
    assert len(results) == 20  # every request got an answer, none a dropped connection
    ok = [body for status, body in results if status == 200]
    refused = [body for status, body in results if status == 503]
    assert len(ok) + len(refused) == 20
    assert refused, "the drain timeout did not cut the queue"
    assert {b["error"] for b in refused} == {"shutting_down"}
    assert all("retry" in b["message"] for b in refused)
    # Bound: the 1 s timeout, plus the model call running at the deadline (0.3 s), plus
    # the app's shutdown and the interpreter's exit.
    assert exited - signalled < 1.0 + 0.3 + 3.0
    assert {b["request_id"] for b in ok} <= _captured(vigil_home)


@pytest.mark.parametrize("workers", [1, 2])
def test_connections_after_the_shutdown_delay_are_refused(start: Any, workers: int) -> None:
    """Once the delay is over, a new connection is refused at once, even while a request
    still drains: with several workers the supervisor's copy of the socket must not go on
    completing connections that no worker will accept (they were reset, request and all,
    when it exited)."""
    server = start(workers, DRAIN_TEST_DELAY="3", VIGIL_SERVE_SHUTDOWN_DELAY="0.5")
    answer: list[int] = []
    slow = threading.Thread(
        target=lambda: answer.append(
            httpx.post(
                f"{server.url}/v1/models/slow/predict", json={"instances": [ROW]}, timeout=30
            ).status_code
        )
    )
    slow.start()
    wait_for(lambda: _in_flight(server) == 1, 30, what="the slow request in flight")
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: time.monotonic() - signalled > 1.0, 5, what="the delay to pass")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/livez", timeout=10)
    refused = time.monotonic()
    assert server.proc.poll() is None, "the server stopped before its request was answered"
    slow.join(30)
    assert answer == [200]
    assert server.proc.wait(30) == 0
    assert refused - signalled < 2.0  # refused at once, not held until the exit


def test_sigint_skips_the_shutdown_delay(start: Any) -> None:
    server = start(1, DRAIN_TEST_DELAY="0", VIGIL_SERVE_SHUTDOWN_DELAY="30")
    started = time.monotonic()
    server.proc.send_signal(signal.SIGINT)
    server.proc.wait(20)
    assert time.monotonic() - started < 10


def test_vigil_serve_takes_the_drain_options(vigil_home: Path, tmp_path: Path) -> None:
    """The options of ``vigil serve`` reach its worker: it says so when SIGTERM arrives,
    readyz says draining while the socket still accepts, the command exits 0, and not before
    the shutdown delay is over.

    No wall-clock budget a loaded machine could break: the values are read from the
    worker's own log line, and the one timing asserted is a lower bound (the process cannot
    exit early by being slow)."""
    import subprocess
    import sys

    from vigil.serving.server import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "serve.log").open("w+") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "vigil.cli", "serve", "--port", str(port)),
                *("--shutdown-delay", "1.5", "--drain-timeout", "5"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: _up(url, proc), 60, what="vigil serve to be ready")
            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            seen: list[tuple[int, str]] = []
            while proc.poll() is None:
                try:
                    r = httpx.get(f"{url}/readyz", timeout=5)
                    seen.append((r.status_code, r.text))
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            exited = time.monotonic()
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log.seek(0)
        output = log.read()
    # Both values reached the worker.
    said = "draining (readyz 503; new connections for 1.5 s, then in-flight requests for up to 5 s)"
    assert f"worker received SIGTERM: {said}" in output, output
    # Connections were accepted after the signal, every one told "draining".
    assert seen, "nothing answered after SIGTERM"
    assert {status for status, _ in seen} == {503}
    assert all('"draining"' in body for _, body in seen)
    # The delay was kept (a lower bound: load only makes the exit later).
    assert exited - signalled >= 1.5


def _up(url: str, proc: Any) -> bool:
    if proc.poll() is not None:
        raise RuntimeError("vigil serve exited")
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
