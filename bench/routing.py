"""Routing overhead: a split endpoint against the direct model route, on the same server.

One registry-backed vigil server (one worker, pinned to CPU 0) serves logistic-regression
versions 1 and 2 of ``model`` and two 50/50 split endpoints: ``split-same`` (both variants
on version 1) and ``split`` (versions 1 and 2). wrk (pinned to CPU 1, 32 connections)
drives, one after the other:

* ``direct``: ``POST /v1/models/model/predict``;
* ``endpoint-random``: ``split-same`` without a unit id (a random draw per request);
* ``endpoint-sticky``: ``split-same`` with an ``X-Unit-Id`` header (a BLAKE2b hash, then
  the point the router remembers for that unit);
* ``endpoint-two-models``: ``split``, an A/B test as it runs.

``--inprocess`` also times ``endpoint-sticky-many``: a new unit id on every request, out of
100,000, so every request is hashed (the sticky route's worst case), and ``direct-many``:
the direct route driven by that same request (a new header list and unit id each time,
which the direct route ignores), its fair baseline: the driver's own cost of building a
new request is then on both sides.

The first two give the cost of routing itself (the goal: under 10 % of throughput). The
last adds what serving two models costs at this load: each micro-batcher gets half the
rows, so the models are called twice as often with batches half as large.

Capture and metrics are on, as ``vigil serve`` runs (issue 14's goal: routing costs under
5 % of the direct route's throughput, with or without a unit id); ``--no-capture`` turns
capture off on both routes, which isolates what routing adds (variant choice, counters,
the extra response fields) against a cheaper direct route: a stricter ratio.

The routes are measured in rounds, each starting one route later than the one before.
Throughput is compared two ways: each route's best point over the direct route's best
(``*_throughput_ratio``), and each round's point over the same round's direct point, the
median over rounds (``*_paired_ratio_median``): the goal is judged on the latter, which a
single disturbed point (another job, a compaction pass sharing the server's core) cannot
move much.

Run: ``python -m bench.routing [--quick] [--rounds N] [--no-capture]``; writes
``bench/results/routing.json``. Instructions per request of each route, in process (the
CPU times above are noise on a loaded machine; these are not)::

    VIGIL_SERVE_INLINE_MAX_MS=1000 valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file=routing.cg python -m bench.routing --inprocess --callgrind \
        --requests 640

writes one dump per route, ``routing.cg.1`` to ``.6`` in the order of :data:`ROUTES`:
divide each ``totals:`` by ``--requests``. The whole server's (uvicorn, httptools, uvloop and
the app, driven by wrk; see :func:`served_callgrind`)::

    python -m bench.routing --served-callgrind OUT --seconds 20
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bench.serving.apps import FEATURES, training_data
from bench.serving.runner import (
    CLIENT_CPU,
    SERVER_CPU,
    Result,
    Server,
    cpu_seconds,
    one_row,
    parse_wrk,
    requests_done,
    run_wrk,
    wrk_path,
)
from vigil.serving.server import free_port

CONNECTIONS = 32
ROUTES = (
    "direct",
    "endpoint-random",
    "endpoint-sticky",
    "endpoint-sticky-many",
    "direct-many",
    "endpoint-two-models",
)
"""The routes ``--inprocess`` times, in order."""
SAME = "split-same"
"""Both variants on version 1: the cost of routing alone (one batcher, as the direct route)."""
TWO = "split"
"""Variants on versions 1 and 2: an A/B test as run, where each model batches half the rows."""


def prepare(home: Path) -> None:
    """Register two versions of the model and the split endpoint under ``home``."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from vigil.app import Vigil
    from vigil.experiments.config import parse_endpoint
    from vigil.experiments.store import EndpointStore
    from vigil.settings import load_settings

    vigil = Vigil(load_settings(home=home))
    X, y = training_data()
    frame = pd.DataFrame(X, columns=FEATURES).assign(target=y)
    for c, alias in ((1.0, "production"), (0.1, None)):
        model = LogisticRegression(C=c, max_iter=1000).fit(X, y)
        vigil.register(model, name="model", reference=frame, target="target", alias=alias)
    for name, second in ((SAME, "models:/model/1"), (TWO, "models:/model/2")):
        EndpointStore(vigil).create(
            parse_endpoint(
                {
                    "name": name,
                    "variants": [
                        {"name": "a", "model": "models:/model@production"},
                        {"name": "b", "model": second},
                    ],
                    "policy": {"kind": "split", "weights": {"a": 1, "b": 1}},
                }
            ),
            actor="bench",
        )
    vigil.database.dispose()


