"""Export captured rows (and their labels) to one Parquet file, streaming.

``vigil capture export`` and the closed loop's training data: the rows come from a
:func:`~vigil.capture.scan.scan_capture` scan (partitions pruned by model and day, only
the columns asked for, record batches) and are written batch by batch with a Parquet
writer, to a temporary file renamed into place at the end (all or nothing). With labels,
only the feedback that arrived since the span's start is read (a label comes after its
prediction; for one model's bounded span, only the feedback on its predictions of the span:
:meth:`~vigil.feedback.store.FeedbackStore.read_predicted`), and each batch takes its
labels by request id (:func:`~vigil.feedback.join.join_feedback`); rows without a label
are left out. Memory holds a batch and the span's labels, never the span's rows.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from vigil.capture.scan import scan_capture
from vigil.feedback.join import join_feedback

if TYPE_CHECKING:
    import pandas as pd

    from vigil.feedback.store import FeedbackStore
    from vigil.storage.artifacts import ArtifactStore

Progress = Callable[[int], None]
"""Called with the rows written so far."""
_JOIN_COLUMNS = ("request_id", "row", "caller")


@dataclass(frozen=True)
class Export:
    """What :func:`export_capture` wrote."""

    path: Path
    rows: int
    columns: list[str]
    parts: int
    """Compacted parts read (after pruning by model and day)."""


def _labels_of(batch: pa.RecordBatch, feedback: pd.DataFrame) -> pd.DataFrame:
    import pyarrow.compute as pc  # Arrow compute: a hash lookup of the batch's ids

    ids = pa.array(feedback["request_id"].astype(str).to_numpy(object))
    hit = pc.is_in(ids, value_set=batch.column("request_id").cast(pa.string()))
    mine = feedback[hit.to_numpy(zero_copy_only=False)]
    return join_feedback(batch.to_pandas(), mine)


def export_capture(
    path: str | Path,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    version: int | None = None,
    *,
    columns: list[str] | None = None,
    feedback: FeedbackStore | None = None,
    store: ArtifactStore | None = None,
    log_dir: str | Path | None = None,
    batch_rows: int | None = None,
    progress: Progress | None = None,
) -> Export:
    """Write the captured rows of ``model`` in ``[since, until)`` to the Parquet file
    ``path``; with ``feedback``, only the labelled rows, with ``label``, ``reward`` and
    ``feedback_time``. See the module docstring."""
    import pyarrow.parquet as pq  # Parquet: only where a file is written

    path = Path(path)
    extra = {} if batch_rows is None else {"batch_rows": batch_rows}
    wanted = columns
    if feedback is not None and columns is not None:
        wanted = list(dict.fromkeys([*columns, *_JOIN_COLUMNS]))
    scan = scan_capture(
        model, since, until, version, columns=wanted, store=store, log_dir=log_dir, **extra
    )
    labels = None
    schema = scan.schema
    if feedback is not None:
        if model is not None and since is not None and until is not None:
            # Only the feedback on this model's predictions of the span, read in batches.
            table = feedback.read_predicted(model, since, until)
        else:
            table = feedback.read_table(since)
        labels = table.to_pandas() if table is not None else None
        label_type = table.schema.field("label").type if table is not None else pa.null()
        keep = [f for f in scan.schema if columns is None or f.name in columns]
        schema = pa.schema(
            [
                *keep,
                pa.field("label", label_type),
                pa.field("reward", pa.float64()),
                pa.field("feedback_time", pa.timestamp("us", tz="UTC")),
            ]
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for batch in scan.batches():
                if feedback is not None:
                    if labels is None or labels.empty:
                        break
                    joined = _labels_of(batch, labels)
                    if joined.empty:
                        continue
                    out = pa.Table.from_pandas(
                        joined[schema.names], schema=schema, preserve_index=False
                    )
                else:
                    out = pa.Table.from_batches([batch], schema=schema)
                writer.write_table(out)
                rows += out.num_rows
                if progress is not None:
                    progress(rows)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Export(path, rows, schema.names, len(scan.parts))
