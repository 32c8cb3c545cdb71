"""Cost of capturing predictions: ``python -m bench.capture [--quick] [--serving]``.

Without ``--serving``: µs of capture per single-row request (20 features, class
probabilities: what the serving hot path records), measured inside a real event loop
(uvloop) for

* ``per-request``: one :meth:`CaptureSink.record_prediction` (encode + ``os.write``) per
  request, the path before group commit;
* ``group k=N``: N requests answered by one model call handed to
  :meth:`~vigil.capture.group.GroupCommit.write` (one columnar frame, one ``os.write``)
  before they are released, as the server's micro-batcher does;

each minus a no-op with the same awaits, for each fsync policy.

With ``--serving``: the real server (uvicorn + httptools + uvloop, pinned to one core, wrk
on the other, as in ``bench.serving``) with capture off and on, native route, one row per
request, at 32 connections; rounds alternate off/on and the ratio of medians is reported
(goal: capture on ≥ 0.90 × capture off). Figures land in ``bench/results/capture.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vigil.capture.group import GroupCommit
from vigil.capture.log import SegmentLog
from vigil.capture.reader import read_capture_table
from vigil.capture.sink import Answered, CaptureSink

N_FEATURES = 20
NAMES = [f"f{i}" for i in range(N_FEATURES)]


def _answered(i: int, X: np.ndarray, proba: np.ndarray) -> Answered:
    return Answered(
        f"r{i}", "m", 1, X, NAMES, np.zeros(1, dtype=np.int64), proba, [0, 1], "native", 1.0
    )


async def _requests(how: str, sink: CaptureSink, n: int, k: int, X: Any, proba: Any) -> None:
    """``n`` requests, ``k`` of them answered together (as a micro-batch's are), each
    logged ``how``: ``noop`` (the same one suspension, nothing written), ``per-request``
    (its own encode and write) or ``group`` (the call's requests share one write)."""
    commit = GroupCommit(sink)

    async def handler(i: int) -> None:
        if how == "per-request":
            sink.record_prediction(
                request_id=f"r{i}",
                model="m",
                version=1,
                features=X,
                feature_names=NAMES,
                predictions=np.zeros(1, dtype=np.int64),
                probabilities=proba,
                classes=[0, 1],
                route="native",
                latency_ms=1.0,
            )
        await asyncio.sleep(0)

    for start in range(0, n, k):
        ids = range(start, min(start + k, n))
        if how == "group":
            commit.write([_answered(i, X, proba) for i in ids])
        await asyncio.gather(*(handler(i) for i in ids))


def measure(n: int, fsync: str = "none") -> dict[str, float]:
    """µs of capture per request for the per-request path and group commits of 1..32."""
    import uvloop

    rng = np.random.default_rng(0)
    X = rng.normal(size=(1, N_FEATURES))
    proba = np.array([[0.3, 0.7]])
    results: dict[str, float] = {}

    def timed(coro: Any) -> float:
        started = time.perf_counter()
        uvloop.run(coro)
        return (time.perf_counter() - started) / n * 1e6

    with tempfile.TemporaryDirectory() as tmp:
        sink = CaptureSink(SegmentLog(tmp, fsync=fsync, fsync_interval_s=1.0))
        for label, how, k in (
            ("per-request", "per-request", 1),
            *((f"group k={k}", "group", k) for k in (1, 8, 32)),
        ):
            noop = timed(_requests("noop", sink, n, k, X, proba))
            results[label] = timed(_requests(how, sink, n, k, X, proba)) - noop
        sink.close()
    return results


def micro(quick: bool) -> dict[str, dict[str, float]]:
    n = 2_000 if quick else 20_000
    report = {}
    for fsync in ("none", "interval", "always"):
        calls = n if fsync != "always" else max(n // 20, 96)
        r = measure(calls, fsync)
        report[fsync] = r
        shown = "  ".join(f"{k}: {v:6.1f} µs" for k, v in r.items())
        print(f"fsync={fsync:8s} capture per request  {shown}", flush=True)
    return report


# -- the real server, capture off vs on ---------------------------------------------------


def app(capture_home: Path | None) -> Any:
    """The benchmark's vigil app (bench.serving's logistic model), capturing under
    ``capture_home`` (``None``: capture off)."""
    from bench.serving.apps import _Adapter, logistic
    from vigil.bundle.model import LoadedBundle
    from vigil.bundle.signature import FeatureSpec, OutputSpec, Signature
    from vigil.capture.settings import CaptureSettings
    from vigil.serving.app import create_app
    from vigil.serving.capture_runtime import CaptureRuntime
    from vigil.serving.config import ServingSettings
    from vigil.serving.provider import StaticProvider

    signature = Signature(
        inputs=[FeatureSpec(name=n, dtype="float64", nullable=False) for n in NAMES],
        outputs=OutputSpec(task="classification", dtype="int64", classes=[0, 1], has_proba=True),
    )
    bundle = LoadedBundle(_Adapter(logistic()), signature, name="model", version=1)
    runtime = None
    if capture_home is not None:
        runtime = CaptureRuntime.from_settings(CaptureSettings(), home=capture_home, store=None)
    settings = ServingSettings(gc_freeze=True)  # as `vigil serve` sets it for its workers
    return create_app(StaticProvider([bundle], settings=settings), capture=runtime)


def serve_app(kind: str, port: int) -> None:
    """``python -m bench.capture --app on|off PORT``: what the server subprocess runs
    (capturing under ``$VIGIL_BENCH_CAPTURE_HOME`` when on)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from vigil.serving.server import run

    home = Path(os.environ["VIGIL_BENCH_CAPTURE_HOME"]) if kind == "on" else None
    run(app(home), "127.0.0.1", port)


def serving(quick: bool) -> dict[str, Any]:
    from bench.serving import runner

    runner.wrk_path()
    rounds, seconds, warmup = (1, 3.0, 1.0) if quick else (5, 10.0, 3.0)
    row = np.random.default_rng(0).normal(size=N_FEATURES).tolist()
    body = json.dumps({"instances": [dict(zip(NAMES, row, strict=True))]}).encode()

    class Server(runner.Server):
        def __init__(self, kind: str, home: str) -> None:
            from vigil.serving.server import free_port

            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            command = ["taskset", "-c", runner.SERVER_CPU, sys.executable, "-m", "bench.capture"]
            env = {
                **os.environ,
                "OMP_NUM_THREADS": "1",
                # The caller's PYTHONPATH after the repository's: a worktree's src is served.
                "PYTHONPATH": os.pathsep.join(
                    p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p
                ),
                "VIGIL_BENCH_CAPTURE_HOME": home,
            }
            self.process = subprocess.Popen([*command, "--app", kind, str(self.port)], env=env)

    print(f"serving with capture off/on, 32 connections, {rounds} round(s) of {seconds:.0f} s")
    rps: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    errors = 0
    logged = 0
    for _ in range(rounds):
        for kind in ("off", "on"):
            with tempfile.TemporaryDirectory() as home:
                with Server(kind, home) as server:
                    (result,) = runner.measure(
                        f"capture-{kind}",
                        server,
                        "/v1/models/model/predict",
                        body,
                        [32],
                        seconds,
                        warmup,
                    )
                table = read_capture_table(log_dir=Path(home) / "capture")
                logged += 0 if table is None else table.num_rows
            rps[kind].append(result.requests_per_second)
            cpu[kind].append(result.cpu_us_per_request or float("nan"))
            errors += result.errors
    off, on = statistics.median(rps["off"]), statistics.median(rps["on"])
    ratio = on / off
    print(f"capture on / off at 32 connections: {ratio:.3f} ({on:.0f} vs {off:.0f} req/s)")
    cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    print(
        f"server CPU per request, median: {cpu_off:.1f} µs off, {cpu_on:.1f} µs on: "
        f"capture costs {cpu_on - cpu_off:.1f} µs ({cpu_on / cpu_off - 1:+.1%})"
    )
    print(f"requests in the capture-on logs (warm-up included): {logged}")
    return {
        "rounds": rounds,
        "seconds": seconds,
        "rps": rps,
        "ratio": ratio,
        "cpu_us_per_request": cpu,
        "cpu_ratio": cpu_on / cpu_off,
        "errors": errors,
        "logged": logged,
    }


def main(argv: list[str]) -> None:
    if "--app" in argv:
        i = argv.index("--app")
        serve_app(argv[i + 1], int(argv[i + 2]))
        return
    quick = "--quick" in argv
    report: dict[str, Any] = {"quick": quick, "micro_us_per_request": micro(quick)}
    if "--serving" in argv:
        report["serving"] = serving(quick)
    output = Path("bench/results/capture.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {output}")


if __name__ == "__main__":
    main(sys.argv[1:])