def serve(port: int, capture: bool = True, quiet: bool = False) -> None:
    """The server process: every registered model and endpoint of ``VIGIL_HOME``, capturing
    into its inference log unless ``capture`` is off. ``quiet``: the registry and endpoint
    pollers and the counters' flush run hourly instead of every second or half (under
    callgrind, where their timer-driven work would otherwise be a large and varying share
    of each request's instructions)."""
    from vigil.app import Vigil
    from vigil.serving.registry_provider import RegistryProvider
    from vigil.serving.server import run

    os.environ.setdefault("VIGIL_SERVE_GC_FREEZE", "true")  # as `vigil serve` sets it
    vigil = Vigil()
    options: dict[str, Any] = {} if capture else {"capture": None}
    if quiet:
        provider = RegistryProvider(vigil, poll_interval=3600.0)
        options["endpoints"] = vigil.endpoint_router(
            provider, poll_interval=3600.0, flush_interval=3600.0
        )
    else:
        provider = RegistryProvider(vigil)
    run(vigil.serving_app(provider, **options), "127.0.0.1", port)


class RoutingServer(Server):
    """:class:`bench.serving.runner.Server`, running :func:`serve` over ``home``."""

    def __init__(self, home: Path, capture: bool = True) -> None:
        self.port = free_port()
        self.grpc_port = None  # HTTP only (the runner's readiness probe asks)
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            # The caller's PYTHONPATH after the repository's: a worktree's src is served.
            "PYTHONPATH": os.pathsep.join(
                p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p
            ),
            "VIGIL_HOME": str(home),
            # The in-server monitor's first cycle (30 s after start) would judge the run's
            # own traffic, hundreds of thousands of rows in 1,000-row windows, in a thread
            # on the server's one core in the middle of some points, and hold the server's
            # exit past the runner's 30 s. Monitoring's cost is measured by
            # bench.monitor_scale.
            "VIGIL_MONITOR_ENABLED": "false",
        }
        command = ["taskset", "-c", SERVER_CPU, sys.executable, "-m", "bench.routing"]
        extra = [] if capture else ["--no-capture"]
        self.process = subprocess.Popen([*command, "serve", str(self.port), *extra], env=env)


def _script(path: str, body: bytes, headers: dict[str, str]) -> str:
    handle, name = tempfile.mkstemp(suffix=".lua")
    with os.fdopen(handle, "w") as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.path = {json.dumps(path)}\n"
            f"wrk.body = {json.dumps(body.decode())}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        for key, value in headers.items():
            script.write(f"wrk.headers[{json.dumps(key)}] = {json.dumps(value)}\n")
    return name


def _measure(
    name: str,
    server: Server,
    path: str,
    body: bytes,
    seconds: float,
    warmup: float,
    headers: dict[str, str] | None = None,
) -> Result:
    script = _script(path, body, headers or {})
    try:
        run_wrk(server.url, script, CONNECTIONS, warmup)
        cpu = cpu_seconds(server.process.pid)
        output = run_wrk(server.url, script, CONNECTIONS, seconds)
        cpu_us = (cpu_seconds(server.process.pid) - cpu) / requests_done(output) * 1e6
        rps, p50, p99, errors = parse_wrk(output)
    finally:
        Path(script).unlink()
    print(
        f"  {name:<20} c={CONNECTIONS:<4} {rps:>9.0f} req/s  p50 {p50:7.2f} ms  "
        f"p99 {p99:7.2f} ms  errors {errors}  server CPU {cpu_us:6.1f} µs/request",
        flush=True,
    )
    return Result(name, CONNECTIONS, rps, p50, p99, errors, cpu_us)


