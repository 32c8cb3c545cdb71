"""Monitoring inside the server: a background task running a cycle every ``interval_s``.

The cycle runs in a child process (:mod:`vigil.monitor.isolation`, the default), so
reading the log and computing statistics never holds the GIL of the event loop that
answers predictions, and the server stopping kills a running cycle instead of waiting for
it; or, with ``VIGIL_MONITOR_ISOLATION=thread``, in a thread of the worker
(``asyncio.to_thread``). Either way the worker waits for it in a thread. With several workers
(or replicas on one PostgreSQL), only the holder of the ``monitor`` lease runs cycles; the
lease is taken and renewed with a locked read-then-write in the SQL store and expires if
its holder dies, so another worker takes over. Every worker refreshes its Prometheus
gauges from the store after each tick, whoever computed the windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

import vigil._heap as _heap
from vigil.monitor.isolation import CycleProcess
from vigil.monitor.settings import MonitorSettings
from vigil.storage.sql import Database, utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    from vigil.monitor.cycle import CycleResult
    from vigil.monitor.engine import Resume
    from vigil.monitor.services import MonitorServices

log = logging.getLogger("vigil.monitor")

LEASE = "monitor"
_FIRST_RUN_DELAY_S = 30.0
"""The first cycle runs this long after start-up (or after one interval, if shorter)."""


def compaction_lag_warning(
    grace_s: float, segment_seconds: float, compact_interval_s: float
) -> str | None:
    """What to tell an operator whose windows may become final before other replicas'
    predictions are in them (``None`` when they cannot).

    The lease holder reads its own replica's live capture segments and what every replica
    has compacted to the shared store; another replica's prediction gets there up to a
    segment's life plus a compaction interval after it was made. A window final sooner
    (``grace_s`` after its end) leaves it out, for good.

    >>> compaction_lag_warning(60.0, 3600.0, 60.0) is not None
    True
    >>> compaction_lag_warning(120.0, 30.0, 30.0) is None
    True
    """
    lag = segment_seconds + compact_interval_s
    if grace_s > lag:
        return None
    return (
        f"if several replicas share this database: a monitoring window is final "
        f"{grace_s:g} s after its end (VIGIL_MONITOR_GRACE_S), but another replica's "
        f"predictions reach the shared store up to {lag:g} s after they were made "
        "(VIGIL_CAPTURE_SEGMENT_SECONDS + VIGIL_CAPTURE_COMPACT_INTERVAL_S), so its windows "
        "would hold mostly this replica's predictions; raise the grace above that, or "
        "shorten the segments"
    )


def acquire_lease(
    db: Database, name: str, holder: str, ttl: timedelta, *, now: datetime | None = None
) -> bool:
    """Take or renew lease ``name`` for ``holder``; ``False`` while someone else holds it."""
    from vigil.monitor.tables import MonitorLeaseRow  # in the cycle's thread, not at start-up

    now = now or utcnow()
    try:
        with db.session(write=True) as session:
            row = session.scalars(
                select(MonitorLeaseRow).where(MonitorLeaseRow.name == name).with_for_update()
            ).first()
            if row is None:
                session.add(MonitorLeaseRow(name=name, holder=holder, expires_at=now + ttl))
                return True
            if row.holder != holder and row.expires_at > now:
                return False
            row.holder = holder
            row.expires_at = now + ttl
            return True
    except IntegrityError:
        return False  # another process created the lease at the same moment


def release_lease(db: Database, name: str, holder: str) -> None:
    """Give the lease up (at shutdown) so another worker takes over at once."""
    from vigil.monitor.tables import MonitorLeaseRow  # as above

    with db.session(write=True) as session:
        row = session.get(MonitorLeaseRow, name)
        if row is not None and row.holder == holder:
            row.expires_at = utcnow()


class MonitorScheduler:
    """Runs :func:`~vigil.monitor.cycle.monitor_once` every ``settings.interval_s``, from
    :meth:`start` (the server's lifespan) to :meth:`stop`; built by
    :meth:`vigil.app.Vigil.monitor_scheduler`.

    With ``cycle_root`` (a picklable callable building the composition root, given by the
    root when ``VIGIL_MONITOR_ISOLATION=process``), each cycle runs in a child process
    that calls it; without, in a thread of this process on ``app``.
    """

    def __init__(
        self,
        app: MonitorServices,
        settings: MonitorSettings,
        *,
        cycle_root: Callable[[], MonitorServices] | None = None,
    ) -> None:
        self.vigil = app
        self.settings = settings
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ttl = timedelta(seconds=max(2 * settings.interval_s, 300.0))
        self.runs = 0
        """Cycles this worker ran (for tests and the log)."""
        self.last: CycleResult | None = None
        self.resume: Resume | None = None
        """Where the next cycle may start reading the log (see
        :class:`~vigil.monitor.engine.Resume`); made by the first cycle."""
        self.isolated = CycleProcess(cycle_root) if cycle_root is not None else None
        """Runs the cycles in child processes (``None``: in this process)."""
        self._task: asyncio.Task[None] | None = None
        self._exporter: Any = None

    def __repr__(self) -> str:
        where = "process" if self.isolated is not None else "thread"
        return (
            f"MonitorScheduler(every {self.settings.interval_s}s in a {where}, "
            f"holder={self.holder!r})"
        )

    def tick(self) -> CycleResult | None:
        """One scheduled step (blocking): a cycle if this worker holds the lease, then the
        gauges. Returns the cycle's result, or ``None`` when another worker holds it."""
        result = None
        if acquire_lease(self.vigil.database, LEASE, self.holder, self.ttl):
            with self._renewing():
                if self.isolated is not None:
                    result, self.resume, pid = self.isolated.run(self.settings, self.resume)
                else:
                    result, pid = self._cycle_here(), os.getpid()
            self.runs += 1
            self.last = result
            if result.n_computed or result.events:
                log.info(
                    "monitoring: %d window(s) computed, %d alert transition(s), by process "
                    "%d for worker %d",
                    result.n_computed,
                    len(result.events),
                    pid,
                    os.getpid(),
                )
        self._refresh_gauges()
        return result

    @contextlib.contextmanager
    def _renewing(self) -> Iterator[None]:
        """Renew the lease every third of its time to live while a cycle runs: a cycle may
        outlast it (its timeout is longer), and another worker would start one beside it."""
        stop = threading.Event()
        every = self.ttl.total_seconds() / 3

        def renew() -> None:
            while not stop.wait(every):
                try:
                    if not acquire_lease(self.vigil.database, LEASE, self.holder, self.ttl):
                        log.warning("monitoring lease lost to another worker during a cycle")
                except Exception:
                    log.exception("could not renew the monitoring lease; retrying")

        thread = threading.Thread(target=renew, name="vigil-monitor-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _cycle_here(self) -> CycleResult:
        # Imported here, in the cycle's thread: the statistics stack (pandas, SciPy) stays
        # off the server's path to /readyz.
        from vigil.monitor.cycle import monitor_once
        from vigil.monitor.engine import Resume

        if self.resume is None:
            self.resume = Resume()
        return monitor_once(self.vigil, settings=self.settings, resume=self.resume)

    def _refresh_gauges(self) -> None:
        try:
            if self._exporter is None:
                # prometheus-client is optional: without it there are no gauges to set.
                from vigil.monitor.exporter import MonitorExporter

                self._exporter = MonitorExporter(self.vigil, self.settings)
            self._exporter.refresh()
        except ImportError:
            pass  # prometheus-client is not installed: nothing to export to

    async def _loop(self) -> None:
        delay = min(_FIRST_RUN_DELAY_S, self.settings.interval_s)
        settled = False
        while True:
            await asyncio.sleep(delay)
            delay = self.settings.interval_s
            try:
                await asyncio.to_thread(self.tick)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Monitoring must never take the server down; the next tick retries.
                log.exception("monitoring cycle failed; retrying in %.0fs", delay)
            if not settled:  # the first cycle imported what it needs here for good
                _heap.settle()
                settled = True

    def start(self) -> None:
        """Start the background task (call from the running event loop)."""
        if self.isolated is not None:
            self.isolated.open()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="vigil-monitor")

    async def stop(self) -> None:
        """Cancel the task and release the lease. A cycle running in a child process is
        killed (the next lease holder redoes it); one running in a thread finishes on its
        own."""
        if self.isolated is not None:
            self.isolated.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.to_thread(release_lease, self.vigil.database, LEASE, self.holder)
