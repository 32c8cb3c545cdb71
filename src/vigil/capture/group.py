"""Group commit: every prediction answered in one event-loop tick is logged by one write.

The serving hot path must log a request *before* replying (else a ``kill -9`` right after
the reply loses it) yet cannot afford a system call and a JSON encoding per request. The
micro-batcher resolves all requests of a model call in the same tick, so their handlers
resume together: each hands its :class:`~vigil.capture.sink.Answered` to
:meth:`GroupCommit.submit` and awaits the returned future. The first submission of a tick
schedules :meth:`GroupCommit.flush` with ``call_soon``, which runs after every handler
already woken in that tick has submitted; it encodes them as columnar batches and appends
them with one ``os.write``, then releases every waiting handler at once. If the write
fails, every one of them raises instead, so none answers 2xx.

>>> import asyncio, tempfile, numpy as np
>>> from vigil.capture.log import SegmentLog, read_segment
>>> from vigil.capture.sink import Answered, CaptureSink
>>> commit = GroupCommit(CaptureSink(SegmentLog(tempfile.mkdtemp())))
>>> async def answer(i):
...     entry = Answered(f"r{i}", "m", 1, np.array([[float(i)]]), ["x"], np.array([i]))
...     await commit.submit(entry)
>>> async def main():
...     await asyncio.gather(*(answer(i) for i in range(5)))
>>> asyncio.run(main())
>>> commit.writes, commit.requests
(1, 5)
>>> [r["features"]["x"] for r in read_segment(commit.sink.log.rotate())[0]]
[0.0, 1.0, 2.0, 3.0, 4.0]
"""

from __future__ import annotations

import asyncio

from vigil.capture.sink import Answered, CaptureSink


class GroupCommit:
    """Collects answered requests per event-loop tick and appends them with one write."""

    def __init__(self, sink: CaptureSink) -> None:
        self.sink = sink
        self._pending: list[Answered] = []
        self._done: asyncio.Future[None] | None = None
        self.writes = 0
        """Writes made so far (for tests and diagnostics)."""
        self.requests = 0
        """Requests logged so far."""

    def __repr__(self) -> str:
        return f"GroupCommit({self.sink!r})"

    def submit(self, entry: Answered) -> asyncio.Future[None]:
        """Queue ``entry`` for this tick's write; await the result before replying."""
        done = self._done
        if done is None:
            loop = asyncio.get_running_loop()
            done = self._done = loop.create_future()
            loop.call_soon(self.flush)
        self._pending.append(entry)
        return done

    def flush(self) -> None:
        """Write everything queued (normally called by the event loop, once per tick)."""
        pending, done = self._pending, self._done
        self._pending, self._done = [], None
        if not pending:
            return
        try:
            self.sink.record_answered(pending)
        except Exception as exc:
            if done is not None and not done.done():
                done.set_exception(exc)
                done.exception()  # every waiter re-raises it; none must be warned about
            return
        self.writes += 1
        self.requests += len(pending)
        if done is not None and not done.done():
            done.set_result(None)
