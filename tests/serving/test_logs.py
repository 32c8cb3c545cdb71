"""Structured logs: `vigil serve --log-format json --access-log` writes one JSON object a
line, with an access line per request; the access log is off by default."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from tests._waiting import wait_for
from tests.serving.conftest import SETTINGS, ServerThread, StaticProvider, bundles
from tests.serving.test_cli_serve import ROW, _register

from vigil.serving.app import create_app
from vigil.serving.logs import ACCESS_LOGGER, logging_config
from vigil.serving.server import free_port


def test_access_log_records_every_field(models, caplog: pytest.LogCaptureFixture) -> None:
    settings = SETTINGS.model_copy(update={"access_log": True})
    provider = StaticProvider(bundles(models), settings=settings)
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    with ServerThread(create_app(provider, settings)) as server:
        row = dict(zip([f"f{i}" for i in range(20)], models.X_clf[0].tolist(), strict=True))
        ok = httpx.post(f"{server.url}/v1/models/clf/predict", json={"inputs": row})
        bad = httpx.post(f"{server.url}/v1/models/clf/predict", json={"inputs": {"f0": "x"}})
        missing = httpx.get(f"{server.url}/nowhere")
        wait_for(lambda: len(caplog.records) >= 3, 10, what="three access lines")
    lines = {r.path: r for r in caplog.records if r.name == ACCESS_LOGGER}
    hit = lines["/v1/models/clf/predict"]
    assert ok.status_code == 200 and bad.status_code == 422 and missing.status_code == 404
    records = [r for r in caplog.records if r.path == "/v1/models/clf/predict"]
    assert [(r.status, r.model, r.version, r.route) for r in records] == [
        (200, "clf", "2", "native_predict"),
        (422, "clf", "2", "native_predict"),
    ]
    assert records[0].request_id == ok.json()["request_id"]
    assert records[1].request_id == bad.json()["request_id"]
    assert 0 < hit.latency_ms < 10_000 and hit.method == "POST"
    assert (lines["/nowhere"].status, lines["/nowhere"].route) == (404, "unmatched")


def test_access_log_is_off_by_default(models) -> None:
    app = create_app(StaticProvider(bundles(models), settings=SETTINGS), SETTINGS)
    assert app._access is None  # the request path tests one attribute and logs nothing


def test_text_and_json_configurations() -> None:
    config = logging_config("json", "info")
    assert config["formatters"]["vigil"] == {"()": "vigil.serving.logs.JsonFormatter"}
    assert config["loggers"]["vigil"]["level"] == "INFO"
    assert config["loggers"][ACCESS_LOGGER]["level"] == "INFO"
    assert logging_config("text", "error")["loggers"][ACCESS_LOGGER]["level"] == "INFO"
    with pytest.raises(ValueError, match="log level must be one of"):
        logging_config("text", "loud")


@pytest.mark.slow
def test_vigil_serve_json_lines_with_an_access_log(vigil_home: Path) -> None:
    _register(vigil_home)
    port = free_port()
    command = [sys.executable, "-m", "vigil.cli", "serve", "--port", str(port)]
    command += ["--log-format", "json", "--access-log", "--log-level", "info"]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            command,
            env={**os.environ, "VIGIL_HOME": str(vigil_home), "VIGIL_MONITOR_ENABLED": "false"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def logged() -> str:
            log.seek(0)
            return log.read().decode()

        try:

            def ready() -> bool:
                assert proc.poll() is None, logged()
                with contextlib.suppress(httpx.TransportError):
                    return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
                return False

            wait_for(ready, 120, what="/readyz", interval=0.05)
            # The CLI says "ready in" when its own look at /readyz answers: on a loaded
            # host, a moment after the test's.
            wait_for(lambda: "ready in " in logged(), 30, what="the ready line")
            url = f"http://127.0.0.1:{port}/v1/models/churn/predict"
            answer = httpx.post(url, json={"inputs": ROW}).json()
            wait_for(lambda: answer["request_id"] in logged(), 10, what="the access line")
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        output = logged()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    [access] = [line for line in lines if line.get("request_id") == answer["request_id"]]
    assert access["logger"] == ACCESS_LOGGER and access["level"] == "INFO"
    assert (access["model"], access["version"], access["status"]) == ("churn", "1", 200)
    assert access["route"] == "native_predict" and access["latency_ms"] > 0
    assert any(line["message"].startswith("ready in ") for line in lines)
    assert any(line["logger"] == "vigil.serving" for line in lines)  # the worker's own
