"""Shadow traffic: copies of requests sent to challengers off the hot path, bounded.

The primary variant answers the client; :meth:`ShadowRunner.submit` then starts each
shadow's prediction as its own task. The handler returns without waiting, so the client's
answer and its latency never depend on a shadow. At most ``limit`` shadow predictions run
at once per worker: past that, copies are dropped and counted (:attr:`ShadowRunner.dropped`)
rather than queued, so a slow challenger can never pile up memory or starve the primary.

>>> import asyncio
>>> async def demo():
...     runner = ShadowRunner(limit=1)
...     gate = asyncio.Event()
...     first = runner.submit(gate.wait())
...     coro = asyncio.sleep(0)
...     second = runner.submit(coro)
...     coro.close()
...     gate.set()
...     await runner.drain(1.0)
...     return first, second, runner.completed, runner.dropped
>>> asyncio.run(demo())
(True, False, 1, 1)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("vigil.experiments")


class ShadowRunner:
    """Runs fire-and-forget shadow predictions, at most ``limit`` at once."""

    def __init__(self, *, limit: int = 64) -> None:
        self.limit = limit
        self.in_flight = 0
        self.completed = 0
        self.failed = 0
        self.dropped = 0
        # Strong references: the event loop keeps only weak ones to running tasks.
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return (
            f"ShadowRunner(limit={self.limit}, in_flight={self.in_flight}, "
            f"completed={self.completed}, failed={self.failed}, dropped={self.dropped})"
        )

    def submit(self, work: Coroutine[Any, Any, Any]) -> bool:
        """Start ``work`` in the background; ``False`` (and ``work`` not started: the caller
        closes it) when ``limit`` copies are already running."""
        if self.in_flight >= self.limit:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "shadow traffic dropped (%d so far): %d shadow predictions already running",
                    self.dropped,
                    self.in_flight,
                )
            return False
        self.in_flight += 1
        task = asyncio.get_running_loop().create_task(self._run(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
            self.completed += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            # The shadow's own failure is recorded in its variant's counters by the caller;
            # here it only must not escape as "Task exception was never retrieved".
            self.failed += 1
        finally:
            self.in_flight -= 1

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for running copies, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