def main(
    quick: bool = False,
    output: Path = Path("bench/results/routing.json"),
    rounds: int | None = None,
    capture: bool = True,
    seconds: float | None = None,
) -> dict[str, Any]:
    wrk_path()
    seconds, warmup = (3.0, 1.0) if quick else (seconds or 10.0, 3.0)
    row = dict(zip(FEATURES, one_row().tolist(), strict=True))
    body = json.dumps({"instances": [row]}).encode()
    print(
        f"routing benchmark ({seconds:.0f} s per point, {CONNECTIONS} connections, capture "
        f"{'on' if capture else 'off'}; server on CPU {SERVER_CPU}, wrk on CPU {CLIENT_CPU})",
        flush=True,
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="vigil-bench-routing-") as tmp:
        home = Path(tmp) / "home"
        prepare(home)
        with RoutingServer(home, capture) as server:
            rounds = rounds or (1 if quick else 3)
            same, two = f"/v1/endpoints/{SAME}/predict", f"/v1/endpoints/{TWO}/predict"
            unit = {"X-Unit-Id": "user-42"}
            points: list[tuple[str, str, dict[str, str] | None]] = [
                ("direct", "/v1/models/model/predict", None),
                ("endpoint-random", same, None),
                ("endpoint-sticky", same, unit),
                ("endpoint-two-models", two, None),
            ]
            # Interleaved, so a slow spell hurts every route alike, and each round starts
            # one route later, so none is always measured first (or right after another).
            for i in range(rounds):
                turn = points[i % len(points) :] + points[: i % len(points)]
                results += [
                    _measure(name, server, path, body, seconds, warmup, headers)
                    for name, path, headers in turn
                ]
    best: dict[str, Result] = {}
    for r in results:
        if r.app not in best or r.requests_per_second > best[r.app].requests_per_second:
            best[r.app] = r
    direct = best["direct"].requests_per_second
    endpoints = ("endpoint-random", "endpoint-sticky", "endpoint-two-models")
    ratios = {
        f"{name}_throughput_ratio": best[name].requests_per_second / direct for name in endpoints
    }
    # Each round's endpoint point over the same round's direct point (measured minutes
    # apart at most), then the median over rounds: a disturbed point moves one ratio, not
    # the figure, where the best-of ratios above hang on each route's single best point.
    size = len(endpoints) + 1
    per_round = [results[i : i + size] for i in range(0, len(results), size)]
    paired = {
        name: statistics.median(
            next(r for r in turn if r.app == name).requests_per_second
            / next(r for r in turn if r.app == "direct").requests_per_second
            for turn in per_round
        )
        for name in endpoints
    }
    routing = ("endpoint-random", "endpoint-sticky")
    goals: dict[str, float | bool] = {
        **ratios,
        **{f"{name}_paired_ratio_median": value for name, value in paired.items()},
        "routing_throughput_cost": 1 - min(paired[n] for n in routing),
        "p99_ms_direct": best["direct"].p99_ms,
        "p99_ms_endpoint": max(best[n].p99_ms for n in routing),
        "p99_ms_endpoint_two_models": best["endpoint-two-models"].p99_ms,
    }
    goals["under_5_percent"] = goals["routing_throughput_cost"] < 0.05
    cpu = {
        name: statistics.median(r.cpu_us_per_request or math.nan for r in results if r.app == name)
        for name in best
    }
    for name in ("endpoint-random", "endpoint-sticky", "endpoint-two-models"):
        goals[f"{name}_cpu_cost"] = cpu[name] / cpu["direct"] - 1
    report = {
        "quick": quick,
        "capture": capture,
        "seconds_per_point": seconds,
        "connections": CONNECTIONS,
        "results": [asdict(r) for r in results],
        "goals": goals,
        "cpu_us_per_request_median": cpu,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print()
    for key, value in goals.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"written to {output}")
    return report


def _many_units(app: Any, path: str, units: int) -> Any:
    """``bench.serving.inprocess.requester``'s single-row request with a new ``X-Unit-Id``
    on every request, cycling through ``units`` ids: more than the router remembers, so
    every unit is hashed (the sticky route's worst case)."""
    row = dict(zip(FEATURES, one_row().tolist(), strict=True))
    raw = json.dumps({"instances": [row]}).encode()
    headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(raw)).encode()),
    ]
    ids = itertools.cycle([(b"x-unit-id", f"user-{i}".encode()) for i in range(units)])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def one() -> None:
        answered: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            answered.append(message)

        scope = {"type": "http", "method": "POST", "path": path, "headers": [*headers, next(ids)]}
        await app(scope, receive, send)
        if answered[0]["status"] != 200:
            raise SystemExit(f"the app answered {answered[0]['status']}: {answered[1]}")

    return one


