"""Drive the servers with wrk (HTTP/1.1) or h2load (gRPC over HTTP/2), pinned to separate
cores, and collect req/s, p50 and p99."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np

from bench.serving.apps import FEATURES
from vigil.serving.server import free_port

SERVER_CPU = "0"
CLIENT_CPU = "1"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class Result:
    app: str
    connections: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_request: float | None = None
    """The server's CPU time (user + system) per answered request: steadier than req/s
    on a shared machine, where the server's core is not always all its own."""


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: run `apt-get install -y wrk` (Debian package)")
    return path


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if match is None:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_done(output: str) -> int:
    """How many requests a wrk run completed."""
    return int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]


def parse_wrk(output: str) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, non-2xx + socket errors) from ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _duration_ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _duration_ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", output)) + sum(
        int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output)
    )
    return rps, p50, p99, errors


def lua_string(data: bytes) -> str:
    """A Lua string literal of any bytes (raw tensor data too): printable ASCII as is,
    every other byte as a 3-digit decimal escape.

    >>> lua_string(b'a"\\x00\\xff1')
    '"a\\\\034\\\\000\\\\2551"'
    """
    plain = set(range(0x20, 0x7F)) - {ord('"'), ord("\\")}
    return '"' + "".join(chr(b) if b in plain else f"\\{b:03d}" for b in data) + '"'


def lua_script(path: str, body: bytes, headers: dict[str, str] | None = None) -> str:
    """A wrk script that POSTs ``body`` (JSON unless ``headers`` say otherwise)."""
    handle, name = tempfile.mkstemp(suffix=".lua")
    sent = {"Content-Type": "application/json", **(headers or {})}
    with os.fdopen(handle, "w") as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.path = {json.dumps(path)}\n"
            f"wrk.body = {lua_string(body)}\n"
            + "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in sent.items())
        )
    return name


class Server:
    """One app in a subprocess pinned to the server core (``grpc``: also on a gRPC port)."""

    def __init__(
        self,
        kind: str,
        *extra: str,
        grpc: bool = False,
        src: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_port = free_port() if grpc else None
        if self.grpc_port is not None:
            extra = (*extra, "--grpc-port", str(self.grpc_port))
        command = ["taskset", "-c", SERVER_CPU, sys.executable, "-m", "bench.serving.apps"]
        # The caller's PYTHONPATH kept after the repository's: a worktree's src is served.
        path = os.pathsep.join(p for p in (os.getcwd(), src, os.environ.get("PYTHONPATH")) if p)
        environ = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, **(env or {})}
        self.process = subprocess.Popen([*command, kind, str(self.port), *extra], env=environ)

    def _ready(self) -> bool:
        if self.grpc_port is None:
            try:
                # vigil answers 503 until its models are loaded; the other apps have no
                # /readyz (404), and answering at all means they are up.
                return httpx.get(self.url + "/readyz", timeout=1).status_code != 503
            except httpx.HTTPError:
                return False
        return grpc_infer_ok(f"127.0.0.1:{self.grpc_port}", probe=True)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the benchmark server exited with {self.process.returncode}")
            if self._ready():
                return self
            time.sleep(0.2)
        raise SystemExit("the benchmark server did not start in 120 s")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def lua_varying_script(path: str, body: bytes, marker: bytes) -> str:
    """A wrk script that POSTs ``body`` with ``marker`` replaced by a number that differs
    on every request, and from any earlier run's (it starts at the clock's microseconds):
    each request is a prediction cache miss."""
    before, _, after = body.partition(marker)
    handle, name = tempfile.mkstemp(suffix=".lua")
    with os.fdopen(handle, "w") as script:
        script.write(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            "local counter = os.time() * 1000000\n"
            "request = function()\n"
            "  counter = counter + 1\n"
            f"  local body = {lua_string(before)} .. string.format('%d', counter) .. "
            f"{lua_string(after)}\n"
            f"  return wrk.format(nil, {json.dumps(path)}, nil, body)\n"
            "end\n"
        )
    return name


