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

The file's columns are decided before a row is read, from the whole window's schema (the
compacted parts' footers and the live segments, one :func:`~vigil.capture.scan.scan_capture`
listing the day scans are narrowed from): every feature and passthrough field any request of
the window carried, in the log's column order, null in the rows whose request lacked it.
Passthrough fields are sent per request, so one day may carry fields another does not, or
none. A column whose type differs across the window (``3`` in one part, ``"north"`` in
another) is written as text, as :func:`~vigil.capture.reader.read_capture` reads it; integers
and floats are widened to floats. The label follows the same rule over the window's labels
(read a day at a time before the export, as the export reads them), so a label sent as a
number one day and as text the next is text throughout; labels that are all whole numbers
are integers (feedback that carried only a reward would otherwise widen them to floats).
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

    from vigil.capture.scan import CaptureScan
    from vigil.feedback.store import FeedbackStore
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
    """A Parquet file written chunk by chunk, its columns fixed before the first chunk
    (``columns`` and the label ``label`` of type ``label_type``; every chunk conformed to
    them)."""

    def __init__(self, path: Path, columns: pa.Schema, label: str, label_type: pa.DataType) -> None:
        import pyarrow as pa

        self.path = path
        self.rows = 0
        self._columns = columns
        self._label = label
        self._schema = columns.append(pa.field(label, label_type))
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if frame.empty:
            return
        # A column this chunk lacks is null; a column pandas typed from this chunk's values
        # alone (integers with a gap as floats, an all-missing column as nulls) is cast back.
        present = [f for f in self._columns if f.name in frame.columns]
        table = pa.Table.from_pandas(
            frame[[f.name for f in present]], schema=pa.schema(present), preserve_index=False
        )
        columns = [
            table[f.name] if f.name in table.column_names else pa.nulls(len(table), f.type)
            for f in self._columns
        ]
        label = pa.array(_unwidened(frame[self._label]), from_pandas=True)
        want = self._schema.field(self._label).type
        if pa.types.is_null(want):  # the window had no label when the export began
            self._schema = self._columns.append(pa.field(self._label, label.type))
            want = label.type
        try:
            label = label.cast(want)
        except (ValueError, TypeError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            # Only feedback stored while the export ran can bring a type the window's
            # labels did not have when it began.
            raise DataFileError(
                f"labels of another type than the window's ({want}) arrived during the "
                f"export ({exc}); run the export again"
            ) from None
        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self.path), self._schema)
        self._writer.write_table(pa.table([*columns, label], schema=self._schema))
        self.rows += len(frame)

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


def _days(since: datetime, until: datetime) -> Iterator[tuple[datetime, datetime]]:
    start = since
    while start < until:
        end = min(start + timedelta(days=1), until)
        yield start, end
        start = end


def _label_type(store: FeedbackStore, model: str, since: datetime, until: datetime) -> pa.DataType:
    """The type of the window's labels, read a day at a time as the export reads them: the
    features' rule (:func:`vigil.capture.scan.scan_capture`: integers and floats widened to
    floats, clashing types as text), then integers if every value is a whole number (as
    :func:`_unwidened` gives each batch). Null when no label was given (then the first
    batch's decides, should labels arrive while the export runs)."""
    import numpy as np
    import pyarrow as pa

    types: list[pa.DataType] = []
    whole = True
    for start, end in _days(since, until):
        given = store.read_predicted(model, start, end)
        labels = given["label"] if given is not None else None
        if labels is None or pa.types.is_null(labels.type):
            continue
        types.append(labels.type)
        if pa.types.is_floating(labels.type):
            values = labels.drop_null().to_numpy()
            whole = whole and bool(np.all(np.mod(values, 1) == 0))
    if not types:
        return pa.null()
    try:
        schema = pa.unify_schemas(
            [pa.schema([pa.field("label", t)]) for t in types], promote_options="permissive"
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.string()
    found = schema.field("label").type
    return pa.int64() if pa.types.is_floating(found) and whole else found


def _window(app: Services, model: str, since: datetime, until: datetime) -> CaptureScan:
    """The scan of ``model``'s log in ``[since, until)`` with the columns the export reads,
    listed once: each day's scan is narrowed from it and so sees the window's columns."""
    from vigil.capture.scan import scan_capture

    scan = scan_capture(model, since, until, store=app.artifacts, log_dir=app.capture_dir)
    names = scan.schema.names
    keep = ["request_id", "row", "time", "version", "status", "caller"]
    keep += [n for n in names if n.startswith(FEATURE_PREFIX)]
    # Passthrough fields (sensitive attributes) keep their prefix: the gate judges groups
    # on the held-out rows by them, and a job can tell them from features.
    keep += [n for n in names if n.startswith(PASSTHROUGH_PREFIX)]
    return scan.projected(keep)


def _written(window: pa.Schema) -> pa.Schema:
    """The exported columns (but the label) of a window whose log has ``window``'s columns:
    the features under their own names, the passthrough fields under theirs."""
    import pyarrow as pa

    fields = [
        window.field(n) for n in ("request_id", "row", "time", "version") if n in window.names
    ]
    fields += [
        f.with_name(f.name[len(FEATURE_PREFIX) :])
        for f in window
        if f.name.startswith(FEATURE_PREFIX)
    ]
    fields += [f for f in window if f.name.startswith(PASSTHROUGH_PREFIX)]
    return pa.schema(fields)


def _answered(window: CaptureScan, since: datetime, until: datetime) -> Iterator[pd.DataFrame]:
    """The answered rows of the ``window`` scan in ``[since, until)``, a record batch at a
    time (shadow copies are the challenger's answers, not the traffic's, and are left out)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not {"request_id", "row", "status"} <= set(window.schema.names):
        return
    for batch in window.narrowed(since, until).batches():
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
    from vigil.feedback.join import join_feedback

    directory.mkdir(parents=True, exist_ok=True)
    label = target or "label"
    window = _window(app, model, since, until)
    columns = _written(window.schema)
    store = app.feedback_store()
    try:
        label_type = _label_type(store, model, since, until)
    except BaseException:
        store.close()
        raise
    train = _Writer(directory / TRAIN_FILE, columns, label, label_type)
    holdout = (
        _Writer(holdout_dir / HOLDOUT_FILE, columns, label, label_type)
        if holdout_dir is not None
        else None
    )
    if holdout_dir is not None:
        holdout_dir.mkdir(parents=True, exist_ok=True)
    answered = 0
    features: set[str] = set()
    try:
        for start, end in _days(since, until):
            given = store.read_predicted(model, start, end)
            labels = given.to_pandas() if given is not None else None
            for frame in _answered(window, start, end):
                answered += len(frame)
                if labels is None or labels.empty:
                    continue
                joined = join_feedback(frame, labels)
                joined = joined[joined["label"].notna()]
                if joined.empty:
                    continue
                names = [c for c in frame.columns if c.startswith(FEATURE_PREFIX)]
                out = joined.rename(columns={n: n[len(FEATURE_PREFIX) :] for n in names})
                features.update(n[len(FEATURE_PREFIX) :] for n in names)
                drop = [c for c in ("caller", "status", "reward", "feedback_time") if c in out]
                out = out.drop(columns=drop).rename(columns={"label": label})
                held = _held_out(out["request_id"], holdout_share) if holdout is not None else None
                if held is not None and holdout is not None:
                    holdout.write(out[held])
                    out = out[~held]
                train.write(out)
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
