"""Read the feedback store a batch at a time, keeping only the rows a reader wants.

:meth:`FeedbackStore.read <vigil.feedback.store.FeedbackStore.read>` builds one frame of
every feedback ever stored; :func:`read_feedback_where` reads the compacted parts
``batch_rows`` at a time and the live segments not compacted yet (through the store's own
walk, as ``read`` and ``read_predicted`` do), and holds only the rows ``keep`` selects
(e.g. the request ids of one endpoint), so memory holds a batch and what is kept, not the
store. The result is what ``read_table`` would give filtered by ``keep``: one row per
``(request_id, row, caller)``, the first to arrive (the key includes the request id, so
keeping rows by request id before choosing the first arrival chooses the same row).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vigil.capture.table import concat
from vigil.feedback.store import _first_arrivals

if TYPE_CHECKING:
    from vigil.feedback.store import FeedbackStore

__all__ = ["BATCH_ROWS", "read_feedback_where"]

BATCH_ROWS = 65_536
"""Feedback rows read at a time from a compacted part."""

Keep = Callable[[pa.Table], Any]
"""``keep(table)``: a boolean mask (array-like, one value per row) of the rows to hold."""


def read_feedback_where(
    store: FeedbackStore, keep: Keep, *, batch_rows: int = BATCH_ROWS
) -> pa.Table | None:
    """The stored feedback rows ``keep`` selects, one per ``(request_id, row, caller)`` (the
    first to arrive); ``None`` when there is none. See the module docstring."""
    import pyarrow.parquet as pq  # Parquet: only where a partition is read

    def kept(table: pa.Table) -> pa.Table:
        return table.filter(pa.array(keep(table), pa.bool_()))

    def part(fh: Any) -> Iterator[pa.Table]:
        for batch in pq.ParquetFile(fh).iter_batches(batch_size=batch_rows):
            yield kept(pa.Table.from_batches([batch]))

    tables = store._walk(None, part, kept)
    if not tables:
        return None
    return _first_arrivals(concat(tables))