class _Discard(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class OtlpSink:
    """An OTLP/HTTP receiver that reads every export and drops it, on the client's core:
    what the traced server pays is building, batching and sending its spans."""

    def __enter__(self) -> OtlpSink:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        with contextlib.suppress(AttributeError, OSError):  # Linux: off the server's core
            os.sched_setaffinity(self.thread.native_id or 0, {int(CLIENT_CPU)})
        return self

    @property
    def env(self) -> dict[str, str]:
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.server.server_port}"}

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_wrk(url: str, script: str, connections: int, seconds: float) -> str:
    command = [
        "taskset",
        "-c",
        CLIENT_CPU,
        wrk_path(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        script,
        url,
    ]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def measure(
    name: str,
    server: Server,
    path: str,
    body: bytes,
    connections: list[int],
    seconds: float,
    warmup: float,
    headers: dict[str, str] | None = None,
    vary: bytes | None = None,
) -> list[Result]:
    """``vary``: a marker in ``body`` replaced by a new number on every request."""
    script = (
        lua_script(path, body, headers) if vary is None else lua_varying_script(path, body, vary)
    )
    try:
        run_wrk(server.url, script, max(connections), warmup)
        results = []
        for count in connections:
            cpu = cpu_seconds(server.process.pid)
            output = run_wrk(server.url, script, count, seconds)
            cpu_us = (cpu_seconds(server.process.pid) - cpu) / requests_done(output) * 1e6
            rps, p50, p99, errors = parse_wrk(output)
            results.append(Result(name, count, rps, p50, p99, errors, cpu_us))
            print(
                f"  {name:<22} c={count:<4} {rps:>9.0f} req/s  p50 {p50:7.2f} ms  "
                f"p99 {p99:7.2f} ms  errors {errors}  server CPU {cpu_us:6.1f} µs/request",
                flush=True,
            )
        return results
    finally:
        Path(script).unlink()


def h2load_path() -> str:
    path = shutil.which("h2load")
    if path is None:
        raise SystemExit(
            "h2load is not installed: run `apt-get install -y nghttp2-client` (Debian package)"
        )
    return path


GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"


def grpc_request(row: list[float]) -> bytes:
    """One-row ``ModelInferRequest`` (raw FP64 ``[1, F]``, output ``predict``), serialized."""
    from vigil.serving.grpc import inference_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name="model")
    request.inputs.add(name="input-0", datatype="FP64", shape=[1, len(row)])
    request.outputs.add(name="predict")
    request.raw_input_contents.append(np.asarray(row, "<f8").tobytes())
    return bytes(request.SerializeToString())


def grpc_infer_ok(target: str, *, probe: bool = False) -> bool:
    """Whether ``ModelInfer`` of the benchmark's row answers OK with one prediction (h2load
    sees HTTP/2 statuses only, and gRPC answers errors with status 200: this checks)."""
    import grpc

    from vigil.serving.grpc import inference_v2_pb2 as pb

    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            GRPC_PATH,
            request_serializer=lambda body: body,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        try:
            response = call(grpc_request(one_row().tolist()), timeout=2)
        except grpc.RpcError:
            if probe:
                return False
            raise
    return len(response.outputs) == 1 and len(response.raw_output_contents) == 1


