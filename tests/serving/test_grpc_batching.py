"""Concurrent ``ModelInfer`` calls share model calls, as concurrent REST requests do.

``grpc.aio`` takes one incoming call from its core at a time, so concurrent calls reach
the micro-batcher a few event-loop turns apart; the batcher's usual one quiet turn closed
every batch on one call (the serving benchmark measured 1.0 row per model call under 32
connections). These tests hold the load shape that showed it: a fast client in C (h2load)
keeping one call in flight on each of many connections to one worker whose model calls
cost so little that nothing queues behind them (with the inference log on, calls also
queue behind each batch's log write and were joined that way), and the mechanism itself,
arrivals a few turns apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests._waiting import wait_for
from tests.serving.grpc_batching_server import FEATURES, model

from vigil.serving.batching import GATHER_TURNS as GATHER_TURNS_VAR
from vigil.serving.batching import MicroBatcher
from vigil.serving.grpc import inference_v2_pb2 as pb
from vigil.serving.grpc.service import GATHER_TURNS
from vigil.serving.server import free_port

ROOT = Path(__file__).resolve().parents[2]
INFER = "/inference.GRPCInferenceService/ModelInfer"

pytestmark = pytest.mark.slow


@dataclass
class Worker:
    url: str
    target: str


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    """The benchmark's shape (``grpc_batching_server.py``): one worker, a cheap model."""
    port, grpc_port = free_port(), free_port()
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    script = Path(__file__).with_name("grpc_batching_server.py")
    # Pinned to one core, as the serving benchmark pins it (gRPC's own threads share it
    # with the event loop); the load generator gets the other.
    command = ["taskset", "-c", "0", sys.executable, str(script), str(port), str(grpc_port)]
    url = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile(prefix="vigil-grpc-batching-") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited:\n{Path(log.name).read_text()}")
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
            return False

        try:
            wait_for(ready, 120, what="a ready worker", interval=0.1)
            yield Worker(url, f"127.0.0.1:{grpc_port}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _batch_size(url: str) -> tuple[float, float]:
    """(model calls, rows) the ``vigil_batch_size`` histogram has counted for clf."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    totals = {"vigil_batch_size_count": 0.0, "vigil_batch_size_sum": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name == "vigil_batch_size":
            for s in family.samples:
                if s.name in totals and s.labels.get("model") == "clf":
                    totals[s.name] += s.value
    return totals["vigil_batch_size_count"], totals["vigil_batch_size_sum"]


def _request(row: np.ndarray) -> bytes:
    """One row as a raw FP64 ``[1, 4]`` tensor, asking for ``predict``, serialized."""
    message = pb.ModelInferRequest(model_name="clf")
    message.inputs.add(name="input-0", datatype="FP64", shape=[1, len(FEATURES)])
    message.outputs.add(name="predict")
    message.raw_input_contents.append(row.astype("<f8").tobytes())
    return bytes(message.SerializeToString())


def test_a_steady_load_on_many_connections_is_batched(worker: Worker, tmp_path: Path):
    h2load = shutil.which("h2load")
    assert h2load is not None, "h2load is not installed: apt-get install -y nghttp2-client"
    body = _request(np.linspace(-1.0, 1.0, len(FEATURES)))
    framed = tmp_path / "request.bin"  # gRPC's length-prefixed message
    framed.write_bytes(b"\x00" + len(body).to_bytes(4, "big") + body)
    calls_before, rows_before = _batch_size(worker.url)
    run = subprocess.run(
        [
            *("taskset", "-c", "1", h2load, "-t1", "-c32", "-m1", "-n4000"),
            *("-H", "content-type: application/grpc", "-H", "te: trailers"),
            *("-d", str(framed), f"http://{worker.target}{INFER}"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "4000 succeeded" in run.stdout, run.stdout
    calls_after, rows_after = _batch_size(worker.url)
    rows, calls = rows_after - rows_before, calls_after - calls_before
    assert rows == 4000
    assert rows / calls >= 2, f"{rows:.0f} calls took {calls:.0f} model calls"


def test_concurrent_calls_are_answered_as_the_model_answers(worker: Worker):
    channels, calls_each = 24, 20
    X = np.random.default_rng(3).normal(size=(channels * calls_each, len(FEATURES)))

    async def load() -> list[np.ndarray]:
        answers: list[np.ndarray] = [np.empty(0)] * len(X)

        async def closed_loop(first: int) -> None:  # one connection, one call in flight
            async with grpc.aio.insecure_channel(worker.target) as channel:
                infer = channel.unary_unary(
                    INFER,
                    request_serializer=lambda body: body,
                    response_deserializer=pb.ModelInferResponse.FromString,
                )
                for i in range(first, len(X), channels):
                    response = await infer(_request(X[i]))
                    answers[i] = np.frombuffer(response.raw_output_contents[0], "<i8")

        await asyncio.gather(*(closed_loop(c) for c in range(channels)))
        return answers

    calls_before, rows_before = _batch_size(worker.url)
    answers = asyncio.run(load())
    calls_after, rows_after = _batch_size(worker.url)
    np.testing.assert_array_equal(np.concatenate(answers), model().predict(X))
    assert rows_after - rows_before == len(X)
    assert calls_after - calls_before < len(X)  # and some of them shared a model call


@pytest.mark.parametrize(("turns", "calls"), [(1, 8), (GATHER_TURNS, 1)])
def test_arrivals_a_few_turns_apart_join_when_their_protocol_says_so(turns: int, calls: int):
    # What grpc.aio does under load, measured: the next call 4 turns after the last.
    def predict(X: np.ndarray, want_proba: bool) -> tuple[np.ndarray, None]:
        return X[:, 0] * 2, None

    async def main() -> list[float]:
        # A cheap model, measured as such: its calls run on the event loop (as a linear
        # model's do), so nothing queues behind a call while it runs.
        batcher = MicroBatcher(predict, max_batch_size=64, max_wait=1.0, inline_budget=1.0)
        batcher.calibrate(np.zeros((1, 1)), lambda: np.zeros((64, 1)), False)

        async def arrive(i: int) -> float:
            for _ in range(4 * i):
                await asyncio.sleep(0)
            token = GATHER_TURNS_VAR.set(turns)
            try:
                result = await batcher.submit(np.array([[float(i)]]), 1, False)
            finally:
                GATHER_TURNS_VAR.reset(token)
            return float(result.predictions[0])

        try:
            answers = await asyncio.gather(*(arrive(i) for i in range(8)))
        finally:
            batcher.close()
        assert (batcher.stats.batches, batcher.stats.inline_batches) == (calls, calls)
        return answers

    assert asyncio.run(main()) == [2.0 * i for i in range(8)]
