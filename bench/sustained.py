"""Sustained load: does one long-lived ``vigil serve`` keep its throughput? (issue 14)

``python -m bench.sustained [--seconds 120] [--interval 5] [--rounds 1] [--before-src PATH]``
(``--quick``: 75 s, which still takes in the compaction pass 60 s after start)

One server (one worker, pinned to CPU 0, capture on with its default 64 MB segments and
60 s compaction, as ``vigil serve`` runs; the in-server monitor off, as in
``bench.routing``) answers single-row predictions of a LogisticRegression from wrk (32
connections, CPU 1) for ``--seconds`` without a pause, measured in back-to-back wrk runs of
``--interval`` seconds. Per interval: requests per second, the server's CPU time per
request (steadier than req/s on a shared machine), its resident memory and the capture
segments waiting on disk.

It reports how the end of the run compares with its start: ``sustained_ratio``, the mean
req/s of the run's second half over its first 30 s, and ``worst_ratio``, the slowest
interval over the same start (1.0: no slowdown). ``bench.serving`` starts a server per
point and never sees what a long-lived one does: at ~15,000 req/s a 64 MB segment closes
every few seconds and each compaction pass converts them in the server's process.

``--before-src`` (another checkout's ``src``, e.g. ``git archive <commit> src | tar -x -C
DIR``) also runs that code's server, in turn with this one, ``--rounds`` times: before and
after in one run. First, in process and without a server, it times the conversion of one
segment of the server's shape both ways compaction knows (:func:`compaction_cpu`). Results:
``bench/results/sustained.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.routing import prepare
from bench.serving.apps import FEATURES
from bench.serving.runner import (
    SERVER_CPU,
    Server,
    cpu_seconds,
    lua_script,
    one_row,
    parse_wrk,
    requests_done,
    run_wrk,
)
from vigil.serving.server import free_port

CONNECTIONS = 32
WARMUP_S = 3.0
START_S = 30.0
"""The start of a run, the baseline every later interval is compared with."""


class SustainedServer(Server):
    """``bench.routing``'s server process (every model of ``home``, capture on, the monitor
    off), running the vigil of ``src`` when given (first on its ``PYTHONPATH``)."""

    def __init__(self, home: Path, src: str | None) -> None:
        self.port = free_port()
        self.grpc_port = None  # HTTP only (the runner's readiness probe asks)
        self.url = f"http://127.0.0.1:{self.port}"
        path = os.pathsep.join(p for p in (src, os.getcwd(), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
        env.update(VIGIL_HOME=str(home), VIGIL_MONITOR_ENABLED="false")
        command = ["taskset", "-c", SERVER_CPU, sys.executable, "-m", "bench.routing"]
        self.process = subprocess.Popen([*command, "serve", str(self.port)], env=env)


def _rss_mb(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(name: str, src: str | None, seconds: float, interval: float) -> dict[str, Any]:
    """One server under load for ``seconds``: its intervals and ratios."""
    row = dict(zip(FEATURES, one_row().tolist(), strict=True))
    body = json.dumps({"instances": [row]}).encode()
    intervals: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="vigil-bench-sustained-") as tmp:
        home = Path(tmp) / "home"
        prepare(home)
        script = lua_script("/v1/models/model/predict", body)
        try:
            with SustainedServer(home, src) as server:
                pid = server.process.pid
                run_wrk(server.url, script, CONNECTIONS, WARMUP_S)  # the batcher calibrated
                started = time.monotonic()
                while (at := time.monotonic() - started) < seconds:
                    cpu = cpu_seconds(pid)
                    output = run_wrk(server.url, script, CONNECTIONS, interval)
                    cpu_us = (cpu_seconds(pid) - cpu) / max(requests_done(output), 1) * 1e6
                    rps, _p50, p99, errors = parse_wrk(output)
                    segments = len(list((home / "capture").glob("capture-*.*")))
                    point = {"t": round(at, 1), "rps": rps, "cpu_us": cpu_us, "p99_ms": p99}
                    point.update(errors=errors, rss_mb=_rss_mb(pid), segments=segments)
                    intervals.append(point)
                    print(
                        f"  {name:<7} t={at:5.0f} s {rps:8.0f} req/s  CPU {cpu_us:6.1f} µs/req  "
                        f"p99 {p99:7.2f} ms  RSS {point['rss_mb']:5.0f} MB  segments "
                        f"{segments}  errors {errors}",
                        flush=True,
                    )
        finally:
            Path(script).unlink()
    first = statistics.mean(p["rps"] for p in intervals if p["t"] < START_S)
    later = [p["rps"] for p in intervals if p["t"] >= seconds / 2]
    return {
        "name": name,
        "src": src,
        "intervals": intervals,
        "first_30s_rps": first,
        "sustained_ratio": statistics.mean(later) / first,
        "worst_ratio": min(p["rps"] for p in intervals) / first,
        "last_over_first": intervals[-1]["rps"] / intervals[0]["rps"],
        "cpu_us_first_30s": statistics.median(p["cpu_us"] for p in intervals if p["t"] < START_S),
        "cpu_us_worst": max(p["cpu_us"] for p in intervals),
        "rss_mb_max": max(p["rss_mb"] for p in intervals),
        "errors": sum(p["errors"] for p in intervals),
    }


def compaction_cpu(requests: int = 120_000, batch: int = 16, rounds: int = 3) -> dict[str, float]:
    """CPU seconds to turn one segment of the server's shape (``requests`` one-row
    predictions of 8 features in group commits of ``batch``) into its partition's table: the columnar way compaction takes now, and record by record
    (the way it took before, still its fallback), interleaved, fastest of ``rounds``."""
    import numpy as np

    from vigil.capture.columnar import segment_tables
    from vigil.capture.compact import _tables, capture_partition
    from vigil.capture.framing import decode_frames
    from vigil.capture.log import SegmentLog
    from vigil.capture.sink import Answered, CaptureSink
    from vigil.capture.table import records_to_table

    with tempfile.TemporaryDirectory() as tmp:
        sink = CaptureSink(SegmentLog(tmp, segment_bytes=1 << 40))
        X = np.random.default_rng(0).normal(size=(requests, len(FEATURES)))
        proba = np.array([[0.3, 0.7]])
        for start in range(0, requests, batch):
            sink.record_answered(
                [
                    Answered(
                        os.urandom(16).hex(),
                        "model",
                        1,
                        X[i : i + 1],
                        FEATURES,
                        np.array([i % 2]),
                        proba,
                        [0, 1],
                        "native",
                        1.2,
                    )
                    for i in range(start, min(start + batch, requests))
                ]
            )
        path = sink.log.rotate()
        assert path is not None
        data = path.read_bytes()

    def columnar() -> None:
        items, _torn = decode_frames(data, expand=False)
        assert segment_tables(items, segment="s", partition=capture_partition) is not None

    def by_records() -> None:
        _tables(decode_frames(data)[0], capture_partition, records_to_table, "s")

    best = {"columnar": float("inf"), "by_records": float("inf")}
    for _ in range(rounds):
        for name, step in (("columnar", columnar), ("by_records", by_records)):
            started = time.process_time()
            step()
            best[name] = min(best[name], time.process_time() - started)
    mb = len(data) / 2**20
    print(
        f"compaction of a {mb:.0f} MB segment ({requests:,} rows, batches of {batch}): "
        f"columnar {best['columnar']:.2f} s CPU, record by record {best['by_records']:.2f} s "
        f"({best['by_records'] / best['columnar']:.1f}x), fastest of {rounds}",
        flush=True,
    )
    return {**best, "segment_mb": mb, "rows": requests}


def main(
    seconds: float = 120.0,
    interval: float = 5.0,
    rounds: int = 1,
    before_src: str | None = None,
    output: Path = Path("bench/results/sustained.json"),
) -> dict[str, Any]:
    print(
        f"sustained load: {seconds:.0f} s per server in {interval:.0f} s intervals, "
        f"{CONNECTIONS} connections, {rounds} round(s)"
        + (f", against {before_src}" if before_src else ""),
        flush=True,
    )
    compaction = compaction_cpu()
    runs: list[dict[str, Any]] = []
    for _ in range(rounds):
        if before_src:
            runs.append(run("before", before_src, seconds, interval))
        runs.append(run("after" if before_src else "this", None, seconds, interval))
    print()
    keys = ("first_30s_rps", "sustained_ratio", "worst_ratio", "cpu_us_worst", "rss_mb_max")
    for r in runs:
        print(f"{r['name']:<7}" + "  ".join(f"{k} {r[k]:.2f}" for k in keys))
    report = {
        "seconds": seconds,
        "interval": interval,
        "connections": CONNECTIONS,
        "compaction_cpu_s": compaction,
        "runs": runs,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {output}")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.sustained")
    parser.add_argument("--seconds", type=float, default=120.0, help="load per server (120)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds per wrk run (5)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (1)")
    parser.add_argument("--before-src", default=None, help="another checkout's src, in turn")
    parser.add_argument("--quick", action="store_true", help="75 s per server")
    args = parser.parse_args()
    main(
        seconds=75.0 if args.quick else args.seconds,
        interval=args.interval,
        rounds=args.rounds,
        before_src=args.before_src,
    )
