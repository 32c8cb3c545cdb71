"""Work of a serving worker run in a child process, so it never shares the worker's GIL.

Scheduled monitoring cycles (:mod:`vigil.monitor.isolation`) and capture compaction
(:mod:`vigil.capture.isolation`) hold the GIL for seconds at a time (pandas, SciPy,
decoding segments, writing Parquet): run in a thread of the worker, they take the event
loop's turns and request latency spikes while they run. :class:`ChildProcess` runs one
call of a module-level function in a child process per :meth:`ChildProcess.run`:

- *One child per call*, not a long-lived one: the child's heap goes back to the system
  when it exits, a crash, a leak or an out-of-memory kill costs one call, and there is no
  protocol to keep alive between two processes.
- *Forkserver*, not ``fork``: forking the worker would copy a process with threads, an
  event loop and listening sockets (locks held by other threads stay locked in the child;
  a socket inherited by a child keeps the port open after the server exits). The
  forkserver is a fresh single-threaded interpreter, started from the worker with none of
  its descriptors, on the first call; it imports what its users ask to preload (once,
  pages shared copy-on-write with each child), then forks a child per call in
  milliseconds. ``spawn`` serves where there is no forkserver (it pays the imports every
  call). There is one forkserver per worker, whoever asks for it first starts it.
- The child runs at a lower CPU priority (``nice`` +:data:`NICE`), and so does the
  forkserver while it imports: on a busy machine the serving workers win the cores.
- It dies with the worker: on Linux the kernel kills it when its parent does
  (``PR_SET_PDEATHSIG``; its parent is the forkserver, which exits with the worker), and
  everywhere a thread of the child watches its pipe to the worker and exits when the
  worker's end closes. :meth:`ChildProcess.close` (the server stopping) kills a running
  child at once instead of waiting for it.
- A call that raises, a child that dies and one past its timeout raise a
  :class:`ChildError` in the worker, which its user logs and retries.

As in any program using ``multiprocessing`` with ``spawn`` or ``forkserver``, each child
imports the parent's main module again (as ``__mp_main__``): ``vigil serve``, uvicorn's
and gunicorn's entry points guard theirs, but a script that builds and runs the app
itself must do so under ``if __name__ == "__main__":``.
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
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from multiprocessing.connection import Connection
    from multiprocessing.context import ForkServerContext, SpawnContext
    from multiprocessing.process import BaseProcess

NICE = 10
"""How much lower a child's CPU priority is than the worker's (``os.nice``)."""

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_T = TypeVar("_T")
_preload: set[str] = set()


class ChildError(Exception):
    """A call in a child process did not return: the child's pid and why."""

    def __init__(self, pid: int | None, reason: str) -> None:
        super().__init__(f"process {pid}: {reason}")
        self.pid = pid
        self.reason = reason


class ChildFailed(ChildError):
    """The call raised in the child: :attr:`reason` is the child's traceback."""


class ChildDied(ChildError):
    """The child died before it answered (killed, out of memory, or :meth:`ChildProcess.close`)."""


class ChildTimedOut(ChildError):
    """The child ran past its timeout and was killed."""


@dataclass(frozen=True)
class _Done(Generic[_T]):
    pid: int
    value: _T


@dataclass(frozen=True)
class _Failed:
    pid: int
    error: str


def start_context(preload: Iterable[str]) -> ForkServerContext | SpawnContext:
    """``forkserver`` where the platform has it (preloading ``preload``, with what earlier
    callers asked for: the forkserver is one per process), else ``spawn``; never ``fork``
    (see the module's docstring). The preload counts only before the forkserver starts."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        _preload.update(preload)
        context.set_forkserver_preload(sorted(_preload))
        return context
    return multiprocessing.get_context("spawn")


class ChildProcess(Generic[_T]):
    """Runs one call of a module-level function in a new child process per :meth:`run`;
    :meth:`close` kills the running one and refuses new ones until :meth:`open`.

    ``name`` is the child's process name, ``label`` what its log lines say it is, and
    ``preload`` the modules the forkserver should import once for every child.
    """

    def __init__(self, name: str, *, label: str, preload: Iterable[str]) -> None:
        self.name = name
        self.label = label
        self._context = start_context(preload)
        self._lock = threading.Lock()
        self._child: BaseProcess | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"ChildProcess({self.name!r}, {self._context.get_start_method()})"

    @property
    def closed(self) -> bool:
        """``True`` after :meth:`close` (until :meth:`open`)."""
        return self._closed

    def run(
        self, target: Callable[..., _T], *args: Any, timeout: float | None = None
    ) -> tuple[_T, int]:
        """``target(*args)`` in a child process (blocking): what it returned and the
        child's pid. Raises :class:`ChildFailed` (it raised), :class:`ChildDied` (its
        process died, or :meth:`close` was called) or :class:`ChildTimedOut` (it ran past
        ``timeout`` seconds, then it was killed)."""
        if self._closed:
            raise ChildDied(None, "closed: no new child")
        niceness = _lower_forkserver_priority(self._context)
        ours, theirs = self._context.Pipe(duplex=True)
        level = logging.getLogger("vigil").getEffectiveLevel()
        child = self._context.Process(
            target=_child_main,
            args=(target, args, theirs, level, niceness, self.label),
            name=self.name,
        )
        outcome: _Done[_T] | _Failed | None = None
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
            elif not ready:  # hung (a deadlock, stuck I/O): it would stop its work for good
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
            return outcome.value, outcome.pid
        if isinstance(outcome, _Failed):
            raise ChildFailed(outcome.pid, outcome.error)
        if timed_out:
            raise ChildTimedOut(child.pid, f"timed out after {timeout:g} s and was killed")
        raise ChildDied(child.pid, exit_reason(child.exitcode))

    def open(self) -> None:
        """Accept calls again after :meth:`close` (a server started anew)."""
        with self._lock:
            self._closed = False

    def close(self) -> None:
        """Kill the running child (if any) and refuse new ones: a server stopping never
        waits for one."""
        with self._lock:
            self._closed = True
            child = self._child
        if child is not None and child.exitcode is None:
            with contextlib.suppress(OSError, ValueError):
                child.kill()


def _lower_forkserver_priority(context: ForkServerContext | SpawnContext) -> int:
    """Start the forkserver (if it is the start method) and lower its priority before it
    has done much of its imports; returns the niceness a child should have."""
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


def exit_reason(code: int | None) -> str:
    """Why a child exited, from its exit code, for a log line.

    >>> exit_reason(-9), exit_reason(1)
    ('killed by SIGKILL, perhaps by the out-of-memory killer', 'exit status 1')
    """
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

    threading.Thread(target=watch, name="vigil-child-parent", daemon=True).start()


def _child_main(
    target: Callable[..., Any],
    args: tuple[Any, ...],
    conn: Connection,
    level: int,
    niceness: int,
    label: str,
) -> None:
    _die_with_parent(conn)
    with contextlib.suppress(OSError):
        if os.getpriority(os.PRIO_PROCESS, 0) < niceness:
            os.setpriority(os.PRIO_PROCESS, 0, niceness)
    logging.basicConfig(
        level=level,
        format=f"%(levelname)s:     %(name)s [{label}, pid %(process)d]: %(message)s",
    )
    outcome: _Done[Any] | _Failed
    try:
        outcome = _Done(os.getpid(), target(*args))
    except BaseException:  # everything is reported; the process ends either way
        outcome = _Failed(os.getpid(), traceback.format_exc())
    conn.send(outcome)
