"""Several worker processes on one port: shared metrics, and a kill -9 under load."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from tests._waiting import wait_for
from tests.serving.conftest import CLF_FEATURES, SklearnAdapter, clf_signature

from vigil.bundle.model import LoadedBundle
from vigil.serving.provider import StaticProvider
from vigil.serving.server import free_port
from vigil.serving.workers import check_factory, load_factory

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = "tests.serving.test_workers:provider"


def provider() -> StaticProvider:
    """The provider factory every worker process calls: one seeded classifier, ``clf``."""
    X, y = make_classification(n_samples=300, n_features=20, n_informative=8, random_state=0)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    return StaticProvider([LoadedBundle(SklearnAdapter(clf), clf_signature(), name="clf")])


ROW = dict(zip(CLF_FEATURES, np.linspace(-1, 1, 20).tolist(), strict=True))


class WorkerServer:
    """``python -m vigil.serving.workers`` in a subprocess, on a free loopback port."""

    def __init__(
        self,
        workers: int,
        provider: str = PROVIDER,
        *extra: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The caller's PYTHONPATH stays after the repository root: a worktree run with
        # PYTHONPATH=<its src> must start workers on that source too, not the installed one.
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, **(env or {}), "PYTHONPATH": path}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log = tempfile.NamedTemporaryFile(prefix="vigil-workers-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "vigil.serving.workers", provider),
                *("--port", str(self.port), "--workers", str(workers), *extra),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def worker_pids(self) -> set[int]:
        """The pids with a live resident-memory series (one per ready worker)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return {
            int(s.labels["pid"])
            for fam in text_string_to_metric_families(text)
            if fam.name == "vigil_process_resident_memory_bytes"
            for s in fam.samples
        }

    def wait_ready(
        self, timeout: float = 60, until: Callable[[set[int]], bool] | None = None
    ) -> set[int]:
        """The pids of ready workers, once there are ``workers`` of them (and ``until``
        holds of them); a RuntimeError with the server's log after ``timeout`` seconds."""
        seen: set[int] = set()

        def ready() -> set[int]:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the worker server exited:\n{self.output()}")
            with contextlib.suppress(httpx.TransportError):
                seen.clear()
                seen.update(self.worker_pids())
                if len(seen) == self.workers and (until is None or until(seen)):
                    return set(seen)
            return set()

        return wait_for(
            ready,
            timeout,
            what=lambda: f"ready workers (last seen: {sorted(seen)}):\n{self.output()}",
            interval=0.1,
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def pid_written(self, path: Path, what: str) -> int:
        """The pid a process of this server (a child doing ``what``) writes to ``path``,
        once written; a RuntimeError with the server's log if the server exits first."""

        def written() -> int | None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.output()}")
            with contextlib.suppress(FileNotFoundError, ValueError):
                return int(path.read_text())
            return None

        return wait_for(written, 60, what=lambda: f"{what}:\n{self.output()}")

    def __enter__(self) -> WorkerServer:
        try:
            self.wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def two_workers() -> Iterator[WorkerServer]:
    with WorkerServer(2) as running:
        yield running


def answering_pids(url: str, tries: int = 200) -> set[int]:
    """Pids that answer /livez over fresh connections (the kernel spreads them)."""
    seen: set[int] = set()
    for _ in range(tries):
        seen.add(httpx.get(f"{url}/livez", timeout=10).json()["pid"])
        if len(seen) >= 2:
            break
    return seen


def test_load_factory_rejects_what_is_not_an_import_string():
    from vigil.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="module:function"):
        load_factory("tests.serving.test_workers")
    with pytest.raises(ConfigurationError, match="cannot import"):
        load_factory("tests.serving.test_workers:nothing_here")
    assert load_factory(PROVIDER) is provider
    check_factory(PROVIDER)
    with pytest.raises(ConfigurationError, match=r"no module named 'tests\.serving\.nothing'"):
        check_factory("tests.serving.nothing:provider")
    with pytest.raises(ConfigurationError, match=r"no module named 'nothing\.here'"):
        check_factory("nothing.here:provider")


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_the_supervisor_never_imports_the_model_stack(two_workers: WorkerServer):
    # A shared library appears in a process's memory map once its module is imported.
    supervisor = Path(f"/proc/{two_workers.proc.pid}/maps").read_text()
    worker = Path(f"/proc/{min(two_workers.worker_pids())}/maps").read_text()
    for library in ("numpy/_core/_multiarray_umath", "sklearn/", "pandas/_libs"):
        assert library in worker
        assert library not in supervisor


def test_two_workers_share_the_port_and_sum_their_metrics(two_workers: WorkerServer):
    pids = two_workers.worker_pids()
    assert len(pids) == 2 and two_workers.proc.pid not in pids
    assert answering_pids(two_workers.url) == pids

    before = native_requests(two_workers.url)
    answered_by: set[int] = set()
    for _ in range(40):  # fresh connection each time, so both workers take some
        with httpx.Client(base_url=two_workers.url, timeout=10) as http:
            r = http.post("/v1/models/clf/predict", json={"inputs": ROW})
            assert r.status_code == 200 and r.json()["predictions"] in ([0], [1])
            answered_by.add(http.get("/livez").json()["pid"])
    assert native_requests(two_workers.url) - before == 40
    assert answered_by == pids


