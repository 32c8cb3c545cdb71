"""The worker threads a serving app hands blocking or long work to: one small pool per kind.

API-key checks (a database read), feedback (a lock, the capture log, maybe a Parquet scan)
and the decoding of large bodies each get a pool of their own, never the event loop's
shared default executor: there, six slow feedback calls once held every thread, and no
request with a key not yet cached could be checked until the server restarted. A pool
bounds how many threads its kind of work takes; a slow kind queues behind itself only.

The app's builder (:func:`~vigil.serving.app.create_app`) makes them; the data plane shuts
them down when the app stops, after the work in them is done.

>>> pools = Executors.create()
>>> pools.feedback.submit(sum, [1, 2]).result()
3
>>> pools.shutdown()
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

INLINE_BODY_BYTES = 64 * 1024
"""Bodies up to this size are decoded and validated on the event loop (a millisecond or
two at most; handing them to a thread would cost more); larger ones on the decode pool."""

INLINE_CELLS = 16_384
"""Tables of up to this many values (rows x features) are validated on the event loop."""


@dataclass(frozen=True, slots=True)
class Executors:
    """The pools of one serving app (threads start on first use)."""

    auth: ThreadPoolExecutor
    """API-key checks and last-used stamps: database round trips."""
    feedback: ThreadPoolExecutor
    """Feedback submissions; one thread, since the feedback store takes one at a time."""
    decode: ThreadPoolExecutor
    """Parsing and validating large bodies (see :data:`INLINE_BODY_BYTES`)."""
    console: ThreadPoolExecutor
    """The web console's reads, actions and page rendering (:mod:`vigil.ui`): one thread,
    so a console refreshing in many tabs queues behind itself and takes at most one core's
    share of the interpreter from the predictions."""

    @classmethod
    def create(cls) -> Executors:
        return cls(
            auth=ThreadPoolExecutor(max_workers=4, thread_name_prefix="vigil-auth"),
            feedback=ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-feedback"),
            decode=ThreadPoolExecutor(max_workers=2, thread_name_prefix="vigil-decode"),
            console=ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-console"),
        )

    def shutdown(self) -> None:
        """Stop taking work and wait for what each pool holds (stored feedback stays
        stored)."""
        for pool in (self.auth, self.feedback, self.decode, self.console):
            pool.shutdown(wait=True)

    async def decoding(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on the decode pool, awaited from the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.decode, fn, *args)