def run_h2load(target: str, body: Path, connections: int, seconds: float, log: Path) -> str:
    """h2load with one stream per connection (as wrk's one request per connection)."""
    command = [
        *("taskset", "-c", CLIENT_CPU, h2load_path()),
        *("-t1", f"-c{connections}", "-m1", f"-D{max(1, round(seconds))}"),
        *("-H", "content-type: application/grpc", "-H", "te: trailers"),
        *("-d", str(body), f"--log-file={log}"),
        f"http://{target}{GRPC_PATH}",
    ]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def measure_grpc(
    name: str, server: Server, body: bytes, connections: list[int], seconds: float, warmup: float
) -> list[Result]:
    """Like :func:`measure`, over gRPC: p50 and p99 from h2load's per-request log."""
    assert server.grpc_port is not None
    target = f"127.0.0.1:{server.grpc_port}"
    framed = b"\x00" + len(body).to_bytes(4, "big") + body  # gRPC's length-prefixed message
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "request.bin"
        path.write_bytes(framed)
        grpc_infer_ok(target)
        run_h2load(target, path, max(connections), warmup, Path(tmp) / "warmup.log")
        results = []
        for count in connections:
            log = Path(tmp) / f"requests-{count}.log"
            cpu = cpu_seconds(server.process.pid)
            output = run_h2load(target, path, count, seconds, log)
            rows = np.loadtxt(log, dtype=np.int64, ndmin=2)
            cpu_us = (cpu_seconds(server.process.pid) - cpu) / max(len(rows), 1) * 1e6
            rps = float(re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", output).group(1))  # type: ignore[union-attr]
            p50, p99 = (np.percentile(rows[:, 2], (50, 99)) / 1000.0).tolist()
            failed = re.search(r"(\d+) failed", output)
            errors = int(np.count_nonzero(rows[:, 1] != 200)) + int(
                failed.group(1) if failed else 0
            )
            grpc_infer_ok(target)  # still answering correctly after the load
            results.append(Result(name, count, rps, p50, p99, errors, cpu_us))
            print(
                f"  {name:<22} c={count:<4} {rps:>9.0f} req/s  p50 {p50:7.2f} ms  "
                f"p99 {p99:7.2f} ms  errors {errors}  server CPU {cpu_us:6.1f} µs/request",
                flush=True,
            )
        return results


def one_row() -> np.ndarray:
    return np.random.default_rng(0).normal(size=len(FEATURES))


def v2_bodies(row: np.ndarray) -> tuple[bytes, bytes, dict[str, str]]:
    """One row as Open Inference Protocol v2 requests, built by ``tritonclient.http``: JSON
    tensors both ways, and its defaults (the row as binary data, every output asked back
    as binary data) with the header that frames them."""
    import tritonclient.http as triton  # a client library: only this benchmark needs it

    X = row.reshape(1, -1)
    tensor = triton.InferInput("input-0", list(X.shape), "FP64")
    tensor.set_data_from_numpy(X, binary_data=False)
    outputs = [triton.InferRequestedOutput(n, binary_data=False) for n in V2_OUTPUTS]
    as_json, _ = triton.InferenceServerClient.generate_request_body([tensor], outputs=outputs)
    tensor.set_data_from_numpy(X)  # binary_data=True, the default
    binary, length = triton.InferenceServerClient.generate_request_body([tensor])
    framing = {"Content-Type": "application/octet-stream"}
    framing["Inference-Header-Content-Length"] = str(length)
    return as_json, binary, framing


V2_OUTPUTS = ("predict", "predict_proba")
V2_PATH = "/v2/models/model/infer"


def check_v2(url: str, body: bytes, headers: dict[str, str]) -> None:
    """Refuse to time a v2 body the server does not answer 200 with both outputs."""
    import tritonclient.http as triton  # as in v2_bodies: only this benchmark needs it

    r = httpx.post(url + V2_PATH, content=body, headers=headers, timeout=10)
    if r.status_code != 200:
        raise SystemExit(f"the v2 benchmark request failed: {r.status_code} {r.text[:200]}")
    length = r.headers.get("inference-header-content-length")
    result = triton.InferenceServerClient.parse_response_body(
        r.content, header_length=None if length is None else int(length)
    )
    if any(result.as_numpy(n) is None for n in V2_OUTPUTS):
        raise SystemExit(f"the v2 benchmark answer lacks an output: {r.content[:200]!r}")


def main(
    quick: bool = False,
    output: Path = Path("bench/results/serving.json"),
    only: set[str] | None = None,
    seconds: float | None = None,
    rounds: int = 1,
) -> dict:
    """Run every case (``only``: the cases of those names) ``rounds`` times, interleaved
    (a slow spell of the shared machine hurts every case alike), and write the report:
    each point is the median of its rounds, each ratio the median of the rounds' ratios.
    With ``VIGIL_BENCH_BEFORE_SRC`` set to another checkout's ``src``, every round also
    serves the native case from it (``vigil-before``): before and after in one run."""
    wrk_path()
    if only is None or only & {"vigil-grpc", "grpc-constant"}:
        h2load_path()
    seconds = 3.0 if quick else (seconds or 10.0)
    warmup = min(3.0, seconds / 3)
    print(
        f"serving benchmark ({seconds:.0f} s per point, {rounds} round(s); server on CPU "
        f"{SERVER_CPU}, wrk on CPU {CLIENT_CPU})",
        flush=True,
    )
    results: list[Result] = []
    per_round: list[dict[str, float | bool]] = []
    for number in range(rounds):
        if rounds > 1:
            print(f"round {number + 1} of {rounds}", flush=True)
        found = run_round(only, seconds, warmup)
        results += found
        per_round.append(goals_of(found, partial=only is not None))
    medians = [
        median_result(results, app, conns)
        for app, conns in dict.fromkeys((r.app, r.connections) for r in results)
    ]
    goals: dict[str, float | bool] = {}
    for key in per_round[0]:
        values = [g[key] for g in per_round if key in g]
        if isinstance(values[0], bool):
            goals[key] = sum(bool(v) for v in values) * 2 > len(values)
        else:
            goals[key] = statistics.median(float(v) for v in values)
    return _report(quick, seconds, medians, goals, output, rounds, results)


def median_result(results: list[Result], app: str, connections: int) -> Result:
    """One point over rounds: the median of each figure (errors summed)."""
    mine = [r for r in results if r.app == app and r.connections == connections]
    cpu = [r.cpu_us_per_request for r in mine if r.cpu_us_per_request is not None]
    return Result(
        app,
        connections,
        statistics.median(r.requests_per_second for r in mine),
        statistics.median(r.p50_ms for r in mine),
        statistics.median(r.p99_ms for r in mine),
        sum(r.errors for r in mine),
        statistics.median(cpu) if cpu else None,
    )


def run_round(only: set[str] | None, seconds: float, warmup: float) -> list[Result]:
    """Every selected case once."""
    row = one_row().tolist()
    native = json.dumps({"instances": [dict(zip(FEATURES, row, strict=True))]}).encode()
    tutorial = json.dumps({"features": row}).encode()
    conns = [1, 32, 128]
    results: list[Result] = []
    cache_cases = [
        n
        for n in ("vigil-cache-hit", "vigil-cache-miss", "slow-cache-hit")
        if only is None or n in only
    ]
    if cache_cases:
        results += run_cache_cases(cache_cases, row, conns, seconds, warmup)
    plan = [
        ("hello", "hello", "/", tutorial, ()),
        ("hello-one-write", "hello", "/", tutorial, ("--http", "vigil")),
        ("fastapi-naive", "fastapi-async", "/predict", tutorial, ()),
        ("fastapi-naive-sync", "fastapi", "/predict", tutorial, ()),
        ("vigil", "vigil", "/v1/models/model/predict", native, ()),
        ("vigil-no-metrics", "vigil-nometrics", "/v1/models/model/predict", native, ()),
        ("vigil-no-capture", "vigil-nocapture", "/v1/models/model/predict", native, ()),
        ("vigil-traced", "vigil-traced", "/v1/models/model/predict", native, ()),
        ("vigil-uvicorn-http", "vigil", "/v1/models/model/predict", native, ("--http", "uvicorn")),
        # granian's Rust HTTP server, embedded (bench only: `pip install granian`).
        ("hello-granian", "hello", "/", tutorial, ("--http", "granian")),
        ("vigil-granian", "vigil", "/v1/models/model/predict", native, ("--http", "granian")),
    ]
    before = os.environ.get("VIGIL_BENCH_BEFORE_SRC")
    if before:  # the same request served by another checkout (its src directory)
        plan.append(("vigil-before", "vigil", "/v1/models/model/predict", native, ()))
    for name, kind, path, body, extra in plan:
        if name in _NAMED_ONLY and (only is None or name not in only):
            continue  # granian is not a dependency: run only when asked for by name
        if only is None or name in only or name == "vigil-before":
            src = before if name == "vigil-before" else None
            with contextlib.ExitStack() as stack:
                env = stack.enter_context(OtlpSink()).env if kind == "vigil-traced" else None
                server = stack.enter_context(Server(kind, *extra, src=src, env=env))
                results += measure(name, server, path, body, conns, seconds, warmup)
    # The same single row through v2: JSON tensors, then tritonclient's defaults (binary).
    v2_cases = [n for n in ("vigil-v2-json", "vigil-v2-binary") if only is None or n in only]
    if v2_cases:
        v2_json, v2_binary, framing = v2_bodies(np.asarray(row))
        with Server("vigil") as server:
            for name, body, headers in (
                ("vigil-v2-json", v2_json, {}),
                ("vigil-v2-binary", v2_binary, framing),
            ):
                if name in v2_cases:
                    check_v2(server.url, body, headers)
                    results += measure(name, server, V2_PATH, body, conns, seconds, warmup, headers)
    # gRPC, driven by h2load: vigil's v2 gRPC and the ceiling, a constant grpc.aio servicer.
    grpc_body = grpc_request(row)
    for name, kind in (("vigil-grpc", "vigil-grpc"), ("grpc-constant", "grpc-constant")):
        if only is None or name in only:
            with Server(kind, grpc=True) as server:
                results += measure_grpc(name, server, grpc_body, conns, seconds, warmup)
    for name, size in (("slow-batched", "64"), ("slow-unbatched", "1")):
        if only is None or name in only:
            with Server("slow", "--max-batch-size", size) as server:
                results += measure(
                    name, server, "/v1/models/model/predict", native, [64], seconds, warmup
                )
    return results


VARY = b"__VARY__"
_NAMED_ONLY = frozenset({"hello-granian", "vigil-granian"})


def run_cache_cases(
    cases: list[str], row: list[float], conns: list[int], seconds: float, warmup: float
) -> list[Result]:
    """The native request through the prediction cache, in a Redis started for the round:
    ``vigil-cache-hit`` sends one row (every request after the first is a hit),
    ``vigil-cache-miss`` a new ``f0`` on every request (each one is looked up, predicted
    and written back); ``slow-cache-hit`` is the hit against the slow model (compare
    ``slow-batched``)."""
    from tests.servers import redis_server  # the test suite's real redis-server

    path = "/v1/models/model/predict"
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as redis:
        for name in cases:
            values = dict(zip(FEATURES, row, strict=True))
            if name == "vigil-cache-miss":
                values["f0"] = VARY.decode()
            body = json.dumps({"instances": [values]}).encode()
            body = body.replace(b'"' + VARY + b'"', VARY)
            kind = "slow" if name.startswith("slow") else "vigil-cache"
            with Server(kind, "--redis-url", redis.url()) as server:
                vary = VARY if name == "vigil-cache-miss" else None
                points = [64] if kind == "slow" else conns
                results += measure(name, server, path, body, points, seconds, warmup, vary=vary)
    return results


_RATIOS = {
    "cache_hit_vs_uncached_throughput_at_32": ("vigil-cache-hit", "vigil"),
    "cache_miss_vs_uncached_throughput_at_32": ("vigil-cache-miss", "vigil"),
    "vigil_vs_hello_throughput_at_32": ("vigil", "hello"),
    "vigil_vs_fastapi_throughput_at_32": ("vigil", "fastapi-naive"),
    "vigil_vs_fastapi_sync_throughput_at_32": ("vigil", "fastapi-naive-sync"),
    "vigil_grpc_vs_grpc_ceiling_throughput_at_32": ("vigil-grpc", "grpc-constant"),
    "vigil_grpc_vs_vigil_rest_throughput_at_32": ("vigil-grpc", "vigil"),
    "vigil_grpc_vs_v2_binary_throughput_at_32": ("vigil-grpc", "vigil-v2-binary"),
    "grpc_ceiling_vs_hello_throughput_at_32": ("grpc-constant", "hello"),
    "v2_binary_vs_json_throughput_at_32": ("vigil-v2-binary", "vigil-v2-json"),
    "v2_binary_vs_native_throughput_at_32": ("vigil-v2-binary", "vigil"),
    "vigil_no_capture_vs_vigil_throughput_at_32": ("vigil-no-capture", "vigil"),
    "vigil_traced_vs_vigil_throughput_at_32": ("vigil-traced", "vigil"),
    "vigil_vs_hello_one_write_throughput_at_32": ("vigil", "hello-one-write"),
    "vigil_vs_vigil_uvicorn_http_throughput_at_32": ("vigil", "vigil-uvicorn-http"),
    "hello_one_write_vs_hello_throughput_at_32": ("hello-one-write", "hello"),
    "vigil_granian_vs_vigil_throughput_at_32": ("vigil-granian", "vigil"),
    "hello_granian_vs_hello_throughput_at_32": ("hello-granian", "hello"),
    "vigil_before_vs_hello_throughput_at_32": ("vigil-before", "hello"),
    "vigil_vs_vigil_before_throughput_at_32": ("vigil", "vigil-before"),
}


_CPU_RATIOS = {
    "vigil_traced_vs_vigil_cpu_per_request_at_32": ("vigil-traced", "vigil"),
    "vigil_vs_vigil_before_cpu_per_request_at_32": ("vigil", "vigil-before"),
}


def goals_of(results: list[Result], *, partial: bool) -> dict[str, float | bool]:
    """The ratios one round's results give (``partial``: a run of some cases only)."""
    by = {(r.app, r.connections): r for r in results}
    goals: dict[str, float | bool] = {
        key: by[a, 32].requests_per_second / by[b, 32].requests_per_second
        for key, (a, b) in _RATIOS.items()
        if (a, 32) in by and (b, 32) in by
    }
    if ("vigil", 32) in by and ("fastapi-naive", 32) in by:
        goals["vigil_p99_below_fastapi_at_32"] = (
            by["vigil", 32].p99_ms < by["fastapi-naive", 32].p99_ms
        )
    # Server CPU per request, steadier than req/s on a shared machine: what tracing costs
    # when on, and (against the checkout named by VIGIL_BENCH_BEFORE_SRC) when off.
    for key, (a, b) in _CPU_RATIOS.items():
        if (a, 32) in by and (b, 32) in by:
            cpu_a, cpu_b = by[a, 32].cpu_us_per_request, by[b, 32].cpu_us_per_request
            if cpu_a and cpu_b:
                goals[key] = cpu_a / cpu_b
    if ("vigil", 32) in by and ("vigil-no-metrics", 32) in by:
        goals["metrics_cost_at_32"] = (
            1 - by["vigil", 32].requests_per_second / by["vigil-no-metrics", 32].requests_per_second
        )
    if ("slow-cache-hit", 64) in by and ("slow-batched", 64) in by:
        goals["slow_cache_hit_vs_slow_batched_at_64"] = (
            by["slow-cache-hit", 64].requests_per_second
            / by["slow-batched", 64].requests_per_second
        )
    if ("slow-batched", 64) in by and ("slow-unbatched", 64) in by:
        goals["batched_vs_unbatched_at_64"] = (
            by["slow-batched", 64].requests_per_second
            / by["slow-unbatched", 64].requests_per_second
        )
    if partial:
        return goals
    missing = [key for key in _RATIOS if key not in goals and "before" not in key]
    if missing:
        raise SystemExit(f"a full run lacks the ratios {missing}")
    return goals


def _report(
    quick: bool,
    seconds: float,
    results: list[Result],
    goals: dict[str, float | bool],
    output: Path,
    rounds: int = 1,
    every: list[Result] | None = None,
) -> dict:
    report = {
        "quick": quick,
        "seconds_per_point": seconds,
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "results": [asdict(r) for r in results],
        "rounds_results": [asdict(r) for r in every or results],
        "goals": goals,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(f"{'app':<20}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for r in results:
        print(
            f"{r.app:<20}{r.connections:>6}{r.requests_per_second:>10.0f}{r.p50_ms:>9.2f}"
            f"{r.p99_ms:>9.2f}"
        )
    for key, value in goals.items():
        print(f"{key}: {value:.2f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"written to {output}")
    return report
