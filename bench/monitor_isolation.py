"""Monitoring off the serving process: what a scheduled cycle costs the predictions it
runs beside, in a thread of the worker (``VIGIL_MONITOR_ISOLATION=thread``) and in a
child process (``process``, the default).

Run: ``flock /tmp/vigil-bench.lock python -m bench.monitor_isolation [--rounds 3]
[--rows 40000] [--seconds 20]``.

A home holds ``churn`` (logistic regression, 8 features) and ``--rows`` predictions
captured over the last 40 minutes, none monitored: ``--rows / 1000`` count windows of
1,000 predictions (``VIGIL_MONITOR_WINDOW=1000``) for the first cycle to judge. Per round
and mode (``off``: monitoring disabled, the floor; ``thread``; ``process``), in an order
rotated each round: a fresh copy of that home; ``vigil serve`` (one worker, capture on,
pinned to CPU 0, and so is the cycle's child: the worker and its monitoring share one
core, as on a busy machine) with its first cycle :data:`FIRST_CYCLE_S` seconds after start
(``VIGIL_MONITOR_INTERVAL_S``; later cycles only look at the open windows, nearly free);
from readiness, wrk (CPU 1, 32 keep-alive connections, ``POST /v1/models/churn/predict``,
one row) for ``--seconds``. Reported per mode: wrk's p50, p99 and throughput over that
run, when the cycle had stored its windows (seconds after readiness; polled from the
store on CPU 1), and the worker's resident memory at its peak (``VmHWM``). Results: ``bench/results/monitor_isolation.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.serving.runner import lua_script, parse_wrk, run_wrk, wrk_path
from vigil.serving.server import free_port

N_FEATURES = 8
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
FIRST_CYCLE_S = 3.0
BATCH = 10
MODES = ("off", "thread", "process")
WINDOW = 1000
SERVER_CPU = "0"


def prepare(home: Path, rows: int) -> None:
    """``churn`` registered, and ``rows`` predictions captured in the last 40 minutes."""
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from vigil.app import Vigil
    from vigil.capture.log import SegmentLog
    from vigil.capture.sink import CaptureSink
    from vigil.settings import load_settings
    from vigil.storage.sql import utcnow

    X, y = make_classification(n_samples=2000, n_features=N_FEATURES, random_state=0)
    frame = pd.DataFrame(X, columns=FEATURES)
    vigil = Vigil(load_settings(home=home))
    model = LogisticRegression().fit(frame, y)
    vigil.register(model, name="churn", reference=frame.assign(y=y), target="y")
    vigil.registry.set_alias("churn", "production", 1)
    traffic = pd.DataFrame(
        np.random.default_rng(1).normal(size=(rows, N_FEATURES)), columns=FEATURES
    )
    predictions, probabilities = model.predict(traffic), model.predict_proba(traffic)
    start = utcnow() - timedelta(minutes=40)
    step = timedelta(minutes=30) / (rows // BATCH)
    sink = CaptureSink(SegmentLog(vigil.capture_dir))
    for i, lo in enumerate(range(0, rows, BATCH)):
        sink.record_prediction(
            request_id=f"pre{i:07d}",
            model="churn",
            version=1,
            features=traffic.iloc[lo : lo + BATCH].reset_index(drop=True),
            predictions=predictions[lo : lo + BATCH],
            probabilities=probabilities[lo : lo + BATCH],
            classes=[int(c) for c in model.classes_],
            route="native_predict",
            time=start + i * step,
        )
    sink.close()
    vigil.database.dispose()


def stored(home: Path) -> int:
    """Complete count windows in the store."""
    from vigil.app import Vigil
    from vigil.monitor.series import stored_windows
    from vigil.settings import load_settings

    vigil = Vigil(load_settings(home=home))
    try:
        return sum(not w.partial for w in stored_windows(vigil.database, window=str(WINDOW)))
    finally:
        vigil.database.dispose()


def one_point(
    template: Path, work: Path, mode: str, seconds: float, windows: int
) -> dict[str, Any]:
    home = work / f"home-{mode}"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(template, home)
    port = free_port()
    path = os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "VIGIL_HOME": str(home),
        "VIGIL_MONITOR_ENABLED": "false" if mode == "off" else "true",
        "VIGIL_MONITOR_ISOLATION": "process" if mode == "off" else mode,
        "VIGIL_MONITOR_INTERVAL_S": str(FIRST_CYCLE_S),
        "VIGIL_MONITOR_WINDOW": str(WINDOW),
        "VIGIL_MONITOR_RULES": "[]",
        "OMP_NUM_THREADS": "1",
    }
    log = (work / f"server-{mode}.log").open("wb")
    server = subprocess.Popen(
        [
            *("taskset", "-c", SERVER_CPU, sys.executable, "-m", "vigil.cli", "serve"),
            *("--port", str(port), "--log-level", "info"),
        ],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"vigil serve did not start:\n{(work / f'server-{mode}.log').read_text()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        ready = time.monotonic()
        done: list[float] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.5):
                if stored(home) >= windows:
                    done.append(time.monotonic() - ready)
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        if mode != "off":
            watcher.start()
        row = dict(
            zip(FEATURES, np.random.default_rng(0).normal(size=N_FEATURES).tolist(), strict=True)
        )
        body = json.dumps({"inputs": row}).encode()
        script = lua_script("/v1/models/churn/predict", body)
        output = run_wrk(url, script, 32, seconds)
        os.unlink(script)
        rps, p50, p99, errors = parse_wrk(output)
        if mode != "off":
            watcher.join(180)  # the cycle may finish after the load: report when
        stop.set()
        memory = _memory_mib(server.pid)  # one worker: the server's own process
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    return {
        "mode": mode,
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": errors,
        "windows_stored_after_s": done[0] if done else None,
        "worker_rss_mib": memory["VmRSS"],
        "worker_peak_rss_mib": memory["VmHWM"],
    }


def _memory_mib(pid: int) -> dict[str, float]:
    """The process's resident memory now (``VmRSS``) and at its peak (``VmHWM``)."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="one round, 10,000 rows, 10 s")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.rows, args.seconds = 1, 10_000, 10.0
    wrk_path()
    windows = args.rows // WINDOW
    points: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vigil-monitor-isolation-") as tmp:
        work = Path(tmp)
        template = work / "template"
        prepare(template, args.rows)
        for r in range(args.rounds):
            order = MODES[r % 3 :] + MODES[: r % 3]
            for mode in order:
                point = one_point(template, work, mode, args.seconds, windows)
                point["round"] = r
                points.append(point)
                print(json.dumps(point), flush=True)
    summary: dict[str, Any] = {}
    for mode in MODES:
        mine = [p for p in points if p["mode"] == mode]
        summary[mode] = {
            "p99_ms": statistics.median(p["p99_ms"] for p in mine),
            "p50_ms": statistics.median(p["p50_ms"] for p in mine),
            "rps": statistics.median(p["rps"] for p in mine),
            "errors": sum(p["errors"] for p in mine),
            "windows_stored_after_s": [p["windows_stored_after_s"] for p in mine],
            "worker_peak_rss_mib": statistics.median(p["worker_peak_rss_mib"] for p in mine),
        }
    for mode in ("thread", "process"):
        summary[mode]["p99_vs_off"] = summary[mode]["p99_ms"] / summary["off"]["p99_ms"]
        summary[mode]["rps_vs_off"] = summary[mode]["rps"] / summary["off"]["rps"]
    # Paired per round: the two modes measured minutes apart on the same machine.
    summary["p99_thread_over_process_per_round"] = [
        next(p["p99_ms"] for p in points if p["round"] == r and p["mode"] == "thread")
        / next(p["p99_ms"] for p in points if p["round"] == r and p["mode"] == "process")
        for r in range(args.rounds)
    ]
    print(json.dumps(summary, indent=2))
    out = Path("bench/results/monitor_isolation.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "points": points, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
