"""What a serving worker runs for the inference log, built from its capture settings.

:class:`CaptureRuntime` bundles the pieces the data plane calls: the
:class:`~vigil.capture.sink.CaptureSink` (behind a :class:`~vigil.capture.group.GroupCommit`
for answered requests), the :class:`~vigil.feedback.store.FeedbackStore` matched against
the same log, and the background :class:`~vigil.capture.compactor.Compactor`. It knows
nothing of HTTP: the composition root (:meth:`vigil.app.Vigil.capture_runtime`) builds one
per worker, and the data plane starts and stops it with the worker.

The compactor closes this worker's own live segments here; the rest of each pass runs in
a child process (:mod:`vigil.capture.isolation`) when the root hands the runtime a
``compaction_root`` to build the child's compactor with, else in a thread of the worker.

Only the sink is built with the runtime: it is all a prediction needs. The feedback store
and the compactor (and PyArrow behind them) are built in a thread once the worker takes
traffic (:meth:`~vigil.serving.dataplane.DataPlane.started`), or on first use by a feedback
request, whichever comes first, so they never delay the worker's readiness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import vigil._heap as _heap
from vigil.capture.group import GroupCommit
from vigil.capture.isolation import CompactionProcess
from vigil.capture.sink import CaptureSink

if TYPE_CHECKING:
    from vigil.capture.compactor import Compactor
    from vigil.capture.crypt import LogCodec
    from vigil.capture.settings import CaptureSettings
    from vigil.feedback.store import FeedbackStore
    from vigil.storage.artifacts import ArtifactStore

Parts = tuple["FeedbackStore | None", "Compactor | None"]

log = logging.getLogger("vigil.capture")


class CaptureRuntime:
    """The capture sink, feedback store and compactor of one serving worker.

    >>> import tempfile, pathlib
    >>> from vigil.capture.settings import CaptureSettings
    >>> home = pathlib.Path(tempfile.mkdtemp())
    >>> runtime = CaptureRuntime.from_settings(CaptureSettings(), home=home, store=None)
    >>> runtime.sink.log.directory == home / "capture", runtime.compactor
    (True, None)
    >>> CaptureRuntime.from_settings(CaptureSettings(enabled=False), home=home, store=None)
    """

    def __init__(
        self,
        sink: CaptureSink,
        *,
        feedback: FeedbackStore | None = None,
        compactor: Compactor | None = None,
        build: Callable[[], Parts] | None = None,
        isolated: CompactionProcess | None = None,
    ) -> None:
        self.sink = sink
        self.commit = GroupCommit(sink)
        self._feedback = feedback
        self._compactor = compactor
        self._build = build
        """Makes the feedback store and compactor on first need (see the module docstring)."""
        self.isolated = isolated
        """Runs the compactor's passes in child processes (``None``: in this process)."""
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"CaptureRuntime({self.sink!r}, feedback={self._feedback!r})"

    def _parts(self) -> None:
        with self._lock:
            if self._build is not None:
                self._feedback, self._compactor = self._build()
                self._build = None

    @property
    def feedback(self) -> FeedbackStore | None:
        """The feedback store matched against this log (built on first use)."""
        self._parts()
        return self._feedback

    @property
    def compactor(self) -> Compactor | None:
        """The background compactor (built on first use; ``None`` without a store)."""
        self._parts()
        return self._compactor

    @classmethod
    def from_settings(
        cls,
        settings: CaptureSettings,
        *,
        home: Path,
        store: ArtifactStore | None,
        codec: LogCodec | None = None,
        compaction_root: Callable[[], Compactor] | None = None,
    ) -> CaptureRuntime | None:
        """The runtime ``settings`` describe under ``home`` (``None`` when capture is off).

        Without an artifact store there is nothing to compact into: segments stay on disk
        (and are still read back) until a store is configured. ``codec`` encrypts what the
        log writes (the store should carry the same one, to read it back).
        ``compaction_root``, a picklable callable building the same compactor in another
        process (:func:`vigil.app.compaction_root`), runs the passes in child processes.
        """
        sink = CaptureSink.from_settings(settings, home, codec=codec)
        if sink is None:
            return None

        def build() -> Parts:
            # PyArrow is behind both: imported once the worker is up (module docstring).
            from vigil.capture.compactor import Compactor
            from vigil.feedback.store import FeedbackStore

            feedback = FeedbackStore.from_settings(settings, home, store)
            compactor = (
                Compactor(
                    sink.log,
                    store,
                    feedback=feedback,
                    retention_days=settings.retention_days,
                    interval_s=settings.compact_interval_s,
                )
                if store is not None
                else None
            )
            return feedback, compactor

        isolated = (
            CompactionProcess(compaction_root)
            if compaction_root is not None and store is not None
            else None
        )
        return cls(sink, build=build, isolated=isolated)

    def start(self) -> None:
        """Build the feedback store and compactor in a thread, then compact in the
        background (the first pass recovers what dead workers left); from the running
        event loop, once the worker takes traffic."""
        if self._task is None:
            if self.isolated is not None:
                self.isolated.open()
            self._task = asyncio.get_running_loop().create_task(self._background())

    async def _background(self) -> None:
        await asyncio.to_thread(self._parts)
        _heap.settle()  # PyArrow and the store are here for good now
        if self._compactor is not None:
            await self._compactor.run(self.isolated.run if self.isolated is not None else None)

    async def stop(self) -> None:
        """Stop compacting (a pass in a child process is killed, not waited for: the next
        pass finishes it) and close the live segments (they become compactable)."""
        if self.isolated is not None:
            self.isolated.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.sink.close()
        if self._feedback is not None:
            self._feedback.close()
