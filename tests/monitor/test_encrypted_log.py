"""Encryption at rest end to end: a real ``vigil serve`` captures traffic and compacts it,
then monitoring, export, erase and verify run on the log; with a key file no file under
the home holds a sent feature value, and every answer is the one a plain log gives."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from tests._waiting import wait_for
from tests.monitor._data import FEATURES, make_frame
from typer.testing import CliRunner

from vigil.app import reset_default
from vigil.capture.crypt import new_key_line
from vigil.cli import app
from vigil.serving.server import free_port

pytestmark = pytest.mark.slow
runner = CliRunner()
SECRET_AGE = 31337.4242
"""Sent once, in the middle of a request: no statistic of the window lands on it."""
ROWS = 300


@contextlib.contextmanager
def _served(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vigil.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def ready() -> bool:
            if proc.poll() is not None:
                log.seek(0)
                raise AssertionError(log.read().decode())
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
            return False

        try:
            wait_for(ready, 120, what="/readyz", interval=0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)


def _run(home: Path, keys: Path | None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    env = {
        **os.environ,
        "VIGIL_HOME": str(home),
        "VIGIL_MONITOR_ENABLED": "false",
        "VIGIL_CAPTURE_COMPACT_INTERVAL_S": "0.3",
        "VIGIL_CAPTURE_SEGMENT_SECONDS": "0.5",
    }
    if keys is not None:
        env["VIGIL_CAPTURE_ENCRYPTION_KEY_FILE"] = str(keys)
    frame = make_frame(ROWS, seed=7)[FEATURES]
    frame.loc[125, "age"] = SECRET_AGE
    ids = []
    capture = home / "capture"
    with _served(env) as url, httpx.Client(base_url=url, timeout=60) as http:
        for lo in range(0, ROWS, 50):
            rows = frame.iloc[lo : lo + 50].to_dict(orient="records")
            answer = http.post("/v1/models/churn/predict", json={"instances": rows})
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["request_id"])
        # Every segment closed and compacted by the server itself.
        wait_for(
            lambda: (
                not list(capture.glob("capture-*"))
                and list((home / "artifacts" / "capture").rglob("part-*.parquet"))
            ),
            60,
            what="compaction",
        )
    for name, value in env.items():
        if name.startswith("VIGIL_"):
            monkeypatch.setenv(name, value)
    if keys is None:
        monkeypatch.delenv("VIGIL_CAPTURE_ENCRYPTION_KEY_FILE", raising=False)
    reset_default()
    out: dict[str, Any] = {}
    monitored = runner.invoke(app, ["monitor", "run", "churn", "--window", "100", "--json"])
    assert monitored.exit_code == 0, monitored.output
    out["monitor"] = [
        (w["rows"], w["dataset_drifted"], sorted(w["drifted_features"]), _points(w))
        for w in json.loads(monitored.stdout)["windows"]
    ]
    # Time windows read the parts' stored window summaries (built and stored now).
    timed = runner.invoke(
        app, ["monitor", "run", "churn", "--window", "1h", "--since", "1d", "--partial", "--json"]
    )
    assert timed.exit_code == 0, timed.output
    out["summaries"] = [
        (w["rows"], _points(w)) for w in json.loads(timed.stdout)["windows"] if w["rows"]
    ]
    out["holding"] = _holding(home)  # before erase drops the part's summaries
    out["summary_files"] = len(list((home / "artifacts" / "summaries").rglob("*.summary")))
    exported = home.parent / f"{home.name}-export.parquet"
    done = runner.invoke(app, ["capture", "export", "churn", "--output", str(exported)])
    assert done.exit_code == 0, done.output
    table = pd.read_parquet(exported).sort_values(["time", "row"])
    out["export"] = table[["row", "feature.age", "feature.plan", "prediction"]].reset_index(
        drop=True
    )
    exported.unlink()
    erased = runner.invoke(app, ["capture", "erase", "--where", f"request_id={ids[0]}", "--json"])
    assert erased.exit_code == 0, erased.output
    out["erased"] = json.loads(erased.stdout)["records"]
    verified = runner.invoke(app, ["capture", "verify", "--json"])
    assert verified.exit_code == 0 and json.loads(verified.stdout)["ok"], verified.output
    reset_default()
    return out


def _points(window: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (p["metric"], str(p.get("feature")), round(float(p["value"]), 12))
        for p in window["points"]
        if p.get("value") is not None
    )


def _holding(home: Path) -> list[str]:
    text = repr(SECRET_AGE).encode()
    packed = struct.pack("<d", SECRET_AGE)
    return sorted(
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.is_file() and (text in (data := p.read_bytes()) or packed in data)
    )


def test_an_encrypted_log_answers_alike_and_holds_no_value(
    registered_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(new_key_line("k1") + "\n")
    plain, secret = tmp_path / "plain", tmp_path / "secret"
    shutil.copytree(registered_home, plain)
    shutil.copytree(registered_home, secret)
    expected = _run(plain, None, monkeypatch)
    found = _run(secret, keys, monkeypatch)
    # The scan does find the value where the log is plain...
    assert any(p.startswith("artifacts/capture/") for p in expected["holding"])
    # ...and nowhere under an encrypted log's home: segments, parts, window summaries.
    assert found["summary_files"] == expected["summary_files"] > 0
    assert found["holding"] == [] and _holding(secret) == []
    assert found["summaries"] == expected["summaries"] and found["summaries"]
    assert found["monitor"] == expected["monitor"] and len(found["monitor"]) == 3
    pd.testing.assert_frame_equal(found["export"], expected["export"])
    assert found["erased"] == expected["erased"] == 50
