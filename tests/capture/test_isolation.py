"""Compaction off the serving process, on real servers: each pass of a ``vigil serve``
worker runs in a child process and compacts closed segments to Parquet while the worker
serves; a pass's process killed (``kill -9``) mid-pass is logged, the worker keeps
serving, the next pass runs in a new process and nothing is lost; a SIGTERM during a pass
stops the server at once (the pass killed, not waited for) and the next start compacts
what it left.

The held passes of the last test are :func:`held_compaction_app`'s: its compaction root,
built in each pass's child, writes the child's pid to a file and, while told to, holds the
compaction lock for two minutes before compacting.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
from tests._waiting import wait_for
from tests.capture.test_durability import FEATURES, register_churn
from tests.servers import process_alive, vigil_serve_logged
from tests.serving.test_workers import WorkerServer

from vigil._child import NICE
from vigil.app import Vigil, compaction_root
from vigil.capture.compact import CompactionResult
from vigil.capture.compactor import LOCK_NAME, Compactor
from vigil.capture.reader import read_capture
from vigil.capture.settings import CaptureSettings
from vigil.serving.app import ServingApp
from vigil.serving.capture_runtime import CaptureRuntime
from vigil.serving.server import free_port
from vigil.settings import Settings
from vigil.storage.artifacts import ArtifactStore

pytestmark = pytest.mark.slow

ENV = {
    "VIGIL_CAPTURE_COMPACT_INTERVAL_S": "0.5",
    "VIGIL_CAPTURE_SEGMENT_SECONDS": "0.5",  # every pass closes what the worker wrote
    "VIGIL_MONITOR_ENABLED": "false",
    "VIGIL_SERVE_READINESS_CHECKS": "",
}
HOLD = "hold-compaction"
COMPACTED = re.compile(r"compacted (\d+) capture rows;.* \(by process (\d+) for process (\d+)\)")


def _predict(url: str, ids: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        for i, rid in enumerate(ids):
            row = {f: (i % 7) / 7 - 0.5 for f in FEATURES}
            r = http.post(
                "/v1/models/churn/predict", json={"inputs": row}, headers={"x-request-id": rid}
            )
            assert r.status_code == 200, r.text


def _compacted(home: Path) -> set[str]:
    """The request ids in the compacted Parquet partitions (not the segments)."""
    frame = read_capture("churn", store=ArtifactStore(str(home / "artifacts")))
    return set(frame["request_id"]) if len(frame) else set()


def _all_compacted(home: Path, ids: list[str]) -> bool:
    return set(ids) <= _compacted(home)


def test_vigil_serve_compacts_closed_segments_in_a_child_process_while_serving(
    vigil_home: Path,
) -> None:
    register_churn(vigil_home)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **ENV, "VIGIL_HOME": str(vigil_home)}
    with vigil_serve_logged(env, port) as (proc, output):

        def ready() -> int | None:
            assert proc.poll() is None, output()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    return int(httpx.get(f"{url}/livez", timeout=5).json()["pid"])
            return None

        worker = wait_for(ready, 120, what=lambda: f"the server:\n{output()}")
        first = [f"first-{i}" for i in range(60)]
        _predict(url, first)
        wait_for(lambda: _all_compacted(vigil_home, first), 60, what=output)
        # Compacted while the worker went on serving, and goes on compacting.
        second = [f"second-{i}" for i in range(60)]
        _predict(url, second)
        wait_for(lambda: _all_compacted(vigil_home, second), 60, what=output)
        # Each pass logs what it did once its process is done.
        lines = wait_for(
            lambda: [
                found
                for found in [COMPACTED.findall(output())]
                if sum(int(rows) for rows, _, _ in found) >= len(first) + len(second)
            ],
            30,
            what=output,
        )[0]
    assert sum(int(rows) for rows, _, _ in lines) == len(first) + len(second)
    children = {int(child) for _, child, _ in lines}
    assert {int(w) for _, _, w in lines} == {worker}
    # Each pass in a process of its own: neither the worker nor the supervisor.
    assert not children & {worker, proc.pid}
    assert len(children) == len(lines)
    assert not any(process_alive(c) for c in children)


def _held_root(settings: Settings, capture: CaptureSettings) -> Compactor:
    """A pass's compactor: while ``HOLD`` exists in the home, it holds the compaction lock
    for two minutes before compacting (each writes its pid to ``pass-N.pid`` first)."""
    compactor = compaction_root(settings, capture)
    compact_capture = compactor._compact_capture

    def held() -> CompactionResult:
        n = len(list(settings.home.glob("pass-*.pid")))
        (settings.home / f"pass-{n + 1}.pid").write_text(str(os.getpid()))
        if (settings.home / HOLD).exists():
            time.sleep(120)
        return compact_capture()

    compactor._compact_capture = held  # type: ignore[method-assign]
    return compactor


class _HeldCompaction(Vigil):
    def capture_runtime(self) -> CaptureRuntime | None:
        runtime = super().capture_runtime()
        assert runtime is not None and runtime.isolated is not None
        child = self.capture_settings.model_copy(update={"compact_isolation": "thread"})
        runtime.isolated.root = functools.partial(_held_root, self.settings, child)
        return runtime


def held_compaction_app() -> ServingApp:
    """What a ``vigil serve`` worker builds, its compaction passes held on demand."""
    root = _HeldCompaction()
    return root.serving_app(root.serving_provider())


def _pass(home: Path, server: WorkerServer, n: int) -> int:
    """The pid of the ``n``-th pass's process, once it started."""
    return server.pid_written(home / f"pass-{n}.pid", f"pass {n}")


