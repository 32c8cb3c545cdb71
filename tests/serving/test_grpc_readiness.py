"""gRPC readiness says what ``/readyz`` says: ``ServerReady``, ``ModelReady`` and the
standard ``grpc.health.v1.Health`` service turn "not ready" while a dependency is down
and, on a real ``vigil serve --grpc-port``, from the moment SIGTERM arrives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import grpc
import httpx
import pytest
import tritonclient.grpc as tg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tests._waiting import wait_for
from tests.serving.conftest import Models, make_provider
from tests.serving.test_auth import register_churn
from tests.serving.test_grpc import GrpcServerThread

from vigil.serving.app import create_app
from vigil.serving.readiness import Readiness
from vigil.serving.server import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _health(target: str, service: str = "") -> int:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        status: int = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        return status


def _v2_ready(url: str) -> int:
    return httpx.get(f"{url}/v2/health/ready", timeout=5).status_code


def test_a_dependency_down_makes_every_probe_say_not_ready(models: Models) -> None:
    database_up = threading.Event()

    def database() -> None:
        if not database_up.is_set():
            raise ConnectionRefusedError("connection refused")

    readiness = Readiness({"database": database}, interval=0.05, grace=0)
    app = create_app(make_provider(models), readiness=readiness)
    with GrpcServerThread(app) as server, tg.InferenceServerClient(server.target) as triton:
        wait_for(lambda: httpx.get(f"{server.url}/readyz").status_code == 503, 10)
        assert not triton.is_server_ready()
        assert not triton.is_model_ready("clf")
        assert _health(server.target) == NOT_SERVING
        assert _health(server.target, "inference.GRPCInferenceService") == NOT_SERVING
        assert _v2_ready(server.url) == 400
        assert triton.is_server_live()  # live: restarting it would not bring the database back

        database_up.set()
        wait_for(triton.is_server_ready, 10, what="ServerReady once the database is back")
        assert triton.is_model_ready("clf") and triton.is_model_ready("clf", "2")
        assert _health(server.target) == SERVING
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        assert _v2_ready(server.url) == 200

        with pytest.raises(grpc.RpcError) as unknown:
            _health(server.target, "no.such.Service")
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.fixture
def home(tmp_path: Path) -> Path:
    register_churn(tmp_path / "home")
    return tmp_path / "home"


@pytest.mark.slow
def test_sigterm_turns_grpc_readiness_false_at_once_and_exits_cleanly(home: Path) -> None:
    port, grpc_port = free_port(), free_port()
    target, url = f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{port}"
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        "VIGIL_HOME": str(home),
        "PYTHONPATH": path,
        # Long enough to look at every probe while the worker still answers.
        "VIGIL_SERVE_SHUTDOWN_DELAY": "2",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [
        *(sys.executable, "-m", "vigil.cli", "serve", "--port", str(port)),
        *("--grpc-port", str(grpc_port), "--auth", "off"),
    ]
    with tempfile.NamedTemporaryFile(prefix="vigil-grpc-drain-") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            _drain_and_check(proc, target, url, Path(log.name))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _drain_and_check(proc: subprocess.Popen[bytes], target: str, url: str, log: Path) -> None:
    triton = tg.InferenceServerClient(target)
    channel = grpc.insecure_channel(target)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"vigil serve exited:\n{log.read_text()}")
        try:
            return bool(triton.is_server_ready())
        except Exception:
            return False

    try:
        wait_for(ready, 120, what=lambda: f"gRPC ServerReady:\n{log.read_text()}")
        assert triton.is_model_ready("churn") and _health(target) == SERVING
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=30
        )
        assert next(watch).status == SERVING

        proc.send_signal(signal.SIGTERM)
        # At once: every probe says not ready while the worker still answers calls.
        assert next(watch).status == NOT_SERVING
        assert not triton.is_server_ready()
        assert not triton.is_model_ready("churn")
        assert _health(target) == NOT_SERVING
        assert triton.is_server_live()
        assert httpx.get(f"{url}/readyz", timeout=5).json() == {"status": "draining"}
        assert proc.poll() is None, "the probes were not seen during the drain"
        watch.cancel()
    finally:
        triton.close()
        channel.close()
    assert proc.wait(timeout=60) == 0, log.read_text()