def inprocess(
    rounds: int = 5, requests: int = 3200, capture: bool = True, callgrind: bool = False
) -> dict[str, Any]:
    """The CPU time per request of each route through vigil's app alone (no HTTP server,
    no load generator: ``bench.serving.inprocess``'s driver, 32 requests per loop tick),
    interleaved, fastest of ``rounds``. The thread's CPU time, unlike throughput, hardly
    moves with other load on the machine; leaving out the HTTP server (~22 µs per request,
    the same on every route) makes routing's share larger than served: a stricter ratio."""
    import uvloop

    from bench.serving.inprocess import cpu_us, requester, start, ticks
    from vigil.app import Vigil
    from vigil.serving.registry_provider import RegistryProvider
    from vigil.settings import load_settings

    async def run(home: Path) -> dict[str, float]:
        vigil = Vigil(load_settings(home=home))
        app = vigil.serving_app(RegistryProvider(vigil), **({} if capture else {"capture": None}))
        lifespan = await start(app)
        same, two = f"/v1/endpoints/{SAME}/predict", f"/v1/endpoints/{TWO}/predict"
        routes = {  # in the order of ROUTES
            "direct": requester(app),
            "endpoint-random": requester(app, same),
            "endpoint-sticky": requester(app, same, {"X-Unit-Id": "user-42"}),
            "endpoint-sticky-many": _many_units(app, same, 100_000),
            "direct-many": _many_units(app, "/v1/models/model/predict", 100_000),
            "endpoint-two-models": requester(app, two),
        }
        assert tuple(routes) == ROUTES
        for one in routes.values():
            await ticks(one, 10 * requests, CONNECTIONS)  # warm-up: batchers calibrated
        if callgrind:
            # Under valgrind: each route's instructions over `requests` requests, one
            # dump per route (callgrind_control -d), in the order of `routes`.
            pid = str(os.getpid())
            for one in routes.values():
                control = ["callgrind_control"]
                subprocess.run([*control, "-i", "on", pid], check=True, capture_output=True)
                await ticks(one, requests, CONNECTIONS)
                subprocess.run([*control, "-i", "off", pid], check=True, capture_output=True)
                subprocess.run([*control, "-d", pid], check=True, capture_output=True)
            lifespan.cancel()
            return {}
        runs: dict[str, list[float]] = {name: [] for name in routes}
        for _ in range(rounds):
            for name, one in routes.items():
                runs[name].append(await cpu_us(one, requests, CONNECTIONS))
        lifespan.cancel()
        return {name: min(values) for name, values in runs.items()}

    with tempfile.TemporaryDirectory(prefix="vigil-bench-routing-") as tmp:
        home = Path(tmp) / "home"
        prepare(home)
        cpu = uvloop.run(run(home))
    if callgrind:
        print(f"routes dumped in this order: {', '.join(ROUTES)}")
        return cpu
    print(f"app alone, capture {'on' if capture else 'off'}: CPU per request, fastest of {rounds}")
    for name, value in cpu.items():
        print(f"  {name:<20} {value:6.1f} µs  ({value / cpu['direct'] - 1:+.1%})")
    many = cpu["endpoint-sticky-many"] / cpu["direct-many"] - 1
    print(f"  endpoint-sticky-many over direct-many (the same request shape): {many:+.1%}")
    return cpu


SERVED = ("direct", "endpoint-random", "endpoint-sticky", "endpoint-sticky-many", "direct-many")
"""The routes ``--served-callgrind`` counts, in order (one dump each)."""
_COUNTED = "cb_on_message_complete"
"""httptools' callback for a request's last byte: called once per request the server parsed."""


def _many_script(path: str, body: bytes, units: int) -> str:
    """A wrk script that POSTs ``body`` with a new ``X-Unit-Id`` on every request, cycling
    through ``units`` ids (more than the router remembers: every unit is hashed)."""
    handle, name = tempfile.mkstemp(suffix=".lua")
    with os.fdopen(handle, "w") as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.path = {json.dumps(path)}\n"
            f"wrk.body = {json.dumps(body.decode())}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            "local i = 0\n"
            "request = function()\n"
            f"  i = (i + 1) % {units}\n"
            '  wrk.headers["X-Unit-Id"] = "user-" .. i\n'
            "  return wrk.format()\n"
            "end\n"
        )
    return name


