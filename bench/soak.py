"""Soak: ``python -m bench.soak [--minutes 10] [--connections 32]``.

A real ``vigil serve`` (one worker, capture on, pinned to one core) answers ``--connections``
keep-alive connections of single-row predictions for ``--minutes`` (a fraction works:
``--minutes 0.5``), while the driver, on the other core, also

* sends feedback: a label for one answered prediction in ten, in a batch every second;
* moves the ``production`` alias between versions 1 and 2 every 20 s, through the admin
  API, so the server loads, warms and swaps models under load;

and the server itself compacts its log every 10 s (segments closed every 20 s), applies
retention, and runs monitoring on one-minute windows every 30 s over the last two minutes
(``--no-monitoring`` leaves it out, to tell its memory from the rest).

It reports what must hold after any length of run: **zero errors** (any answer but 200, any
connection failure), the server's **resident memory growth after warm-up** (the first
fifth of the run: two minutes of ten; goal under 10 %), and **capture-log completeness**:
every request id answered 200 is found by :func:`~vigil.capture.reader.read_capture` once
the server has stopped, and every accepted label is in the feedback store. Also: requests
per second, client-side p50/p99 latency, alias moves and the versions that answered,
monitoring windows stored, Parquet parts compacted. Figures land in
``bench/results/soak.json``.

The client is a minimal HTTP/1.1 keep-alive client on asyncio streams (uvloop): far
cheaper per request than a general-purpose client, so one core drives the server harder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

SERVER_CPU = 0
CLIENT_CPU = 1
N_FEATURES = 8
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
LABEL_ONE_IN = 10
MOVE_EVERY_S = 20.0
SAMPLE_EVERY_S = 2.0
SERVER_ENV = {
    "VIGIL_CAPTURE_COMPACT_INTERVAL_S": "10",
    "VIGIL_CAPTURE_SEGMENT_SECONDS": "20",
    "VIGIL_MONITOR_INTERVAL_S": "30",
    "VIGIL_MONITOR_WINDOW": "1m",
    "VIGIL_MONITOR_GRACE_S": "5",
    # Labels arrive all the time, so every cycle re-reads its whole lookback span (see
    # vigil.monitor.engine.Resume): the default 7 days would be the whole run, every cycle.
    "VIGIL_MONITOR_LOOKBACK": "2m",
    "OMP_NUM_THREADS": "1",
}


# -- the models --------------------------------------------------------------------------


def register(home: Path) -> None:
    """``churn`` versions 1 and 2 (two logistic regressions) with their reference data."""
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from vigil.app import Vigil
    from vigil.settings import load_settings

    X, y = make_classification(n_samples=2000, n_features=N_FEATURES, random_state=0)
    frame = pd.DataFrame(X, columns=FEATURES)
    vigil = Vigil(load_settings(home=home))
    for c in (1.0, 0.01):
        model = LogisticRegression(C=c).fit(frame, y)
        vigil.register(model, name="churn", reference=frame.assign(y=y), target="y")
    vigil.registry.set_alias("churn", "production", 1)
    vigil.database.dispose()


def bodies(count: int = 512) -> list[bytes]:
    rows = np.random.default_rng(1).normal(size=(count, N_FEATURES))
    return [orjson.dumps({"inputs": dict(zip(FEATURES, r.tolist(), strict=True))}) for r in rows]


# -- a minimal keep-alive HTTP/1.1 client ------------------------------------------------


class Connection:
    """One keep-alive connection; reconnects after a failure."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes, headers: str = ""
    ) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self._reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{headers}\r\n"
        ).encode()
        try:
            self._writer.write(head + body)
            raw = await self._reader.readuntil(b"\r\n\r\n")
            status = int(raw[9:12])
            length = 0
            for line in raw.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            return status, await self._reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            raise

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


# -- the run -----------------------------------------------------------------------------


@dataclass
class Tally:
    answered: set[str] = field(default_factory=set)
    """Request ids answered 200."""
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    versions: Counter[int] = field(default_factory=Counter)
    to_label: list[str] = field(default_factory=list)
    labels_sent: int = 0
    labels_accepted: int = 0
    moves: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)

    def error(self, kind: str, sample: str) -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(f"{kind}: {sample[:300]}")


async def predictor(n: int, port: int, payloads: list[bytes], tally: Tally, stop: float) -> None:
    connection = Connection(port)
    pick = random.Random(n)
    i = 0
    while time.monotonic() < stop:
        rid = f"soak-{n}-{i}"
        i += 1
        started = time.perf_counter()
        try:
            status, body = await connection.request(
                "POST",
                "/v1/models/churn/predict",
                pick.choice(payloads),
                f"X-Request-ID: {rid}\r\n",
            )
        except Exception as exc:  # a refused or dropped connection is an error to report
            tally.error(type(exc).__name__, str(exc))
            await asyncio.sleep(0.05)
            continue
        tally.latencies.append(time.perf_counter() - started)
        if status != 200:
            tally.error(f"HTTP {status}", body.decode("utf-8", "replace"))
            continue
        tally.answered.add(rid)
        tally.versions[orjson.loads(body)["version"]] += 1
        if i % LABEL_ONE_IN == 0:
            tally.to_label.append(rid)
    connection.close()


