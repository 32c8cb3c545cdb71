"""A scheduled monitoring cycle in a child process, so it never shares the GIL of the
serving worker (``VIGIL_MONITOR_ISOLATION=process``, the default).

A cycle judges windows with pandas, NumPy and SciPy, much of it holding the GIL: run in a
thread of the worker, it takes the event loop's turns and request latency spikes while it
runs (docs/benchmarks.md, "Monitoring off the serving process"); a thread also cannot be
stopped, so a server told to stop waited for the cycle to end.

Design: **one child process per cycle, forked by a forkserver that preloads the
statistics stack**.

- *Per cycle*, not one long-lived child: the child's whole heap (the window's tables, the
  summaries, pandas' caches) goes back to the system when it exits, so neither the worker
  nor a helper grows cycle after cycle; a crash, a leak or an out-of-memory kill costs one
  cycle, and there is no protocol to keep alive between two processes.
- *Forkserver*, not ``fork``: forking the worker itself would copy a process with threads
  and an event loop (locks held by other threads stay locked in the child). The
  forkserver is a fresh single-threaded interpreter started once (on the first cycle);
  it imports :data:`PRELOAD` (about 2 s of CPU and 200 MB, paid once; its pages are
  shared copy-on-write with each cycle's child), then forks a child per cycle in
  milliseconds instead of an interpreter start and those imports per cycle. ``spawn``
  serves where there is no forkserver (it pays the imports every cycle).
- The child builds its objects through the composition root from the server's own
  settings objects (``root``, a picklable callable the root hands the scheduler: see
  :func:`vigil.app.monitoring_root`), and runs the very
  :func:`~vigil.monitor.cycle.monitor_once` that ``vigil monitor run`` runs: windows,
  rules, webhooks and their claims, written to the store as before. It sends back the
  :class:`~vigil.monitor.cycle.CycleResult` without the windows' contents
  (:meth:`~vigil.monitor.cycle.CycleResult.slim`: counts and alert transitions) and the updated
  :class:`~vigil.monitor.engine.Resume`, which the scheduler keeps for the next child.
- The worker keeps what is cheap and its own: the lease and its renewal, the Prometheus
  gauges (read back from the store), the log line.
- The child runs at a lower CPU priority (``nice`` +:data:`NICE`), and so does the
  forkserver while it imports: on a busy machine the serving workers win the cores, and
  monitoring takes what is left.
- It dies with the worker: on Linux the kernel kills it when its parent does
  (``PR_SET_PDEATHSIG``; its parent is the forkserver, which exits with the worker), and
  everywhere a thread of the child watches its pipe to the worker and exits when the
  worker's end closes. :meth:`CycleProcess.close` (the server stopping) kills a running
  cycle at once instead of waiting for it: every write of a cycle is claimed or stored
  per window, and a cycle killed between any two writes is finished by the next one
  (``tests/monitor/test_summaries_crash.py``).
- A child that raises, or dies (killed, out of memory), makes :meth:`CycleProcess.run`
  raise :class:`~vigil.errors.MonitorCycleError`; the scheduler logs it and retries at
  the next interval, the server keeps serving. So does a child still running after
  ``VIGIL_MONITOR_CYCLE_TIMEOUT_S``
  (:attr:`~vigil.monitor.settings.MonitorSettings.cycle_timeout`), killed first: a hung
  child (a deadlock, stuck I/O) would otherwise stop monitoring for good.

As in any program using ``multiprocessing`` with ``spawn`` or ``forkserver``, each child
imports the parent's main module again (as ``__mp_main__``): ``vigil serve``, uvicorn's
and gunicorn's entry points guard theirs, but a script that builds and runs the app
itself must do so under ``if __name__ == "__main__":`` (or set
``VIGIL_MONITOR_ISOLATION=thread``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import traceback
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

from vigil.errors import MonitorCycleError

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection
    from multiprocessing.context import ForkServerContext, SpawnContext
    from multiprocessing.process import BaseProcess

    from vigil.monitor.cycle import CycleResult
    from vigil.monitor.engine import Resume
    from vigil.monitor.services import MonitorServices
    from vigil.monitor.settings import MonitorSettings

log = logging.getLogger("vigil.monitor")

NICE = 10
"""How much lower the child's CPU priority is than the worker's (``os.nice``)."""

PRELOAD = ["vigil.app", "vigil.monitor.cycle", "vigil.feedback.store"]
"""What the forkserver imports once, so each cycle's child starts with it: the composition
root and the cycle's statistics stack."""

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True)
class _Done:
    pid: int
    result: CycleResult
    resume: Resume


@dataclass(frozen=True)
class _Failed:
    pid: int
    error: str


