"""The training-data export a retraining job reads: captured features joined with labels.

A run writes, in its export directory:

* ``train.parquet`` — one row per labelled, answered prediction of the model in the window:
  the features under their own names, the label (under the served version's target name,
  else ``label``), and ``request_id``, ``row``, ``time``, ``version``;
* ``manifest.json`` — the window, the row counts, the label coverage (labelled / answered
  rows), the label column, the feature names, and where the reference data is (the served
  version's URI, the file it was registered from, and the bundle's reference sample).

A share of the labelled rows (``export.holdout_share``, chosen by a hash of the request id,
so the rows of one request stay together) is written apart, to a file the job is not told
about: the gate scores the candidate on traffic it was not trained on.

The window is exported one day at a time: that day's labels are read from the feedback
store (:meth:`~vigil.feedback.store.FeedbackStore.read_predicted`: the feedback on the
model's predictions of that day, read a batch at a time), then the day's captured rows are
streamed (:func:`~vigil.capture.scan.scan_capture`, only the columns written, in record
batches), each batch joined with the labels by request id and written as it goes (Arrow's
Parquet writer). Memory holds a batch of rows and one day's labels of the model, never the
window's rows nor the whole feedback store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.errors import DataFileError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vigil.services import Services

__all__ = ["ExportResult", "export_training_data"]

FEATURE_PREFIX = "feature."
PASSTHROUGH_PREFIX = "passthrough."
TRAIN_FILE = "train.parquet"
HOLDOUT_FILE = "holdout.parquet"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class ExportResult:
    """Where the export went and what it holds (``manifest`` is ``manifest.json``)."""

    directory: Path
    holdout: Path | None
    manifest: dict[str, Any]

    @property
    def train(self) -> Path:
        return self.directory / TRAIN_FILE


def _held_out(request_ids: pd.Series, share: float) -> Any:
    """Which rows go to the holdout: a stable hash of the request id below ``share``."""
    import numpy as np

    cut = int(share * 2**32)
    hashes = [
        int.from_bytes(hashlib.blake2b(str(r).encode(), digest_size=4).digest(), "big")
        for r in request_ids
    ]
    return np.asarray(hashes, dtype=np.uint64) < cut


class _Writer:
    """A Parquet file written chunk by chunk, its schema fixed by the first chunk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        if table.num_rows == 0:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self.path), table.schema)
        else:
            try:
                table = table.cast(self._writer.schema)
            except (ValueError, TypeError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                raise DataFileError(
                    f"the captured features changed type within the export window ({exc}); "
                    "shorten export.window to after the change"
                ) from None
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _unwidened(labels: pd.Series) -> pd.Series:
    """Labels as they were sent: feedback that carried only a reward joins as a missing
    label, which widens integer classes to floats (``1`` to ``1.0``); once those rows are
    dropped, whole numbers are integers again, so a model retrained on them predicts the
    classes the served one does."""
    import numpy as np

    values = labels.to_numpy()
    if values.dtype.kind == "f" and np.all(np.mod(values, 1) == 0):
        return labels.astype("int64")
    return labels


def _answered(
    app: Services, model: str, since: datetime, until: datetime
) -> Iterator[pd.DataFrame]:
    """The answered rows of ``model`` in ``[since, until)``, a record batch at a time, with
    the columns the export writes (shadow copies are the challenger's answers, not the
    traffic's, and are left out)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from vigil.capture.scan import scan_capture

    store, log_dir = app.artifacts, app.capture_dir
    # The columns from the parts' footers, then a scan of only those the export writes.
    names = scan_capture(model, since, until, store=store, log_dir=log_dir).schema.names
    keep = ["request_id", "row", "time", "version", "status", "caller"]
    keep += [n for n in names if n.startswith(FEATURE_PREFIX)]
    # Passthrough fields (sensitive attributes) keep their prefix: the gate judges groups
    # on the held-out rows by them, and a job can tell them from features.
    keep += [n for n in names if n.startswith(PASSTHROUGH_PREFIX)]
    scan = scan_capture(model, since, until, columns=keep, store=store, log_dir=log_dir)
    if not {"request_id", "row", "status"} <= set(scan.schema.names):
        return
    for batch in scan.batches():
        batch = batch.filter(pc.less(batch["status"], 400))
        ids = batch["request_id"].cast(pa.string())
        batch = batch.filter(pc.invert(pc.match_substring(ids, ":shadow:")))
        if batch.num_rows:
            yield batch.to_pandas()


def export_training_data(
    app: Services,
    model: str,
    *,
    since: datetime,
    until: datetime,
    directory: Path,
    holdout_dir: Path | None,
    holdout_share: float,
    target: str | None,
    reference: dict[str, Any],
) -> ExportResult:
    """Write ``model``'s labelled traffic in ``[since, until)`` to ``directory`` (and the
    held-out share to ``holdout_dir``); see the module documentation."""
    import pyarrow as pa

    from vigil.feedback.join import join_feedback

    directory.mkdir(parents=True, exist_ok=True)
    label = target or "label"
    train = _Writer(directory / TRAIN_FILE)
    holdout = _Writer(holdout_dir / HOLDOUT_FILE) if holdout_dir is not None else None
    if holdout_dir is not None:
        holdout_dir.mkdir(parents=True, exist_ok=True)
    answered = 0
    features: set[str] = set()
    store = app.feedback_store()
    try:
        start = since
        while start < until:
            end = min(start + timedelta(days=1), until)
            given = store.read_predicted(model, start, end)
            labels = given.to_pandas() if given is not None else None
            for frame in _answered(app, model, start, end):
                answered += len(frame)
                if labels is None or labels.empty:
                    continue
                joined = join_feedback(frame, labels)
                joined = joined[joined["label"].notna()]
                if joined.empty:
                    continue
                joined["label"] = _unwidened(joined["label"])
                names = [c for c in frame.columns if c.startswith(FEATURE_PREFIX)]
                out = joined.rename(columns={n: n[len(FEATURE_PREFIX) :] for n in names})
                features.update(n[len(FEATURE_PREFIX) :] for n in names)
                drop = [c for c in ("caller", "status", "reward", "feedback_time") if c in out]
                out = out.drop(columns=drop).rename(columns={"label": label})
                held = _held_out(out["request_id"], holdout_share) if holdout is not None else None
                if held is not None and holdout is not None:
                    holdout.write(pa.Table.from_pandas(out[held], preserve_index=False))
                    out = out[~held]
                train.write(pa.Table.from_pandas(out, preserve_index=False))
            start = end
    finally:
        store.close()
        train.close()
        if holdout is not None:
            holdout.close()
    labelled = train.rows + (holdout.rows if holdout is not None else 0)
    manifest: dict[str, Any] = {
        "model": model,
        "window": {"since": since.isoformat(), "until": until.isoformat()},
        "train": TRAIN_FILE if train.rows else None,
        "rows": train.rows,
        "held_out_rows": holdout.rows if holdout is not None else 0,
        "answered_rows": answered,
        "labelled_rows": labelled,
        "label_coverage": labelled / answered if answered else None,
        "label": label,
        "features": sorted(features),
        "reference": reference,
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return ExportResult(
        directory=directory,
        holdout=holdout.path if holdout is not None and holdout.rows else None,
        manifest=manifest,
    )
