"""Scheduled monitoring off the serving process, on real servers: each cycle of a
``vigil serve`` runs in a child process and stores what a cycle run in-process stores; a
SIGTERM during a cycle stops the server at once (the child killed, not waited for) and the
next start completes the windows; a child killed mid-cycle is logged, the server keeps
serving, and the next interval redoes the cycle.

The long cycles of the last test are :func:`slow_cycles_app`'s: its composition root,
built in each cycle's child, writes the child's pid to a file and sleeps while told to.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import shutil
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests._waiting import wait_for
from tests.monitor._data import Trained, capture_sink, home_vigil, make_frame, write_traffic
from tests.servers import process_alive, vigil_serve_logged
from tests.serving.test_workers import WorkerServer

from vigil.app import Vigil, monitoring_root
from vigil.capture.settings import CaptureSettings
from vigil.errors import MonitorCycleError
from vigil.monitor.cycle import monitor_once
from vigil.monitor.isolation import NICE, CycleProcess
from vigil.monitor.scheduler import MonitorScheduler
from vigil.monitor.series import stored_windows
from vigil.monitor.settings import MonitorSettings
from vigil.monitor.windows import parse_window
from vigil.serving.app import ServingApp
from vigil.serving.server import free_port
from vigil.settings import Settings
from vigil.storage.sql import utcnow

pytestmark = pytest.mark.slow

HOURS = 3
ROWS = 200
ENV = {
    "VIGIL_MONITOR_INTERVAL_S": "1",
    "VIGIL_MONITOR_WINDOW": "1h",
    "VIGIL_MONITOR_GRACE_S": "0",
    "VIGIL_MONITOR_RULES": "[]",
    "VIGIL_SERVE_READINESS_CHECKS": "",
}
"""A cycle a second (the first one a second after start), on hourly windows."""
HOLD = "hold-cycles"
COMPUTED = re.compile(r"monitoring: (\d+) window\(s\) computed.* by process (\d+) for worker (\d+)")


@pytest.fixture
def home(vigil: Vigil, trained: Trained) -> Path:
    """A home with three closed hours of traffic (the last one drifted), none monitored."""
    start, _ = parse_window("1h").bounds(utcnow() - timedelta(hours=HOURS + 2))
    for h in range(HOURS):
        sink = capture_sink(vigil)
        write_traffic(
            sink,
            trained.model,
            make_frame(ROWS, seed=10 + h, shift_age=h == 2),
            start=start + timedelta(hours=h),
            step=timedelta(seconds=10),
            batch=2,
            prefix=f"h{h}-",
        )
        sink.close()
    vigil.database.dispose()
    return Path(vigil.settings.home)


def _windows(home: Path) -> list[tuple[Any, ...]]:
    app = home_vigil(home)
    try:
        found = stored_windows(app.database, window="1h", model="churn")
    finally:
        app.database.dispose()
    return sorted(
        (w.start, w.n_rows, w.partial, tuple(sorted(w.summary["drifted_features"])))
        for w in found
        if w.n_rows
    )


def _all_windows(home: Path) -> list[tuple[Any, ...]] | None:
    found = _windows(home)
    return found if len(found) == HOURS else None


def test_vigil_serve_runs_each_cycle_in_a_child_process(home: Path, tmp_path: Path) -> None:
    clean = tmp_path / "in-process"
    shutil.copytree(home, clean)
    app = home_vigil(clean)
    try:  # what the same cycle stores run here, in this process
        settings = MonitorSettings(window="1h", grace_s=0, rules=[])
        monitor_once(app, settings=settings, model="churn")
    finally:
        app.database.dispose()
    want = _windows(clean)
    assert [(w[1], w[2]) for w in want] == [(ROWS, False)] * HOURS
    assert want[-1][3] == ("age",)

    port = free_port()
    env = {**os.environ, **ENV, "VIGIL_HOME": str(home)}
    with vigil_serve_logged(env, port) as (proc, output):
        got = wait_for(lambda: _all_windows(home), 90, what=lambda: f"windows:\n{output()}")
        # A cycle computes the windows whose rows it sees: the worker's start-up
        # compaction (in a child process of its own) may be moving them from segments
        # to Parquet meanwhile, and a window left out is computed by the next cycle.
        lines = wait_for(
            lambda: [
                found
                for found in [COMPUTED.findall(output())]
                if sum(int(n) for n, _, _ in found) >= HOURS
            ],
            10,
            what=lambda: f"the log lines:\n{output()}",
        )[0]
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
    assert got == want
    children = {int(child) for _, child, _ in lines}
    workers = {int(worker) for _, _, worker in lines}
    assert len(workers) == 1 and not children & (workers | {proc.pid})
    wait_for(
        lambda: not any(process_alive(c) for c in children),
        10,
        what="the cycles' processes to exit",
    )


def _slow_root(settings: Settings, capture: CaptureSettings, monitor: MonitorSettings) -> Vigil:
    """The cycle child's root: while ``HOLD`` exists in the home, a cycle that takes two
    minutes (each writes its pid to ``cycle-N.pid`` first)."""
    n = len(list(settings.home.glob("cycle-*.pid")))
    (settings.home / f"cycle-{n + 1}.pid").write_text(str(os.getpid()))
    if (settings.home / HOLD).exists():
        time.sleep(120)
    return monitoring_root(settings, capture, monitor)


class _SlowCycles(Vigil):
    def monitor_scheduler(self) -> MonitorScheduler | None:
        scheduler = super().monitor_scheduler()
        assert scheduler is not None and scheduler.isolated is not None
        scheduler.isolated.root = functools.partial(
            _slow_root, self.settings, self.capture_settings, self.monitor_settings
        )
        return scheduler


def slow_cycles_app() -> ServingApp:
    """What a ``vigil serve`` worker builds, its monitoring cycles slow on demand."""
    root = _SlowCycles()
    return root.serving_app(root.serving_provider())


def _cycle(home: Path, server: WorkerServer, n: int) -> int:
    """The pid of the ``n``-th cycle's process, once it started."""

    child = server.pid_written(home / f"cycle-{n}.pid", f"cycle {n}")
    assert child != server.proc.pid
    return child