NO_SUCH_PID = 2**22 + 1  # above Linux's largest pid_max: no live process has it


def metrics_dir(server: WorkerServer) -> Path:
    """The workers' shared ``PROMETHEUS_MULTIPROC_DIR``, read from a worker's environment."""
    pid = min(server.worker_pids())
    variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    [value] = [v for v in variables if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    return Path(value.split(b"=", 1)[1].decode())


def native_requests(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "vigil_requests_total" and s.labels["route"] == "native_predict"
    )


def test_a_worker_killed_while_creating_a_metric_file_never_fails_metrics(
    two_workers: WorkerServer,
):
    # A replacement worker creates its metric files empty and sizes them a moment later;
    # killed in between, it leaves one empty for good, and a scrape in between meets one.
    # Every scrape then answered 500 (struct.error in prometheus-client's reader).
    directory = metrics_dir(two_workers)
    pids = two_workers.worker_pids()
    before = native_requests(two_workers.url)
    left = directory / f"counter_{NO_SUCH_PID}.db"
    left.touch()
    try:
        r = httpx.get(f"{two_workers.url}/metrics", timeout=10)
        assert r.status_code == 200, r.text
        assert two_workers.worker_pids() == pids
        assert native_requests(two_workers.url) == before  # nothing left out
    finally:
        left.unlink()


def test_an_unreadable_metric_file_is_one_clear_error_in_the_log(two_workers: WorkerServer):
    broken = metrics_dir(two_workers) / f"counter_{NO_SUCH_PID}.db"
    broken.write_bytes((64).to_bytes(4, "little") + bytes(12))  # used length past the end
    logged = len(two_workers.output())
    try:
        r = httpx.get(f"{two_workers.url}/metrics", timeout=10)
    finally:
        broken.unlink()
    assert r.status_code == 500
    body = r.json()
    assert body["error"] == "metrics_unreadable" and body["detail"] == {"file": broken.name}
    assert f"{broken.name} in PROMETHEUS_MULTIPROC_DIR cannot be read" in body["message"]

    def logged_since() -> str:
        text = two_workers.output()[logged:]
        return text if "metrics_unreadable" in text else ""

    since = wait_for(logged_since, 10, what="the error in the server's log")
    assert "Traceback" not in since, since
    assert httpx.get(f"{two_workers.url}/metrics", timeout=10).status_code == 200


@pytest.mark.slow
def test_kill_9_under_load_loses_only_in_flight_requests():
    with WorkerServer(2) as server:
        pids = server.worker_pids()
        victim = min(pids)
        stop = threading.Event()
        killed_at: list[float] = []
        lock = threading.Lock()
        ok: list[float] = []
        failed: list[str] = []

        def client_loop() -> None:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                while not stop.is_set():
                    try:
                        r = http.post("/v1/models/clf/predict", json={"inputs": ROW})
                        assert r.status_code == 200
                        with lock:
                            ok.append(time.monotonic())
                    except httpx.TransportError as exc:
                        with lock:
                            failed.append(type(exc).__name__)

        threads = [threading.Thread(target=client_loop) for _ in range(4)]
        for t in threads:
            t.start()
        wait_for(lambda: len(ok) >= 20, what="the load to flow")
        os.kill(victim, signal.SIGKILL)
        killed_at.append(time.monotonic())
        wait_for(
            lambda: sum(t > killed_at[0] + 0.2 for t in list(ok)) > 50,
            what="the surviving worker to keep serving",
        )
        stop.set()
        for t in threads:
            t.join(timeout=30)

        # At most one request per client thread was in flight on the killed worker.
        assert len(failed) <= len(threads), failed
        after_kill = [t for t in ok if t > killed_at[0] + 0.2]
        assert len(after_kill) > 50, "the surviving worker kept serving"
        # The supervisor starts a replacement, which serves; the dead pid's live series go.
        # Both happen some time after the kill (the supervisor looks every half second, the
        # replacement loads its model first): wait for them rather than for any two pids,
        # which the victim's series, not yet removed, would also satisfy.
        replacement = server.wait_ready(
            timeout=90, until=lambda seen: victim not in seen and len(seen - pids) == 1
        )
        assert victim not in replacement and len(replacement - pids) == 1
        new_pid = (replacement - pids).pop()
        seen: set[int] = set()

        def answered_by_the_replacement() -> bool:
            seen.update(answering_pids(server.url, tries=20))
            return new_pid in seen

        wait_for(answered_by_the_replacement, 30, what="the replacement to answer")


@pytest.mark.slow
def test_sighup_replaces_every_worker_and_drops_their_series():
    with WorkerServer(2) as server:
        pids = server.worker_pids()
        os.kill(server.proc.pid, signal.SIGHUP)
        # uvicorn brings each replacement up before it retires the worker it replaces; a
        # retired worker's live series must go too, or four pids would show here.
        fresh = server.wait_ready(timeout=120, until=lambda seen: not seen & pids)
        assert len(fresh) == 2 and server.proc.pid not in fresh
        r = httpx.post(f"{server.url}/v1/models/clf/predict", json={"inputs": ROW}, timeout=10)
        assert r.status_code == 200 and r.json()["predictions"] in ([0], [1])
