"""Compaction while serving: closed segments become Parquet, old partitions go.

Every serving worker runs a :class:`Compactor` in the background, but a pass only runs in
the worker that takes the directory's ``compaction.lock`` (``flock``, so a killed holder
releases it at once); the others skip that round. A pass:

1. closes this worker's live segments when they are past their size or age, so an idle
   worker's records still reach Parquet;
2. compacts every closed segment, including the live segments of dead processes (a
   ``kill -9``-ed worker's records are recovered here; see
   :meth:`~vigil.capture.log.SegmentLog.closed_segments`), for capture and feedback;
3. deletes partitions older than the retention period.

The first pass runs as soon as the worker starts, so a restart recovers what a crash left.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vigil.capture.compact import CompactionResult, apply_retention, compact

if TYPE_CHECKING:
    from vigil.capture.log import SegmentLog
    from vigil.feedback.store import FeedbackStore
    from vigil.storage.artifacts import ArtifactStore

log = logging.getLogger("vigil.capture")

LOCK_NAME = "compaction.lock"


@dataclass(frozen=True)
class CompactionPass:
    """What one pass did (``None`` parts when the pass had nothing of that kind to do)."""

    capture: CompactionResult
    feedback: CompactionResult | None
    deleted: list[str]


class Compactor:
    """Compacts a capture log (and a feedback store) into ``store``, one process at a time.

    Parameters
    ----------
    log:
        This worker's capture log; its directory holds every worker's segments.
    store:
        Artifact store receiving the Parquet partitions.
    feedback:
        Feedback store compacted alongside (optional).
    retention_days:
        Partitions older than this are deleted; ``None`` keeps everything.
    interval_s:
        Seconds between two passes of :meth:`run`.
    """

    def __init__(
        self,
        log: SegmentLog,
        store: ArtifactStore,
        *,
        feedback: FeedbackStore | None = None,
        retention_days: int | None = None,
        interval_s: float = 60.0,
    ) -> None:
        self.log = log
        self.store = store
        self.feedback = feedback
        self.retention_days = retention_days
        self.interval_s = interval_s
        self.lock_path = log.directory / LOCK_NAME

    def __repr__(self) -> str:
        return f"Compactor({self.log!r}, {self.store!r}, interval_s={self.interval_s})"

    def run_once(self) -> CompactionPass | None:
        """One pass, or ``None`` when another process holds the lock right now."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            self.log.rotate_if_due()
            captured = compact(self.log, self.store)
            fed = None
            if self.feedback is not None:
                self.feedback.log.rotate_if_due()
                fed = self.feedback.compact()
            deleted: list[str] = []
            if self.retention_days is not None:
                deleted = apply_retention(self.store, self.retention_days)
                if self.feedback is not None:
                    deleted += self.feedback.apply_retention(self.retention_days)
            return CompactionPass(captured, fed, deleted)
        finally:
            os.close(fd)  # releases the lock

    async def run(self) -> None:
        """Pass after pass until cancelled, off the event loop; a failure is logged and
        retried at the next interval (the segments stay on disk meanwhile)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                done = await loop.run_in_executor(None, self.run_once)
                if done is not None and (done.capture.rows or done.deleted):
                    log.info(
                        "compacted %d capture rows from %d segments; %d partitions expired",
                        done.capture.rows,
                        done.capture.segments,
                        len(done.deleted),
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("capture compaction failed; retrying in %.0f s", self.interval_s)
            await asyncio.sleep(self.interval_s)
