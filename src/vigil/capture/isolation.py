"""The closed segments' compaction in a child process, so it never shares the GIL of the
serving worker (``VIGIL_CAPTURE_COMPACT_ISOLATION=process``, the default).

Decoding segments (and decrypting them), building Arrow tables and writing Parquet hold
the GIL for seconds per pass: run in a thread of the worker, a pass took the event loop's
turns and the worker's throughput fell by two thirds while it ran (docs/benchmarks.md,
"Compaction off the worker (session 13)"). The worker keeps what only a segment's writer
can do, and is cheap: closing its own live segments
(:meth:`~vigil.capture.compactor.Compactor.rotate_own`). Everything else of a pass
(:meth:`~vigil.capture.compactor.Compactor.compact_closed`: the compaction lock, every
closed segment of capture and feedback, the live segments of dead workers, retention) runs
in a child process per pass, the design of the monitoring cycles
(:class:`vigil._child.ChildProcess`: forked by a forkserver, at a lower CPU priority, dying
with the worker):

- The child builds its :class:`~vigil.capture.compactor.Compactor` through the composition
  root from the server's own settings objects (``root``, a picklable callable: see
  :func:`vigil.app.compaction_root`): the same directories, artifact store (local or S3)
  and log codec, whose keys it reads from the key file as the worker does. The masking
  rules and their hash key stay in the worker: compaction never masks.
- Its own log object has no live segment, so its pid confuses no one: a live segment is
  recovered only when its writer's ``flock`` is free (the worker holds its own).
- It takes the ``compaction.lock`` itself: a pass still runs in one process at a time
  across workers, and a killed child releases the lock with its death.
- A child that dies mid-pass (killed, out of memory) is logged by the worker, and the next
  pass starts a new one, which compacts what it left: a part's name derives from its
  segment, and a segment is deleted only once all its parts are stored
  (:mod:`vigil.capture.compact`). The server stopping kills a running pass instead of
  waiting for it, for the same reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vigil._child import ChildProcess

if TYPE_CHECKING:
    from collections.abc import Callable

    from vigil.capture.compactor import CompactionPass, Compactor

PRELOAD = ["vigil.app", "vigil.capture.compact", "vigil.feedback.store"]
"""What the forkserver imports once, so each pass's child starts with it (PyArrow, the
store): the composition root and the compaction stack."""


class CompactionProcess:
    """Runs :meth:`~vigil.capture.compactor.Compactor.compact_closed` of the compactor
    ``root()`` builds, in a child process per call of :meth:`run`; :meth:`close` kills
    the running one and refuses new ones."""

    def __init__(self, root: Callable[[], Compactor]) -> None:
        self.root = root
        self._children: ChildProcess[CompactionPass | None] = ChildProcess(
            "vigil-compaction", label="capture compaction", preload=PRELOAD
        )

    def __repr__(self) -> str:
        return f"CompactionProcess({self._children!r}, root={self.root!r})"

    def run(self) -> CompactionPass | None:
        """One pass in a child (blocking): what it did, or ``None`` when another process
        held the lock. Raises :class:`~vigil._child.ChildError` when the child failed
        outside the pass's steps (building the compactor), died, or was closed."""
        done, _pid = self._children.run(_compact_closed, self.root)
        return done

    def open(self) -> None:
        """Accept passes again after :meth:`close`."""
        self._children.open()

    def close(self) -> None:
        """Kill the running pass (if any) and refuse new ones: the next pass, here or in
        another worker, compacts what it left."""
        self._children.close()


def _compact_closed(root: Callable[[], Compactor]) -> CompactionPass | None:
    """The pass, in the child."""
    return root().compact_closed()