def _callgrind_dump(path: Path) -> dict[str, int]:
    """One callgrind dump (one thread's): its instructions (``totals:``), the requests it
    parsed (calls of :data:`_COUNTED`), the instructions of the garbage collector's passes
    (inclusive: whether a pass falls in the window is luck) and the model calls (NumPy's
    ``DOUBLE_matmul``: one per batch of the linear model)."""
    names: dict[str, str] = {}
    found = {"instructions": 0, "requests": 0, "gc": 0, "model_calls": 0}
    callee = ""
    cost_next = False
    for line in path.read_text(errors="replace").splitlines():
        if cost_next:  # the line after calls=: position and inclusive cost of the call
            if callee == "gc_collect_main":
                found["gc"] += int(line.split()[-1])
            cost_next = False
        elif line.startswith("totals:"):
            found["instructions"] = int(line.split()[1])
        elif line.startswith(("fn=(", "cfn=(")):
            ident, _, name = line.partition("=")[2].partition(")")
            if name.strip():
                names[ident] = name.strip()
            callee = names.get(ident, "") if line.startswith("cfn=") else ""
        elif callee and line.startswith("calls="):
            count = int(line[6:].split()[0])
            if callee.endswith(_COUNTED):
                found["requests"] += count
            elif callee == "DOUBLE_matmul":
                found["model_calls"] += count
            cost_next = True
    return found