def start_context() -> ForkServerContext | SpawnContext:
    """``forkserver`` (preloading :data:`PRELOAD`) where the platform has it, else
    ``spawn``; never ``fork`` (see the module's docstring)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # Global to this process's forkserver, and read when it starts (the first cycle).
        context.set_forkserver_preload(PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


class CycleProcess:
    """Runs :func:`~vigil.monitor.cycle.monitor_once` in a child process per call of
    :meth:`run`, with the composition root ``root()`` builds there; :meth:`close` kills
    the running one and refuses new ones."""

    def __init__(self, root: Callable[[], MonitorServices]) -> None:
        self.root = root
        self._context = start_context()
        self._lock = threading.Lock()
        self._child: BaseProcess | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"CycleProcess({self._context.get_start_method()}, root={self.root!r})"

    def run(
        self, settings: MonitorSettings, resume: Resume | None
    ) -> tuple[CycleResult, Resume, int]:
        """One cycle in a child (blocking): its result, the resume point for the next
        cycle and the child's pid. Raises :class:`~vigil.errors.MonitorCycleError` when
        the cycle failed, its process died (or :meth:`close` was called), or it ran past
        ``settings.cycle_timeout`` (then it is killed)."""
        if self._closed:
            raise MonitorCycleError("monitoring is stopping: no new cycle")
        niceness = _lower_forkserver_priority(self._context)
        ours, theirs = self._context.Pipe(duplex=True)
        level = logging.getLogger("vigil").getEffectiveLevel()
        child = self._context.Process(
            target=_child_main,
            args=(self.root, settings, resume, theirs, level, niceness),
            name="vigil-monitor-cycle",
        )
        timeout = settings.cycle_timeout
        outcome: _Done | _Failed | None = None
        timed_out = False
        try:
            child.start()
            theirs.close()  # the child's end lives in the child only: its exit is our EOF
            with self._lock:
                self._child = child
                stopped = self._closed
            if stopped:
                child.kill()
            ready = wait([ours, child.sentinel], timeout)
            if ours.poll():
                with contextlib.suppress(EOFError, OSError):
                    outcome = ours.recv()
            elif not ready:  # hung (a deadlock, stuck I/O): it would stop monitoring for good
                timed_out = True
                child.kill()
        finally:
            ours.close()
            theirs.close()
            if child.pid is not None:
                child.join(10)
                if child.exitcode is None:  # sent its result, then hung on its way out
                    child.kill()
                    child.join()
            with self._lock:
                self._child = None
        if isinstance(outcome, _Done):
            return outcome.result, outcome.resume, outcome.pid
        if isinstance(outcome, _Failed):
            raise MonitorCycleError(
                f"the monitoring cycle failed in process {outcome.pid}:\n{outcome.error}"
            )
        if timed_out:
            raise MonitorCycleError(
                f"the monitoring cycle's process {child.pid} timed out after {timeout:g} s "
                "and was killed; the next interval runs the cycle again. If cycles need "
                "longer, raise VIGIL_MONITOR_CYCLE_TIMEOUT_S"
            )
        raise MonitorCycleError(
            f"the monitoring cycle's process {child.pid} died ({_exit_reason(child.exitcode)})"
            + (" while monitoring was stopping" if self._closed else "")
        )

    def open(self) -> None:
        """Accept cycles again after :meth:`close` (a server started anew)."""
        with self._lock:
            self._closed = False

    def close(self) -> None:
        """Kill the running cycle (if any) and refuse new ones: the server stopping never
        waits for a cycle; the next lease holder redoes what it left."""
        with self._lock:
            self._closed = True
            child = self._child
        if child is not None and child.exitcode is None:
            with contextlib.suppress(OSError, ValueError):
                child.kill()


def _lower_forkserver_priority(context: ForkServerContext | SpawnContext) -> int:
    """Start the forkserver (if it is the start method) and lower its priority before it
    has done much of its imports; returns the niceness a cycle's child should have."""
    target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICE)
    if context.get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()
        # Its pid is private to multiprocessing, hence the care: without it, only the
        # children are niced.
        server = getattr(multiprocessing.forkserver, "_forkserver", None)
        pid = getattr(server, "_forkserver_pid", None)
        if isinstance(pid, int):
            with contextlib.suppress(OSError):
                if os.getpriority(os.PRIO_PROCESS, pid) < target:
                    os.setpriority(os.PRIO_PROCESS, pid, target)
    return target


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = ", perhaps by the out-of-memory killer" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit status {code}"


def _die_with_parent(conn: Connection) -> None:
    """End this process when the worker that started it ends, however it ends."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch() -> None:
        # The worker never writes to this pipe: it turns readable only at its end (EOF).
        with contextlib.suppress(OSError, EOFError):
            conn.poll(None)
        os._exit(1)

    threading.Thread(target=watch, name="vigil-monitor-parent", daemon=True).start()


def _child_main(
    root: Callable[[], MonitorServices],
    settings: MonitorSettings,
    resume: Resume | None,
    conn: Connection,
    level: int,
    niceness: int,
) -> None:
    _die_with_parent(conn)
    with contextlib.suppress(OSError):
        if os.getpriority(os.PRIO_PROCESS, 0) < niceness:
            os.setpriority(os.PRIO_PROCESS, 0, niceness)
    logging.basicConfig(
        level=level,
        format="%(levelname)s:     %(name)s [monitor cycle, pid %(process)d]: %(message)s",
    )
    # Here, not at the top: importing this module (the scheduler does, at start-up) must
    # not load the statistics stack; the forkserver has it preloaded (PRELOAD).
    from vigil.monitor.cycle import monitor_once
    from vigil.monitor.engine import Resume

    outcome: Any
    app: MonitorServices | None = None
    try:
        app = root()
        resume = resume if resume is not None else Resume()
        result = monitor_once(app, settings=settings, resume=resume)
        outcome = _Done(os.getpid(), result.slim(), resume)
    except BaseException:  # everything is reported; the process ends either way
        outcome = _Failed(os.getpid(), traceback.format_exc())
    try:
        conn.send(outcome)
    finally:
        if app is not None:
            with contextlib.suppress(Exception):
                app.database.dispose()
