"""vigil's app alone, no HTTP server: ``python -m bench.serving.inprocess [options]``.

Drives the benchmark's vigil app (``bench.serving.apps.vigil_app``: the same model and
single-row native request, capture on unless ``--no-capture``, metrics on unless
``--no-metrics``) through its ASGI interface on uvloop, ``--concurrency`` requests per
loop tick, and prints the CPU time of the loop's thread per request (the fastest of
``--repeats`` runs: noise only adds). Under callgrind it counts instructions instead, which
no other load on the machine changes::

    VIGIL_SERVE_INLINE_MAX_MS=1000 valgrind --tool=callgrind --instr-atstart=no \\
        python -m bench.serving.inprocess --callgrind --requests 640

(``--callgrind`` switches instrumentation on for the timed requests only, after a warm-up;
divide the ``totals:`` line of the output file by ``--requests``. The inline budget keeps
the model on the event loop, where wall times under valgrind would send it to its thread.)

``--gc`` also counts the garbage collector's passes during the timed runs (by generation,
per 1,000 requests) and their pauses, through :data:`gc.callbacks`: whether collections
are frequent or long enough to make a served request's tail.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.serving.apps import FEATURES, logistic, vigil_app
from bench.serving.runner import one_row

PATH = "/v1/models/model/predict"


Request = Callable[[], Awaitable[None]]


async def start(app: Any) -> asyncio.Future[Any]:
    """Run ``app``'s lifespan startup (models loaded); the lifespan task, to cancel."""
    started = asyncio.Event()

    async def lifespan_receive() -> dict[str, str]:
        if not started.is_set():
            started.set()
            return {"type": "lifespan.startup"}
        await asyncio.Event().wait()  # no shutdown: the process ends
        raise AssertionError

    async def lifespan_send(message: dict[str, Any]) -> None:
        pass

    lifespan = asyncio.ensure_future(app({"type": "lifespan"}, lifespan_receive, lifespan_send))
    while not app.dataplane.ready:
        await asyncio.sleep(0.01)
    return lifespan


def requester(app: Any, path: str = PATH, extra: dict[str, str] | None = None) -> Request:
    """One single-row native request to ``path`` through ``app``'s ASGI interface, checked
    for a 200."""
    body = json.dumps({"instances": [dict(zip(FEATURES, one_row().tolist(), strict=True))]})
    raw = body.encode()
    headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(raw)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in (extra or {}).items()),
    ]
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def one() -> None:
        answered: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            answered.append(message)

        await app(dict(scope), receive, send)
        if answered[0]["status"] != 200:
            raise SystemExit(f"the app answered {answered[0]['status']}: {answered[1]}")

    return one


async def ticks(one: Request, requests: int, concurrency: int) -> None:
    """``requests`` requests, ``concurrency`` of them per loop tick."""
    for _ in range(max(1, requests // concurrency)):
        await asyncio.gather(*(one() for _ in range(concurrency)))


async def cpu_us(one: Request, requests: int, concurrency: int) -> float:
    """CPU time of the loop's thread per request over ``requests`` requests."""
    cpu = time.thread_time()
    await ticks(one, requests, concurrency)
    return (time.thread_time() - cpu) / requests * 1e6


class GcPauses:
    """The collector's passes from now on, by generation, timed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._began = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._began)

    def report(self, requests: int) -> None:
        gc.callbacks.remove(self._callback)
        for generation, pauses in self.pauses.items():
            if not pauses:
                print(f"gc generation {generation}: no pass")
                continue
            pauses.sort()
            print(
                f"gc generation {generation}: {len(pauses) / requests * 1000:.2f} passes per "
                f"1,000 requests, pause median {pauses[len(pauses) // 2] * 1e6:.0f} µs, "
                f"max {pauses[-1] * 1e6:.0f} µs, {sum(pauses) / requests * 1e6:.2f} µs "
                "per request"
            )


async def drive(app: Any, args: argparse.Namespace) -> None:
    lifespan = await start(app)
    one = requester(app)
    await ticks(one, 10 * args.requests, args.concurrency)  # warm-up: batcher calibrated
    if args.callgrind:
        pid = str(os.getpid())
        subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
        await ticks(one, args.requests, args.concurrency)
        subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
    else:
        pauses = GcPauses() if args.gc else None
        runs = [await cpu_us(one, args.requests, args.concurrency) for _ in range(args.repeats)]
        print(f"{min(runs):.1f} µs CPU per request (fastest of {args.repeats} runs)")
        if pauses is not None:
            pauses.report(args.requests * args.repeats)
    stats = app.dataplane.models()[0].batcher.stats
    print(f"model calls: {stats.batches}, on the event loop: {stats.inline_batches}")
    lifespan.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serving.inprocess")
    parser.add_argument("--requests", type=int, default=2000, help="requests per run")
    parser.add_argument("--concurrency", type=int, default=32, help="requests per loop tick")
    parser.add_argument("--repeats", type=int, default=10, help="runs (the fastest counts)")
    parser.add_argument("--no-capture", action="store_true")
    parser.add_argument("--no-metrics", action="store_true")
    parser.add_argument("--callgrind", action="store_true", help="see the module docstring")
    parser.add_argument("--gc", action="store_true", help="count the collector's passes")
    args = parser.parse_args()
    import uvloop

    with tempfile.TemporaryDirectory() as home:
        app = vigil_app(
            logistic(),
            metrics=not args.no_metrics,
            capture_home=None if args.no_capture else Path(home),
        )
        uvloop.run(drive(app, args))


if __name__ == "__main__":
    main()