def _server(home: Path) -> WorkerServer:
    server = WorkerServer(
        1, f"{__name__}:held_compaction_app", env={**ENV, "VIGIL_HOME": str(home)}
    )
    wait_for(
        lambda: server.proc.poll() is not None or _ready(server.url),
        120,
        what=lambda: f"the server:\n{server.output()}",
    )
    assert server.proc.poll() is None, server.output()
    return server


def _ready(url: str) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    return False


def _stop(server: WorkerServer) -> int:
    try:
        server.proc.send_signal(signal.SIGTERM)
        return server.proc.wait(60)  # a held pass would take two minutes
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)
        server.log.close()


def test_a_pass_killed_or_interrupted_by_sigterm_loses_nothing_and_never_holds_the_server(
    vigil_home: Path,
) -> None:
    register_churn(vigil_home)
    (vigil_home / HOLD).touch()
    server = _server(vigil_home)
    try:
        worker = int(httpx.get(f"{server.url}/livez", timeout=10).json()["pid"])
        first = _pass(vigil_home, server, 1)
        assert first not in (worker, server.proc.pid)
        # At a lower CPU priority than the worker's.
        assert os.getpriority(os.PRIO_PROCESS, first) == min(
            19, os.getpriority(os.PRIO_PROCESS, worker) + NICE
        )
        before = [f"before-{i}" for i in range(40)]
        _predict(server.url, before)
        # Killed while it holds the compaction lock (as by the out-of-memory killer):
        # logged, serving goes on, the next pass runs in a new process and takes the lock.
        os.kill(first, signal.SIGKILL)
        second = _pass(vigil_home, server, 2)
        assert second not in (first, worker)
        after = [f"after-{i}" for i in range(40)]
        _predict(server.url, after)
        out = server.output()
        assert f"capture compaction failed in process {first}; retrying" in out
        assert "killed by SIGKILL" in out
        # SIGTERM during a held pass: the server stops without waiting for it, and the
        # pass's process goes with it.
        assert _stop(server) == 0
        wait_for(lambda: not process_alive(second), 10, what="the held pass's process killed")
    finally:
        if server.proc.poll() is None:
            _stop(server)
    assert _compacted(vigil_home) == set()  # both passes ended before they compacted
    assert list((vigil_home / "capture").glob("*.open")) == []  # closed at shutdown

    # The next start compacts everything the killed passes left, in a child.
    (vigil_home / HOLD).unlink()
    server = _server(vigil_home)
    try:
        wait_for(
            lambda: _all_compacted(vigil_home, before + after), 60, what=lambda: server.output()
        )
        third = _pass(vigil_home, server, 3)
        assert third not in (first, second, server.proc.pid)
        _predict(server.url, ["still-serving"])
    finally:
        assert _stop(server) == 0
    assert (vigil_home / "capture" / LOCK_NAME).exists()
