"""Compaction while serving: closed segments become Parquet, old partitions go.

Every serving worker runs a :class:`Compactor` in the background. A pass has two halves:

- what only the writer of a live segment can do, in the worker itself
  (:meth:`Compactor.rotate_own`, cheap): close its live segments when an erasure asked it
  to (:func:`~vigil.capture.erase.request_rotation`: an erasure cannot rewrite a file that
  a running writer appends to), or when they are past their size or age, so an idle
  worker's records still reach Parquet;
- the rest (:meth:`Compactor.compact_closed`), which only runs in the process that takes
  the directory's ``compaction.lock`` (``flock``, so a killed holder releases it at once;
  the others skip that round):

  1. compact every closed segment, including the live segments of dead processes (a
     ``kill -9``-ed worker's records are recovered here; see
     :meth:`~vigil.capture.log.SegmentLog.closed_segments`), for capture and feedback;
  2. delete partitions older than the retention period.

  Decoding segments and writing Parquet hold the GIL for seconds: inside ``vigil serve``
  this half runs in a child process per pass (:mod:`vigil.capture.isolation`,
  ``VIGIL_CAPTURE_COMPACT_ISOLATION=process``, the default), so it never takes the serving
  event loop's turns; a crashed or killed child is logged and the next pass starts a new
  one. :meth:`Compactor.run_once` runs both halves here, synchronously.

A pass with nothing to do is not started (:meth:`Compactor.has_work`: no closed segment, no
dead writer's live one, retention not due), so an idle server starts no child per
interval.

Each of these steps runs whatever became of the others: a capture log that cannot be
compacted right now (the store unreachable, a segment unreadable) neither holds back the
feedback nor stops old partitions from expiring. A failed step is logged with its
traceback and tried again at the next pass; its segments stay on disk meanwhile. A record
that can never be stored is quarantined by :func:`~vigil.capture.compact.compact` rather
than failing its step forever.

The first pass runs as soon as the worker starts, so a restart recovers what a crash left.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field, replace
from typing import TYPE_CHECKING, Protocol, TypeVar

from vigil._child import ChildError
from vigil.capture.compact import CompactionResult, apply_retention, compact
from vigil.capture.erase import ROTATE_REQUEST

if TYPE_CHECKING:
    from pathlib import Path

    from vigil.capture.log import SegmentLog
    from vigil.storage.artifacts import ArtifactStore

log = logging.getLogger("vigil.capture")

LOCK_NAME = "compaction.lock"
RETENTION_EVERY_S = 3600.0
"""How often :meth:`Compactor.run` applies retention when there is nothing to compact."""
_T = TypeVar("_T")


@dataclass(frozen=True)
class CompactionPass:
    """What one pass did (``None`` parts when the pass had nothing of that kind to do, or
    when that step failed: ``failed`` names the steps that did)."""

    capture: CompactionResult | None
    feedback: CompactionResult | None
    deleted: list[str]
    failed: list[str] = field(default_factory=list)
    pid: int = field(default_factory=os.getpid)
    """The process that ran the pass: the worker's, or its child's
    (:mod:`vigil.capture.isolation`)."""

    @property
    def quarantined(self) -> int:
        """Records set aside by this pass (see :mod:`vigil.capture.compact`)."""
        return sum(r.quarantined for r in (self.capture, self.feedback) if r is not None)


class Companion(Protocol):
    """A log compacted and expired alongside the capture log: the
    :class:`~vigil.feedback.store.FeedbackStore` of the same home."""

    @property
    def log(self) -> SegmentLog: ...

    def compact(self) -> CompactionResult: ...

    def apply_retention(self, retention_days: int) -> list[str]: ...


@dataclass(repr=False, eq=False)
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

    log: SegmentLog
    store: ArtifactStore
    _: KW_ONLY
    feedback: Companion | None = None
    retention_days: int | None = None
    interval_s: float = 60.0
    passes: int = field(default=0, init=False, repr=False)
    """Passes :meth:`run` has ended so far, done, failed or skipped (for tests and
    diagnostics)."""
    skipped: int = field(default=0, init=False, repr=False)
    """Passes :meth:`run` skipped: nothing to compact and retention not due."""
    _retained_at: float | None = field(default=None, init=False, repr=False)
    _rotation_seen: int = field(default=0, init=False, repr=False)

    @property
    def lock_path(self) -> Path:
        return self.log.directory / LOCK_NAME

    def __repr__(self) -> str:
        return f"Compactor({self.log!r}, {self.store!r}, interval_s={self.interval_s})"

    def rotate_if_requested(self) -> bool:
        """Close this worker's live segments when an erasure asked every writer to
        (:func:`~vigil.capture.erase.request_rotation`) since this worker last looked."""
        try:
            stamp = (self.log.directory / ROTATE_REQUEST).stat().st_mtime_ns
        except FileNotFoundError:
            return False
        if stamp == self._rotation_seen:
            return False
        self._rotation_seen = stamp
        self.log.rotate()
        if self.feedback is not None:
            self.feedback.log.rotate()
        return True

    def rotate_own(self) -> list[str]:
        """Close this worker's live segments when an erasure asked it to
        (:meth:`rotate_if_requested`) or when they are past their size or age; the names
        of the steps that failed (logged)."""
        failed: list[str] = []
        self._step("requested rotation", failed, self.rotate_if_requested)
        self._step("capture rotation", failed, self.log.rotate_if_due)
        if self.feedback is not None:
            self._step("feedback rotation", failed, self.feedback.log.rotate_if_due)
        return failed

    def has_work(self) -> bool:
        """Whether a pass would do anything: a segment to compact in the capture or the
        feedback log (a dead writer's live one included), or retention due (it runs with
        every pass that compacts, and at least every :data:`RETENTION_EVERY_S` besides).
        Cheap: a worker asks before starting a pass (and its child process) at all."""
        if self.log.compactable():
            return True
        if self.feedback is not None and self.feedback.log.compactable():
            return True
        return self.retention_days is not None and (
            self._retained_at is None or time.monotonic() - self._retained_at >= RETENTION_EVERY_S
        )

    def compact_closed(self) -> CompactionPass | None:
        """Compact every closed segment and apply retention, or ``None`` when another
        process holds the lock right now. Touches no live segment of a running writer: a
        child process can run it for the worker (:mod:`vigil.capture.isolation`)."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            failed: list[str] = []
            captured = self._step("capture compaction", failed, self._compact_capture)
            fed = None
            if self.feedback is not None:
                fed = self._step("feedback compaction", failed, self._compact_feedback)
            deleted: list[str] = []
            if self.retention_days is not None:
                deleted += self._step("capture retention", failed, self._expire_capture) or []
                if self.feedback is not None:
                    deleted += self._step("feedback retention", failed, self._expire_feedback) or []
            return CompactionPass(captured, fed, deleted, failed)
        finally:
            os.close(fd)  # releases the lock

    def run_once(self) -> CompactionPass | None:
        """One whole pass here (:meth:`rotate_own`, then :meth:`compact_closed`), or
        ``None`` when another process holds the lock right now. Every worker honours a
        rotation request (one ``stat``), lock or not."""
        rotation = self.rotate_own()
        done = self.compact_closed()
        if done is None or not rotation:
            return done
        return replace(done, failed=rotation + done.failed)

    def _compact_capture(self) -> CompactionResult:
        return compact(self.log, self.store)

    def _compact_feedback(self) -> CompactionResult:
        assert self.feedback is not None
        return self.feedback.compact()

    def _expire_capture(self) -> list[str]:
        assert self.retention_days is not None
        return apply_retention(self.store, self.retention_days)

    def _expire_feedback(self) -> list[str]:
        assert self.retention_days is not None and self.feedback is not None
        return self.feedback.apply_retention(self.retention_days)

    def _step(self, name: str, failed: list[str], step: Callable[[], _T]) -> _T | None:
        try:
            return step()
        except Exception:
            failed.append(name)
            log.exception("%s failed; retrying in %.0f s", name, self.interval_s)
            return None

    def _rotated_with_work(self) -> bool:
        """:meth:`rotate_own`, then whether the pass has anything to do (:meth:`has_work`;
        when it has, retention counts as applied from now)."""
        self.rotate_own()
        if not self.has_work():
            return False
        if self.retention_days is not None:
            self._retained_at = time.monotonic()
        return True

    @staticmethod
    def _log_pass(done: CompactionPass | None) -> None:
        rows = done.capture.rows if done is not None and done.capture else 0
        if done is not None and (rows or done.deleted or done.quarantined):
            log.info(
                "compacted %d capture rows; %d partitions expired; %d records "
                "quarantined (by process %d for process %d)",
                rows,
                len(done.deleted),
                done.quarantined,
                done.pid,
                os.getpid(),
            )

    async def run(self, compact_closed: Callable[[], CompactionPass | None] | None = None) -> None:
        """Pass after pass until cancelled, off the event loop: :meth:`rotate_own` in a
        thread, then ``compact_closed`` (default :meth:`compact_closed`, in a thread of
        this process; :meth:`CompactionProcess.run
        <vigil.capture.isolation.CompactionProcess.run>` runs it in a child process),
        skipped when there is nothing to do (:meth:`has_work`). A failure is logged and
        retried at the next interval (the segments stay on disk meanwhile)."""
        closed = compact_closed if compact_closed is not None else self.compact_closed
        while True:
            try:
                if await asyncio.to_thread(self._rotated_with_work):
                    self._log_pass(await asyncio.to_thread(closed))
                else:
                    self.skipped += 1
            except asyncio.CancelledError:
                raise
            except ChildError as e:  # the child logged its own traceback, if it could
                log.error(
                    "capture compaction failed in process %s; retrying in %.0f s: %s",
                    e.pid,
                    self.interval_s,
                    e.reason,
                )
            except Exception:
                log.exception("capture compaction failed; retrying in %.0f s", self.interval_s)
            self.passes += 1
            await asyncio.sleep(self.interval_s)
