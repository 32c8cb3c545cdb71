"""A scheduled monitoring cycle in a child process, so it never shares the GIL of the
serving worker (``VIGIL_MONITOR_ISOLATION=process``, the default).

A cycle judges windows with pandas, NumPy and SciPy, much of it holding the GIL: run in a
thread of the worker, it takes the event loop's turns and request latency spikes while it
runs (docs/benchmarks.md, "Monitoring off the serving process"); a thread also cannot be
stopped, so a server told to stop waited for the cycle to end.

Design: **one child process per cycle, forked by a forkserver that preloads the
statistics stack** (:class:`vigil._child.ChildProcess`, which capture compaction uses too).

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
from typing import TYPE_CHECKING

from vigil._child import NICE, ChildDied, ChildFailed, ChildProcess, ChildTimedOut
from vigil.errors import MonitorCycleError

if TYPE_CHECKING:
    from collections.abc import Callable

    from vigil.monitor.cycle import CycleResult
    from vigil.monitor.engine import Resume
    from vigil.monitor.services import MonitorServices
    from vigil.monitor.settings import MonitorSettings

__all__ = ["NICE", "PRELOAD", "CycleProcess"]

PRELOAD = ["vigil.app", "vigil.monitor.cycle", "vigil.feedback.store"]
"""What the forkserver imports once, so each cycle's child starts with it: the composition
root and the cycle's statistics stack."""


class CycleProcess:
    """Runs :func:`~vigil.monitor.cycle.monitor_once` in a child process per call of
    :meth:`run`, with the composition root ``root()`` builds there; :meth:`close` kills
    the running one and refuses new ones."""

    def __init__(self, root: Callable[[], MonitorServices]) -> None:
        self.root = root
        self._children: ChildProcess[tuple[CycleResult, Resume]] = ChildProcess(
            "vigil-monitor-cycle", label="monitor cycle", preload=PRELOAD
        )

    def __repr__(self) -> str:
        return f"CycleProcess({self._children!r}, root={self.root!r})"

    def run(
        self, settings: MonitorSettings, resume: Resume | None
    ) -> tuple[CycleResult, Resume, int]:
        """One cycle in a child (blocking): its result, the resume point for the next
        cycle and the child's pid. Raises :class:`~vigil.errors.MonitorCycleError` when
        the cycle failed, its process died (or :meth:`close` was called), or it ran past
        ``settings.cycle_timeout`` (then it is killed)."""
        if self._children.closed:
            raise MonitorCycleError("monitoring is stopping: no new cycle")
        timeout = settings.cycle_timeout
        try:
            (result, resume), pid = self._children.run(
                _cycle, self.root, settings, resume, timeout=timeout
            )
        except ChildFailed as e:
            raise MonitorCycleError(
                f"the monitoring cycle failed in process {e.pid}:\n{e.reason}"
            ) from None
        except ChildTimedOut as e:
            raise MonitorCycleError(
                f"the monitoring cycle's process {e.pid} timed out after {timeout:g} s "
                "and was killed; the next interval runs the cycle again. If cycles need "
                "longer, raise VIGIL_MONITOR_CYCLE_TIMEOUT_S"
            ) from None
        except ChildDied as e:
            if e.pid is None:
                raise MonitorCycleError("monitoring is stopping: no new cycle") from None
            raise MonitorCycleError(
                f"the monitoring cycle's process {e.pid} died ({e.reason})"
                + (" while monitoring was stopping" if self._children.closed else "")
            ) from None
        return result, resume, pid

    def open(self) -> None:
        """Accept cycles again after :meth:`close` (a server started anew)."""
        self._children.open()

    def close(self) -> None:
        """Kill the running cycle (if any) and refuse new ones: the server stopping never
        waits for a cycle; the next lease holder redoes what it left."""
        self._children.close()


def _cycle(
    root: Callable[[], MonitorServices], settings: MonitorSettings, resume: Resume | None
) -> tuple[CycleResult, Resume]:
    """One cycle, in the child: its slim result and the resume point."""
    # Here, not at the top: importing this module (the scheduler does, at start-up) must
    # not load the statistics stack; the forkserver has it preloaded (PRELOAD).
    from vigil.monitor.cycle import monitor_once
    from vigil.monitor.engine import Resume

    app = root()
    try:
        resume = resume if resume is not None else Resume()
        result = monitor_once(app, settings=settings, resume=resume)
        return result.slim(), resume
    finally:
        with contextlib.suppress(Exception):
            app.database.dispose()