async def labeller(port: int, tally: Tally, stop: float) -> None:
    connection = Connection(port)
    pick = random.Random(7)
    while time.monotonic() < stop:
        await asyncio.sleep(1.0)
        batch, tally.to_label = tally.to_label, []
        if not batch:
            continue
        body = orjson.dumps(
            {"feedback": [{"request_id": rid, "label": pick.randint(0, 1)} for rid in batch]}
        )
        try:
            status, answer = await connection.request("POST", "/v1/feedback", body)
        except Exception as exc:
            tally.error(f"feedback {type(exc).__name__}", str(exc))
            continue
        tally.labels_sent += len(batch)
        if status != 200:
            tally.error(f"feedback HTTP {status}", answer.decode("utf-8", "replace"))
            continue
        tally.labels_accepted += orjson.loads(answer)["accepted"]


async def mover(port: int, tally: Tally, stop: float) -> None:
    connection = Connection(port)
    version = 1
    while time.monotonic() + MOVE_EVERY_S < stop:
        await asyncio.sleep(MOVE_EVERY_S)
        version = 3 - version
        body = orjson.dumps({"version": version, "reason": "soak"})
        try:
            status, answer = await connection.request(
                "PUT", "/v1/admin/models/churn/aliases/production", body
            )
        except Exception as exc:
            tally.error(f"move {type(exc).__name__}", str(exc))
            continue
        if status != 200:
            tally.error(f"move HTTP {status}", answer.decode("utf-8", "replace"))
        else:
            tally.moves += 1


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its children (Linux ``/proc``)."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    pages = 0
    for p in pids:
        with contextlib.suppress(OSError):  # a child that just exited
            pages += int(Path(f"/proc/{p}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


async def sampler(pid: int, tally: Tally, started: float, stop: float) -> None:
    while time.monotonic() < stop:
        tally.rss.append((time.monotonic() - started, rss_bytes(pid)))
        await asyncio.sleep(SAMPLE_EVERY_S)


async def drive(port: int, pid: int, seconds: float, connections: int) -> Tally:
    tally = Tally()
    payloads = bodies()
    started = time.monotonic()
    stop = started + seconds
    await asyncio.gather(
        *(predictor(n, port, payloads, tally, stop) for n in range(connections)),
        labeller(port, tally, stop),
        mover(port, tally, stop),
        sampler(pid, tally, started, stop),
    )
    return tally


# -- the server --------------------------------------------------------------------------


def start_server(home: Path, port: int, *, monitoring: bool) -> subprocess.Popen[bytes]:
    # The caller's PYTHONPATH stays: a checkout run with PYTHONPATH=src serves that source.
    path = os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, **SERVER_ENV, "VIGIL_HOME": str(home), "PYTHONPATH": path}
    env["VIGIL_MONITOR_ENABLED"] = "true" if monitoring else "false"
    command = ["taskset", "-c", str(SERVER_CPU), sys.executable, "-m", "vigil.cli", "serve"]
    log = (home / "server.log").open("wb")
    return subprocess.Popen([*command, "--port", str(port)], env=env, stdout=log, stderr=log)


def wait_ready(port: int, server: subprocess.Popen[bytes], home: Path) -> None:
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"vigil serve exited:\n{(home / 'server.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("vigil serve was not ready in 180 s")


def stop_server(server: subprocess.Popen[bytes]) -> int:
    server.send_signal(signal.SIGTERM)  # drains, closes the live segments
    try:
        code = server.wait(timeout=120)
    except subprocess.TimeoutExpired:
        server.kill()
        return server.wait()
    # uvicorn re-raises the signal once it has shut down cleanly.
    return 0 if code in (-signal.SIGTERM, 128 + signal.SIGTERM) else code


# -- what the logs hold afterwards ----------------------------------------------------------


def audit(home: Path, tally: Tally) -> dict[str, Any]:
    from vigil.capture.reader import read_capture_table
    from vigil.feedback.store import FeedbackStore
    from vigil.monitor.series import stored_windows
    from vigil.storage.artifacts import ArtifactStore
    from vigil.storage.sql import Database

    store = ArtifactStore(str(home / "artifacts"))
    table = read_capture_table("churn", store=store, log_dir=home / "capture")
    logged = set(table["request_id"].to_pylist()) if table is not None else set()
    missing = tally.answered - logged
    feedback = FeedbackStore(home / "feedback", store=store).read()
    parts = store.fs.glob(f"{store.resolve_key('capture')}/**/*.parquet")
    quarantined = store.fs.glob(f"{store.root}/quarantine/**")
    windows = stored_windows(Database(f"sqlite:///{home / 'vigil.db'}"), window="1m", model="churn")
    return {
        "logged_rows": 0 if table is None else table.num_rows,
        "missing_from_capture": len(missing),
        "missing_sample": sorted(missing)[:5],
        "feedback_stored": len(feedback),
        "compacted_parts": len(parts),
        "quarantined_files": len(quarantined),
        "monitor_windows": len(windows),
    }


def rss_growth(samples: list[tuple[float, int]], warmup: float) -> dict[str, float]:
    """Median RSS over the 30 s after warm-up, over the last 30 s, and the growth."""
    after = [r for t, r in samples if warmup <= t < warmup + 30] or [samples[-1][1]]
    end = samples[-1][0]
    last = [r for t, r in samples if t >= end - 30] or [samples[-1][1]]
    base, final = statistics.median(after), statistics.median(last)
    return {
        "warm_mib": base / 2**20,
        "final_mib": final / 2**20,
        "peak_mib": max(r for _t, r in samples) / 2**20,
        "growth": final / base - 1,
        "samples": [(round(t, 1), round(r / 2**20, 1)) for t, r in samples],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--output", type=Path, default=Path("bench/results/soak.json"))
    parser.add_argument("--keep", action="store_true", help="keep the home directory")
    parser.add_argument(
        "--no-monitoring", action="store_true", help="no scheduled monitoring in the server"
    )
    parser.add_argument("--quick", action="store_true", help="one minute (for python -m bench)")
    args = parser.parse_args(argv)
    seconds = (1.0 if args.quick else args.minutes) * 60
    warmup = seconds / 5
    import uvloop

    from vigil.serving.server import free_port

    home = Path(tempfile.mkdtemp(prefix="vigil-soak-"))
    print(f"soak: {seconds / 60:g} min, {args.connections} connections, home {home}", flush=True)
    register(home)
    port = free_port()
    server = start_server(home, port, monitoring=not args.no_monitoring)
    try:
        wait_ready(port, server, home)
        os.sched_setaffinity(0, {CLIENT_CPU % (os.cpu_count() or 1)})
        tally = uvloop.run(drive(port, server.pid, seconds, args.connections))
    finally:
        code = stop_server(server)
    report: dict[str, Any] = {
        "minutes": seconds / 60,
        "monitoring": not args.no_monitoring,
        "connections": args.connections,
        "requests": len(tally.latencies) + sum(tally.errors.values()),
        "answered_200": len(tally.answered),
        "requests_per_second": len(tally.latencies) / seconds,
        "p50_ms": float(np.percentile(tally.latencies, 50) * 1e3),
        "p99_ms": float(np.percentile(tally.latencies, 99) * 1e3),
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "error_samples": tally.error_samples,
        "versions_answering": dict(tally.versions),
        "alias_moves": tally.moves,
        "labels_sent": tally.labels_sent,
        "labels_accepted": tally.labels_accepted,
        "warmup_s": warmup,
        "rss": rss_growth(tally.rss, warmup),
        "server_exit": code,
        **audit(home, tally),
    }
    report["rss_goal_met"] = report["rss"]["growth"] < 0.10
    report["complete"] = (
        report["missing_from_capture"] == 0
        and report["feedback_stored"] == report["labels_accepted"]
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    rss = report["rss"]
    print(
        f"{report['requests']} requests ({report['requests_per_second']:.0f}/s), "
        f"p50 {report['p50_ms']:.2f} ms, p99 {report['p99_ms']:.2f} ms, "
        f"errors {report['errors']} {report['error_kinds'] or ''}\n"
        f"RSS {rss['warm_mib']:.1f} MiB after warm-up -> {rss['final_mib']:.1f} MiB at the end "
        f"({rss['growth']:+.1%}; peak {rss['peak_mib']:.1f} MiB; goal < +10 %)\n"
        f"capture: {report['missing_from_capture']} of {report['answered_200']} answered "
        f"request ids missing; feedback {report['feedback_stored']} stored of "
        f"{report['labels_accepted']} accepted ({report['labels_sent']} sent)\n"
        f"{report['alias_moves']} alias moves (versions answering: "
        f"{report['versions_answering']}), {report['monitor_windows']} monitoring windows, "
        f"{report['compacted_parts']} Parquet parts, {report['quarantined_files']} quarantined\n"
        f"written to {args.output}",
        flush=True,
    )
    if not args.keep:
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    ok = report["errors"] == 0 and report["complete"] and report["server_exit"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
