"""Where a request's time goes: ``python -m bench.serving.profile [--seconds N]``.

Starts the benchmark's vigil server (``bench.serving.apps vigil``: capture and metrics on,
pinned to CPU 0), drives it with wrk at 32 connections (CPU 1, the single-row native
request of ``bench.serving``) and samples it with py-spy meanwhile. Every sample's stack is
put in one stage by the deepest frame that names one (see :data:`STAGES`): HTTP parsing
(uvicorn + httptools), the app's own routing and headers, JSON decoding, validation, the
handler and data plane, the micro-batcher (queueing, futures, the batch's arrays), the model
call, encoding the answer, capture, metrics, writing the response, and the event loop
itself (uvloop, task switching). Idle samples are left out, so the shares are of the
server's busy time. Needs py-spy (``pip install py-spy``; not a dependency of vigil).

``--src DIR`` serves another checkout's ``src`` (the same stages before and after a change).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.serving import runner
from bench.serving.apps import FEATURES

STAGES: list[tuple[str, str]] = [
    ("event loop (uvloop, tasks)", r"^$"),  # the default: no frame below names a stage
    ("HTTP parse (uvicorn, httptools)", r"httptools_impl\.py|vigil/serving/protocol\.py"),
    ("uvicorn ASGI cycle", r"run_asgi|RequestResponseCycle\.receive"),
    (
        "app: headers, route, body",
        r"ServingApp\.|Router\.match|Request\.__init__|serving/app\.py|vigil/serving/lane\.py",
    ),
    (
        "response write (uvicorn send; the lane's one write)",
        r"ServingApp\._send|ResponseCycle\.send|\.send \(uvicorn|HttpToolsProtocol\._answer",
    ),
    (
        "decode JSON",
        r"Request\.json|_parse \(vigil/serving/http|decode \(vigil/serving/codecs|_plain_payload",
    ),
    ("validate", r"vigil/serving/validation\.py"),
    (
        "handler, data plane",
        r"codecs/native\.py|dataplane\.py|recording\.py|codecs/__init__|request_id",
    ),
    ("batcher", r"vigil/serving/batching\.py"),
    ("model call", r"MicroBatcher\._call|_timed_call|sklearn/|ServedModel\._predict|_Adapter"),
    ("encode response", r"encode \(vigil/serving/codecs/native|dumps \(vigil/serving/http"),
    ("capture", r"_hand_to_logs|_log_answers|vigil/capture/"),
    ("metrics", r"vigil/serving/metrics\.py|prometheus_client"),
]
_COMPILED = [(name, re.compile(pattern)) for name, pattern in STAGES[1:]]
_IDLE = re.compile(r"epoll_wait|epoll_pwait|_queue_SimpleQueue_get|select\.epoll")


def stage_of(frames: list[str]) -> str:
    """The stage of one sampled stack (root first): the deepest frame that names one."""
    found = STAGES[0][0]
    for frame in frames:
        if ".py:" not in frame:
            continue
        for name, pattern in _COMPILED:
            if pattern.search(frame):
                found = name
    return found


def classify(raw: Path) -> tuple[dict[str, int], int]:
    """Busy samples per stage from py-spy's raw (collapsed) output, and the idle ones."""
    counts: collections.Counter[str] = collections.Counter()
    idle = 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        frames = stack.split(";")
        if any(_IDLE.search(f) for f in frames[-3:]):
            idle += int(number)
            continue
        counts[stage_of(frames)] += int(number)
    return dict(counts.most_common()), idle


def profile(seconds: float, src: Path | None, rate: int) -> tuple[dict[str, int], int, str]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    runner.wrk_path()
    if src is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])
    row = runner.one_row().tolist()
    body = json.dumps({"instances": [dict(zip(FEATURES, row, strict=True))]}).encode()
    script = runner.lua_script("/v1/models/model/predict", body)
    with tempfile.TemporaryDirectory() as tmp, runner.Server("vigil") as server:
        raw = Path(tmp) / "samples.txt"
        runner.run_wrk(server.url, script, 32, 3)  # warm-up
        load = subprocess.Popen(
            [
                *("taskset", "-c", runner.CLIENT_CPU, runner.wrk_path()),
                *("-t1", "-c32", f"-d{round(seconds) + 4}s", "--latency", "-s", script),
                server.url,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)
        subprocess.run(
            [
                *(py_spy, "record", "--nonblocking", "-r", str(rate), "-f", "raw"),
                *("-d", str(round(seconds)), "-p", str(server.process.pid), "-o", str(raw)),
            ],
            check=True,
            capture_output=True,
        )
        output, _ = load.communicate()
        counts, idle = classify(raw)
    Path(script).unlink()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return counts, idle, rps.group(1) if rps else "?"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serving.profile")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds sampled")
    parser.add_argument("--rate", type=int, default=500, help="samples per second")
    parser.add_argument("--src", type=Path, default=None, help="serve this src directory")
    args = parser.parse_args()
    counts, idle, rps = profile(args.seconds, args.src, args.rate)
    busy = sum(counts.values())
    print(f"32 connections, {rps} req/s under py-spy; {busy} busy samples ({idle} idle)")
    for stage, n in counts.items():
        print(f"  {stage:<34} {100 * n / busy:5.1f} %")


if __name__ == "__main__":
    main()
