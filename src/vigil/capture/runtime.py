"""What a serving worker runs for the inference log, built from :class:`CaptureSettings`.

:class:`CaptureRuntime` bundles the pieces the data plane calls: the
:class:`~vigil.capture.sink.CaptureSink` (behind a :class:`~vigil.capture.group.GroupCommit`
for answered requests), the :class:`~vigil.feedback.store.FeedbackStore` matched against
the same log, and the background :class:`~vigil.capture.compactor.Compactor`. It knows
nothing of HTTP: the server builds one per worker and starts and stops it with the worker.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from vigil.capture.compactor import Compactor, stop_task
from vigil.capture.group import GroupCommit
from vigil.capture.settings import CaptureSettings
from vigil.capture.sink import CaptureSink

if TYPE_CHECKING:
    from vigil.feedback.store import FeedbackStore
    from vigil.storage.artifacts import ArtifactStore

log = logging.getLogger("vigil.capture")


class CaptureRuntime:
    """The capture sink, feedback store and compactor of one serving worker.

    >>> import tempfile, pathlib
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
    ) -> None:
        self.sink = sink
        self.commit = GroupCommit(sink)
        self.feedback = feedback
        self.compactor = compactor
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"CaptureRuntime({self.sink!r}, feedback={self.feedback!r})"

    @classmethod
    def from_settings(
        cls, settings: CaptureSettings, *, home: Path, store: ArtifactStore | None
    ) -> CaptureRuntime | None:
        """The runtime ``settings`` describe under ``home`` (``None`` when capture is off).

        Without an artifact store there is nothing to compact into: segments stay on disk
        (and are still read back) until a store is configured.
        """
        from vigil.feedback.store import FeedbackStore

        sink = CaptureSink.from_settings(settings, home)
        if sink is None:
            return None
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
        return cls(sink, feedback=feedback, compactor=compactor)

    async def start(self) -> None:
        """Start background compaction (its first pass recovers what dead workers left)."""
        if self.compactor is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.compactor.run())

    async def stop(self) -> None:
        """Stop compacting and close the live segments (they become compactable)."""
        await stop_task(self._task)
        self._task = None
        self.commit.flush()
        self.sink.close()
        if self.feedback is not None:
            self.feedback.close()
