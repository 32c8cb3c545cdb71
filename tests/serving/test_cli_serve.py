"""``vigil serve`` end to end: a registered model served over HTTP, ready fast."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from tests._waiting import wait_for
from typer.testing import CliRunner

from vigil.app import Vigil
from vigil.cli import app
from vigil.cli.serve import is_loopback
from vigil.serving.server import free_port
from vigil.settings import load_settings

ROW = {"a": 0.1, "b": -0.3, "c": 1.2, "d": 0.0}


def _register(home: Path) -> None:
    X, y = make_classification(n_samples=200, n_features=4, random_state=3)
    frame = pd.DataFrame(X, columns=list("abcd"))
    model = LogisticRegression().fit(frame, y)
    Vigil(load_settings(home=home)).register(
        model, name="churn", reference=frame.assign(y=y), target="y", alias="production"
    )


def test_loopback_detection():
    assert is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.org")


def test_non_loopback_is_refused_without_api_keys():
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 1
    assert "needs API keys" in result.output


def test_unknown_config_setting_is_named(tmp_path: Path):
    config = tmp_path / "vigil.yaml"
    config.write_text("serve:\n  max_batch: 3\n")
    result = CliRunner().invoke(app, ["serve", "--config", str(config), "--port", "1"])
    assert result.exit_code == 1
    assert "unknown serve setting 'max_batch'" in result.output


def test_a_bad_serve_setting_is_one_line_naming_the_variable(tmp_path: Path):
    env = {**os.environ, "VIGIL_HOME": str(tmp_path), "VIGIL_SERVE_INLINE_MAX_MS": "-1"}
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: invalid setting VIGIL_SERVE_INLINE_MAX_MS: Input should be greater than or "
        "equal to 0"
    )
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.slow
def test_vigil_serve_serves_production(vigil_home: Path, tmp_path: Path):
    _register(vigil_home)
    port = free_port()
    config = tmp_path / "vigil.yaml"
    config.write_text(
        "serve:\n  max_batch_size: 8\n  poll_interval: 0\n  allowed_hosts: [models.internal]\n"
    )
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vigil.cli",
                "serve",
                "--port",
                str(port),
                "--config",
                str(config),
            ],
            env={**os.environ, "VIGIL_HOME": str(vigil_home)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def ready() -> bool:
                assert proc.poll() is None, "vigil serve exited"
                with contextlib.suppress(httpx.TransportError):
                    return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
                return False

            wait_for(ready, 120, what="/readyz", interval=0.02)

            def logged() -> str:
                log.seek(0)
                return log.read().decode()

            # The ready line follows /readyz by at most 50 ms.
            wait_for(lambda: "ready in" in logged(), what="the ready line")
            output = logged()
            assert "authentication is off" in output
            assert "ready in " in output and f"http://127.0.0.1:{port} (1 worker)" in output
            r = httpx.post(f"http://127.0.0.1:{port}/v1/models/churn/predict", json={"inputs": ROW})
            assert r.status_code == 200 and r.json()["version"] == 1
            # The config file's list of Host names reaches the workers.
            named = httpx.get(f"http://127.0.0.1:{port}/livez", headers={"host": "models.internal"})
            foreign = httpx.get(f"http://127.0.0.1:{port}/livez", headers={"host": "evil.example"})
            assert (named.status_code, foreign.status_code) == (200, 421)
            # How fast it gets ready is measured by bench/serving/coldstart.py, not here.
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_a_port_out_of_range_is_refused_in_one_line(tmp_path: Path, port: str):
    env = {**os.environ, "VIGIL_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "serve", "--port", port],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (f"error: --port takes 0 to 65535 (0: any free port), got {port}")
    assert done.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_port_0_announces_the_port_it_listens_on(vigil_home: Path, workers: int):
    import re

    _register(vigil_home)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vigil.cli", "serve", "--port", "0", "--workers", f"{workers}"],
            env={**os.environ, "VIGIL_HOME": str(vigil_home)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def logged() -> str:
                assert proc.poll() is None, f"vigil serve exited: {log.seek(0)} {log.read()!r}"
                log.seek(0)
                return log.read().decode()

            wait_for(lambda: "ready in" in logged(), 120, what="the ready line")
            output = logged()
            found = re.search(
                r"ready in [0-9.]+ s: http://127\.0\.0\.1:(\d+) \((\d) workers?\)", output
            )
            assert found is not None, output
            port = int(found[1])
            assert port != 0 and int(found[2]) == workers
            # The warning names the same, real address.
            assert f"anyone on this machine can call http://127.0.0.1:{port}\n" in output
            r = httpx.get(f"http://127.0.0.1:{port}/readyz")
            assert r.status_code == 200
            r = httpx.post(f"http://127.0.0.1:{port}/v1/models/churn/predict", json={"inputs": ROW})
            assert r.status_code == 200 and r.json()["version"] == 1
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)


def test_an_empty_vigil_serve_warns_then_serves_what_gets_registered(vigil_home: Path) -> None:
    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vigil.cli", "serve", "--port", str(port)],
            env={**os.environ, "VIGIL_HOME": str(vigil_home)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def logged() -> str:
                assert proc.poll() is None, "vigil serve exited"
                log.seek(0)
                return log.read().decode()

            wait_for(lambda: "ready in" in logged(), 120, what="the ready line")
            # the warning follows the ready line, from the same thread
            wait_for(
                lambda: "no model to serve yet" in " ".join(logged().split()),
                30,
                what="the empty-server warning",
            )
            output = " ".join(logged().split())
            assert "warning: no model to serve yet" in output
            assert "vigil register NAME MODEL_FILE --reference DATA --alias production" in output
            assert "picked up without a restart" in output

            _register(vigil_home)

            def served() -> bool:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/v1/models/churn/predict", json={"inputs": ROW}
                )
                return r.status_code == 200 and r.json()["version"] == 1

            wait_for(served, 60, what="churn served without a restart", interval=0.1)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
