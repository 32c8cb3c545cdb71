"""A real Prometheus scrapes a 2-worker server and sees the exact summed totals."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests._waiting import wait_for
from tests.serving.test_workers import ROW, WorkerServer

from vigil.serving.server import free_port

pytestmark = pytest.mark.prometheus

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"


def _binary(path: str) -> str:
    found = shutil.which(Path(path).name) or (path if Path(path).is_file() else None)
    if found is None:
        pytest.fail(
            f"{Path(path).name} is missing: run `apt-get install prometheus` "
            "(or `make test` as root, which installs it)"
        )
    return found


STARTUP_S = 180.0
"""How long the two workers and Prometheus may take to start: on a loaded two-core machine
it can pass a minute (a bound only: an idle one takes seconds)."""


@pytest.fixture(scope="module")
def vigil_server() -> Iterator[WorkerServer]:
    server = WorkerServer(2)
    try:
        server.wait_ready(timeout=STARTUP_S)
        yield server
    finally:
        server.__exit__()


class Prometheus:
    def __init__(self, target_port: int, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: vigil\n    scrape_interval: 1s\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        )
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                _binary(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, promql: str) -> list[dict[str, object]]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "success", body
        result: list[dict[str, object]] = body["data"]["result"]
        return result

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, "prometheus exited; see its log"
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
            return False

        wait_for(ready, timeout, what="prometheus to be ready", interval=0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def prometheus(vigil_server: WorkerServer) -> Iterator[Prometheus]:
    workdir = Path(tempfile.mkdtemp(prefix="vigil-prometheus-"))
    prom = Prometheus(vigil_server.port, workdir)
    try:
        prom.wait_ready(STARTUP_S)
        yield prom
    finally:
        prom.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _scalar(result: list[dict[str, object]]) -> float | None:
    if not result:
        return None
    value = result[0]["value"]
    assert isinstance(value, list)
    return float(value[1])


@pytest.mark.slow
def test_prometheus_sees_the_exact_total_across_workers(
    vigil_server: WorkerServer, prometheus: Prometheus
):
    workers = vigil_server.worker_pids()
    assert len(workers) == 2
    answered_by: set[int] = set()
    sent = 0

    def predict() -> bool:
        """One request on a fresh connection (which worker accepts it is the kernel's
        choice; ``/livez`` on the same connection says which did): at least 37, and until
        both workers took some, however unevenly a loaded machine spreads them."""
        nonlocal sent
        with httpx.Client(base_url=vigil_server.url, timeout=10) as http:
            r = http.post("/v1/models/clf/predict", json={"inputs": ROW})
            assert r.status_code == 200
            sent += 1
            answered_by.add(http.get("/livez").json()["pid"])
        return sent >= 37 and answered_by == workers

    wait_for(
        predict, 120, what=lambda: f"both workers to answer (so far {answered_by})", interval=0
    )
    n = sent

    query = 'sum(vigil_requests_total{job="vigil",model="clf",route="native_predict"})'
    # Prometheus scrapes the port every second; whichever worker answers exports every
    # worker's counts (each adds its own a loop turn after answering).
    wait_for(lambda: _scalar(prometheus.query(query)) == n, 60, what=f"{n} requests scraped")
    # Both workers' memory is exported, one series per pid.
    memory = prometheus.query('vigil_process_resident_memory_bytes{job="vigil"}')
    assert {m["metric"]["pid"] for m in memory} == {str(p) for p in answered_by}  # type: ignore[index]
    assert _scalar(prometheus.query('up{job="vigil"}')) == 1.0


def test_promtool_accepts_the_exposition(vigil_server: WorkerServer):
    httpx.post(f"{vigil_server.url}/v1/models/clf/predict", json={"inputs": ROW}, timeout=10)
    exposition = httpx.get(f"{vigil_server.url}/metrics", timeout=10).content
    assert b"vigil_requests_total" in exposition
    check = subprocess.run(
        [_binary(PROMTOOL), "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert b"error" not in (check.stdout + check.stderr).lower()
