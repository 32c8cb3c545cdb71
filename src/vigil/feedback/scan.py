"""Stream the feedback store a batch at a time, keeping only the rows a reader wants.

:meth:`FeedbackStore.read <vigil.feedback.store.FeedbackStore.read>` builds one frame of
every feedback ever stored; :func:`read_feedback_where` reads the compacted parts
``batch_rows`` at a time and the live segments not compacted yet (as ``read`` does), and
holds only the rows ``keep`` selects (e.g. the request ids of one endpoint), so memory
holds a batch and what is kept, not the store. The result is what ``read_table`` would
give filtered by ``keep``: one row per ``(request_id, row, caller)``, the first to arrive
(the key includes the request id, so keeping rows by request id before choosing the first
arrival chooses the same row).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vigil.capture.compact import partition_dirs
from vigil.capture.log import read_segment, segment_id
from vigil.capture.table import concat, readable_table
from vigil.feedback.store import FEEDBACK_ROOT, _first_arrivals, feedback_table

if TYPE_CHECKING:
    from vigil.feedback.store import FeedbackStore

__all__ = ["BATCH_ROWS", "feedback_batches", "read_feedback_where"]

BATCH_ROWS = 65_536
"""Feedback rows read at a time from a compacted part."""

Keep = Callable[[pa.Table], Any]
"""``keep(table)``: a boolean mask (array-like, one value per row) of the rows to hold."""


def feedback_batches(store: FeedbackStore, *, batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """Every stored feedback row, compacted parts first (``batch_rows`` at a time), then the
    live segments whose part does not exist yet; duplicates are not removed here."""
    import pyarrow.parquet as pq  # Parquet: only where a partition is read

    compacted: set[str] = set()
    if store.store is not None:
        fs = store.store.fs
        for path, _day in partition_dirs(store.store, root=FEEDBACK_ROOT, pattern="date=*"):
            for found in sorted(fs.glob(f"{path}/part-*.parquet")):
                compacted.add(str(found).rsplit("/", 1)[-1][len("part-") : -len(".parquet")])
                with fs.open(found, "rb") as fh:
                    for batch in pq.ParquetFile(fh).iter_batches(batch_size=batch_rows):
                        if batch.num_rows:
                            yield pa.Table.from_batches([batch])
    for seg in store.log.all_segments():
        sid = segment_id(seg)
        if sid in compacted:
            continue
        try:
            records, _torn = read_segment(seg)
        except FileNotFoundError:
            continue  # compacted while we listed
        if records:
            table = readable_table(feedback_table, records, segment=sid, what="feedback")
            if table is not None and table.num_rows:
                yield table


def read_feedback_where(
    store: FeedbackStore, keep: Keep, *, batch_rows: int = BATCH_ROWS
) -> pa.Table | None:
    """The stored feedback rows ``keep`` selects, one per ``(request_id, row, caller)`` (the
    first to arrive); ``None`` when there is none. See the module docstring."""
    tables: list[pa.Table] = []
    for table in feedback_batches(store, batch_rows=batch_rows):
        kept = table.filter(pa.array(keep(table), pa.bool_()))
        if kept.num_rows:
            tables.append(kept)
    if not tables:
        return None
    return _first_arrivals(concat(tables))
