"""Group commit: every prediction answered by one model call is logged by one write.

The serving hot path must log a request *before* replying (else a ``kill -9`` right after
the reply loses it) yet cannot afford a system call and a JSON encoding per request. The
micro-batcher answers many requests with one model call; before it releases any of them it
hands their :class:`~vigil.capture.sink.Answered` entries to :meth:`GroupCommit.write`,
which encodes them as columnar batches and appends them with one ``os.write``. If the write
fails it raises, and the batcher fails every one of those requests instead, so none
answers 2xx. Logging at the batch costs a request no suspension of its own.

>>> import tempfile, numpy as np
>>> from vigil.capture.log import SegmentLog, read_segment
>>> from vigil.capture.sink import Answered, CaptureSink
>>> commit = GroupCommit(CaptureSink(SegmentLog(tempfile.mkdtemp())))
>>> commit.write(
...     [Answered(f"r{i}", "m", 1, np.array([[float(i)]]), ["x"], np.array([i])) for i in range(5)]
... )
>>> commit.writes, commit.requests
(1, 5)
>>> [r["features"]["x"] for r in read_segment(commit.sink.log.rotate())[0]]
[0.0, 1.0, 2.0, 3.0, 4.0]
"""

from __future__ import annotations

from vigil.capture.sink import Answered, CaptureSink


class GroupCommit:
    """Appends the requests one model call answered with one write, and counts them."""

    def __init__(self, sink: CaptureSink) -> None:
        self.sink = sink
        self.writes = 0
        """Writes made so far (for tests and diagnostics)."""
        self.requests = 0
        """Requests logged so far."""

    def __repr__(self) -> str:
        return f"GroupCommit({self.sink!r})"

    def write(self, entries: list[Answered]) -> None:
        """Log ``entries`` with one write; raises what the sink raises (nothing is counted
        then), before any of their replies may go out."""
        if not entries:
            return
        self.sink.record_answered(entries)
        self.writes += 1
        self.requests += len(entries)