def served_callgrind(seconds: float, warmup: float, output: Path) -> dict[str, Any]:
    """User-space instructions per request of the whole server (uvicorn, httptools, uvloop,
    vigil's app) on each route of :data:`SERVED`: the benchmark server under ``valgrind
    --tool=callgrind --instr-atstart=no`` (the model kept on the event loop), driven by wrk at
    32 connections. Per route: ``warmup`` seconds uncounted, then instrumentation on, wrk for
    ``seconds``, a pause for requests still in flight, instrumentation off and a dump; the
    requests are counted by the server's own parser callbacks, so none is cut at a boundary.
    Counted per request: the event loop's thread (every request's work), net of the
    collector's passes and of what the loop does on its own in the window's time (dump 1: a
    window without requests); and every thread (the others run the SQL of pollers and
    counter flushes, on timers: under valgrind a request is ~50x slower, so their share
    per request is ~50x what it is at full speed). Dumps go to ``output``.N-T (N: 1 idle,
    then the routes in the order of :data:`SERVED`; T: thread)."""
    wrk_path()
    row = dict(zip(FEATURES, one_row().tolist(), strict=True))
    body = json.dumps({"instances": [row]}).encode()
    same, direct = f"/v1/endpoints/{SAME}/predict", "/v1/models/model/predict"
    scripts = {
        "direct": _script(direct, body, {}),
        "endpoint-random": _script(same, body, {}),
        "endpoint-sticky": _script(same, body, {"X-Unit-Id": "user-42"}),
        "endpoint-sticky-many": _many_script(same, body, 100_000),
        "direct-many": _many_script(direct, body, 100_000),
    }
    assert tuple(scripts) == SERVED
    counts: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="vigil-bench-routing-") as tmp:
        home = Path(tmp) / "home"
        prepare(home)
        port = free_port()
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(
                p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p
            ),
            "VIGIL_HOME": str(home),
            "VIGIL_MONITOR_ENABLED": "false",
            "VIGIL_SERVE_INLINE_MAX_MS": "1000",  # valgrind's wall times: keep the model inline
        }
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes"]
        command = [
            *("taskset", "-c", SERVER_CPU, *valgrind, f"--callgrind-out-file={output}"),
            *(sys.executable, "-m", "bench.routing", "serve", str(port), "--quiet-timers"),
        ]
        process = subprocess.Popen(command, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 900
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server under valgrind did not start")
                try:
                    if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(1)
            pid = str(process.pid)

            def window(
                number: int, work: Callable[[], object]
            ) -> tuple[list[dict[str, int]], float]:
                subprocess.run(["callgrind_control", "-i", "on", pid], check=True)
                started = time.monotonic()
                work()
                time.sleep(2)  # the requests wrk left in flight finish inside the window
                subprocess.run(["callgrind_control", "-i", "off", pid], check=True)
                elapsed = time.monotonic() - started
                subprocess.run(["callgrind_control", "-d", pid], check=True)
                dumps = sorted(Path(output).parent.glob(f"{Path(output).name}.{number}-*"))
                return [_callgrind_dump(dump) for dump in dumps], elapsed

            # Dump 1: no requests, to know what the event loop does per second on its own
            # (pollers, timers): under valgrind a request takes ~50x longer, so that work's
            # share per request is ~50x what it is at full speed, and differs between
            # windows with the throughput the loaded machine allows.
            idle, elapsed = window(1, lambda: time.sleep(seconds))
            idle_rate = (idle[0]["instructions"] - idle[0]["gc"]) / elapsed
            print(f"  idle event loop: {idle_rate:,.0f} instructions per second", flush=True)
            for number, (name, script) in enumerate(scripts.items(), start=2):
                run_wrk(url, script, CONNECTIONS, warmup)
                time.sleep(1)
                threads, elapsed = window(
                    number, functools.partial(run_wrk, url, script, CONNECTIONS, seconds)
                )
                loop = threads[0]  # thread 1: the event loop's
                requests = loop["requests"]
                own = loop["instructions"] - loop["gc"] - idle_rate * elapsed
                every = sum(t["instructions"] - t["gc"] for t in threads)
                counts[name] = {"loop": own, "all": every, **loop}
                print(
                    f"  {name:<22} {requests:>6} requests in {elapsed:.1f} s, "
                    f"{requests / max(1, loop['model_calls']):4.1f} per model call; per "
                    f"request: {own / requests:>9,.0f} (event loop, net of GC "
                    f"{loop['gc'] / requests:,.0f} and idle {idle_rate * elapsed / requests:,.0f})"
                    f", {every / requests:>9,.0f} (all threads)",
                    flush=True,
                )
        finally:
            process.terminate()
            process.wait(timeout=120)
            for script in scripts.values():
                Path(script).unlink()
    per = {
        part: {name: c[part] / c["requests"] for name, c in counts.items()}
        for part in ("loop", "all")
    }
    for part, values in per.items():
        print(f"{'the event loop' if part == 'loop' else 'all threads'}:")
        for name, value in values.items():
            print(f"  {name:<22} {value:>10,.0f}  ({value / values['direct'] - 1:+.1%})")
        many = values["endpoint-sticky-many"] / values["direct-many"] - 1
        print(f"  endpoint-sticky-many over direct-many (the same request shape): {many:+.1%}")
    return per


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.routing")
    sub = parser.add_subparsers(dest="command")
    serve_parser = sub.add_parser("serve", help="(internal) the server process")
    serve_parser.add_argument("port", type=int)
    serve_parser.add_argument("--no-capture", action="store_true")
    serve_parser.add_argument("--quiet-timers", action="store_true")
    parser.add_argument("--quick", action="store_true", help="3 s per point instead of 10 s")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (3)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per point (10)")
    parser.add_argument("--no-capture", action="store_true", help="capture off on both routes")
    parser.add_argument(
        "--inprocess", action="store_true", help="CPU per request of vigil's app alone"
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="with --inprocess, under valgrind --tool=callgrind --instr-atstart=no: "
        "instructions of --requests requests per route, one dump per route",
    )
    parser.add_argument("--requests", type=int, default=3200, help="--inprocess: per point")
    parser.add_argument(
        "--served-callgrind",
        type=Path,
        metavar="OUT",
        help="instructions per request of the whole server under callgrind, dumps to OUT.N",
    )
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port, capture=not args.no_capture, quiet=args.quiet_timers)
    elif args.served_callgrind:
        served_callgrind(args.seconds or 20.0, 10.0, args.served_callgrind)
    elif args.inprocess:
        inprocess(
            rounds=args.rounds or 5,
            requests=args.requests,
            capture=not args.no_capture,
            callgrind=args.callgrind,
        )
    else:
        main(
            quick=args.quick,
            rounds=args.rounds,
            capture=not args.no_capture,
            seconds=args.seconds,
        )