def test_a_cycle_killed_or_interrupted_by_sigterm_is_redone_and_never_holds_the_server(
    home: Path,
) -> None:
    (home / HOLD).touch()
    server = WorkerServer(1, f"{__name__}:slow_cycles_app", env={**ENV, "VIGIL_HOME": str(home)})
    try:
        # A cycle's process killed (as by the out-of-memory killer): logged, serving goes on,
        # the next interval runs the cycle again.
        first = _cycle(home, server, 1)
        # At a lower CPU priority than the server's.
        assert os.getpriority(os.PRIO_PROCESS, first) == min(
            19, os.getpriority(os.PRIO_PROCESS, 0) + NICE
        )
        os.kill(first, signal.SIGKILL)
        second = _cycle(home, server, 2)
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        out = server.output()
        assert f"process {first} died (killed by SIGKILL" in out
        assert "monitoring cycle failed; retrying" in out

        # SIGTERM during a cycle: the server exits at once, its cycle's process with it.
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(10) == 0
        assert time.monotonic() - signalled < 10
        wait_for(lambda: not process_alive(second), 5, what="the cycle's process killed")
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)
        server.log.close()
    assert _windows(home) == []  # both cycles ended before they stored anything

    # The next start runs the cycle in full.
    (home / HOLD).unlink()
    server = WorkerServer(1, f"{__name__}:slow_cycles_app", env={**ENV, "VIGIL_HOME": str(home)})
    try:
        done = wait_for(lambda: _all_windows(home), 60, what=lambda: server.output())
    finally:
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(30)
        server.log.close()
    assert [(w[1], w[2]) for w in done] == [(ROWS, False)] * HOURS


def _failing_root() -> Vigil:
    raise RuntimeError("no store here")


def test_a_cycle_that_raises_reports_its_traceback_from_its_process() -> None:
    cycles = CycleProcess(_failing_root)
    with pytest.raises(MonitorCycleError, match=r"failed in process (\d+):") as failed:
        cycles.run(MonitorSettings(), None)
    assert "RuntimeError: no store here" in failed.value.message
    assert f"process {os.getpid()}:" not in failed.value.message


def _hanging_root(settings: Settings, capture: CaptureSettings, monitor: MonitorSettings) -> Vigil:
    """The cycle child's root: the first cycle hangs for good (as on a deadlock or stuck
    I/O), the next ones run; each writes its pid to ``hang-N.pid`` first."""
    n = len(list(settings.home.glob("hang-*.pid"))) + 1
    (settings.home / f"hang-{n}.pid").write_text(str(os.getpid()))
    if n == 1:
        threading.Event().wait()  # never set
    return monitoring_root(settings, capture, monitor)


def test_a_hung_cycle_is_killed_at_its_timeout_logged_and_the_next_interval_runs(
    vigil: Vigil, caplog: pytest.LogCaptureFixture
) -> None:
    settings = MonitorSettings(interval_s=0.2, cycle_timeout_s=1.0, rules=[])
    root = functools.partial(_hanging_root, vigil.settings, vigil.capture_settings, settings)
    scheduler = MonitorScheduler(vigil, settings, cycle_root=root)
    home = vigil.settings.home

    async def run() -> None:
        scheduler.start()
        try:
            while scheduler.runs == 0:  # the second cycle ran to its end
                await asyncio.sleep(0.05)
        finally:
            await scheduler.stop()

    with caplog.at_level(logging.ERROR, logger="vigil.monitor"):
        asyncio.run(asyncio.wait_for(run(), 120))
    hung = int((home / "hang-1.pid").read_text())
    assert int((home / "hang-2.pid").read_text()) != hung
    wait_for(lambda: not process_alive(hung), 10, what="the hung cycle's process killed")
    failures = [r for r in caplog.records if r.getMessage().startswith("monitoring cycle failed")]
    assert failures, caplog.text
    error = failures[0].exc_info[1] if failures[0].exc_info else None
    assert isinstance(error, MonitorCycleError)
    assert error.message == (
        f"the monitoring cycle's process {hung} timed out after 1 s and was killed; the next "
        "interval runs the cycle again. If cycles need longer, raise "
        "VIGIL_MONITOR_CYCLE_TIMEOUT_S"
    )
    assert scheduler.runs == 1 and scheduler.last is not None
