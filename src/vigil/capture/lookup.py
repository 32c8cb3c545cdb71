"""Find the captured predictions of given request ids: what feedback is matched against.

Two places hold captured rows, and both are consulted:

* the segments not yet compacted (every worker's, live or closed), followed incrementally
  with a :class:`~vigil.capture.tail.SegmentTail`: each record is read once, and an id
  answered a moment ago by another worker is found at once. The index kept for them is
  dropped segment by segment as compaction removes them, so it holds at most what the
  segments hold;
* the compacted Parquet partitions, scanned only for the ids not found in the segments and
  only over the dates asked for, reading just the few columns needed. That scan costs
  time proportional to the compacted rows in the window, which is why it is kept for the
  ids the segments do not know (late or unknown feedback).

Only successful predictions (status < 400) count: a rejected request has nothing to judge.

>>> import tempfile, numpy as np
>>> from vigil.capture.log import SegmentLog
>>> from vigil.capture.sink import CaptureSink
>>> sink = CaptureSink(SegmentLog(tempfile.mkdtemp()))
>>> _ = sink.record_prediction(request_id="r1", model="churn", version=3, endpoint="checkout",
...     variant="b", features=np.zeros((2, 1)), feature_names=["a"], predictions=[0, 1])
>>> found = CaptureLookup(sink.log.directory, None).find(["r1", "r2"])
>>> list(found), found["r1"].rows, found["r1"].variant, found["r1"].predictions
(['r1'], 2, 'b', (0, 1))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.capture.compact import CAPTURE_ROOT, partition_dirs
from vigil.capture.framing import Batch
from vigil.capture.table import parse_time
from vigil.capture.tail import SegmentTail

if TYPE_CHECKING:
    from vigil.storage.artifacts import ArtifactStore

_COLUMNS = (
    "request_id",
    "row",
    "time",
    "model",
    "version",
    "endpoint",
    "variant",
    "status",
    "prediction",
)


@dataclass(frozen=True, slots=True)
class Captured:
    """What the capture log says about one answered request."""

    time: datetime
    model: str
    version: int | None
    endpoint: str | None
    variant: str | None
    rows: int
    """Rows the request predicted (feedback may name rows ``0..rows-1``)."""
    predictions: tuple[Any, ...] = ()
    """The prediction of each row (``None`` where unknown)."""
    prediction: Any = None
    """The prediction of the one row some feedback names (set on
    :class:`~vigil.feedback.record.MatchedFeedback`; ``None`` in a lookup by request id)."""

    def for_row(self, row: int) -> Captured:
        """This request, with ``prediction`` set to that of ``row``."""
        value = self.predictions[row] if row < len(self.predictions) else None
        return replace(self, prediction=value)


class _Indexed:
    """A captured request as the index holds it while its rows arrive: predictions are
    appended in place (amortised O(1) a row, where building a new tuple per row was
    quadratic), and the :class:`Captured` handed out is made once, then reused until
    another row arrives."""

    __slots__ = ("captured", "endpoint", "model", "predictions", "time", "variant", "version")

    def __init__(self, record: dict[str, Any]) -> None:
        time = record["time"]
        self.time = time if isinstance(time, datetime) else parse_time(time).astimezone(UTC)
        self.model: str = record.get("model") or ""
        self.version: int | None = record.get("version")
        self.endpoint: str | None = record.get("endpoint")
        self.variant: str | None = record.get("variant")
        self.predictions: list[Any] = []
        self.captured: Captured | None = None

    def add(self, row: int, prediction: Any) -> None:
        predictions = self.predictions
        if row >= len(predictions):
            predictions.extend([None] * (row + 1 - len(predictions)))
        predictions[row] = prediction
        self.captured = None

    def add_all(self, predictions: list[Any]) -> None:
        """Rows ``0..len(predictions)-1`` at once, as one batch holds a request (the list
        is kept, not copied)."""
        known = self.predictions
        if len(known) <= len(predictions):
            self.predictions = predictions
        else:
            known[: len(predictions)] = predictions
        self.captured = None

    def snapshot(self) -> Captured:
        """The request as :class:`Captured` (one copy of its predictions per change)."""
        if self.captured is None:
            predictions = tuple(self.predictions)
            self.captured = Captured(
                self.time,
                self.model,
                self.version,
                self.endpoint,
                self.variant,
                len(predictions),
                predictions,
            )
        return self.captured


def _merge(index: dict[str, _Indexed], record: dict[str, Any] | Batch) -> None:
    if isinstance(record, Batch):
        _merge_batch(index, record.frame)
        return
    status = record.get("status")
    if status is not None and status >= 400:
        return
    rid = record["request_id"]
    known = index.get(rid)
    if known is None:
        known = index[rid] = _Indexed(record)
    known.add(int(record.get("row") or 0), record.get("prediction"))


def _merge_batch(index: dict[str, _Indexed], batch: dict[str, Any]) -> None:
    """The requests of a columnar batch, each with its predictions sliced at once: no
    record per row is built (half a million dicts for one large request)."""
    same = batch.get("same") or {}
    requests = dict(batch.get("requests") or {"sizes": [batch["n"]]})
    sizes = requests.pop("sizes")
    predictions = (batch.get("rows") or {}).get("prediction")
    start = 0
    for r, size in enumerate(sizes):
        fields = {**same, **{name: values[r] for name, values in requests.items()}}
        stop = start + size
        status = fields.get("status")
        if status is None or status < 400:
            rid = fields["request_id"]
            known = index.get(rid)
            if known is None:
                known = index[rid] = _Indexed(fields)
            rows = predictions[start:stop] if predictions is not None else [None] * size
            known.add_all(rows)
        start = stop


class CaptureLookup:
    """Finds captured requests by id in the segments of ``log_dir`` and in ``store``."""

    def __init__(
        self,
        log_dir: str | Path | None,
        store: ArtifactStore | None,
        *,
        root: str = CAPTURE_ROOT,
        prefix: str = "capture",
    ) -> None:
        # Only ids, times, models and predictions are needed: whole requests of a batch,
        # no record (and no feature dict) per row.
        self.tail = SegmentTail(log_dir, prefix, expand=False) if log_dir is not None else None
        self.store = store
        self.root = root
        self._recent: dict[str, dict[str, _Indexed]] = {}

    def __repr__(self) -> str:
        return f"CaptureLookup({self.tail!r}, store={self.store!r})"

    def find(
        self, request_ids: Iterable[str], *, since: datetime | None = None
    ) -> dict[str, Captured]:
        """The captured requests among ``request_ids`` (predicted at or after ``since``)."""
        wanted = set(request_ids)
        found: dict[str, Captured] = {}
        if self.tail is not None:
            fresh, gone = self.tail.poll()
            for sid in gone:
                self._recent.pop(sid, None)
            for sid, records in fresh.items():
                index = self._recent.setdefault(sid, {})
                for record in records:
                    _merge(index, record)
            for index in self._recent.values():
                for rid in wanted & index.keys():
                    _merge_captured(found, rid, index[rid].snapshot())
        missing = wanted - found.keys()
        if missing and self.store is not None:
            for rid, hit in self._scan(missing, since).items():
                _merge_captured(found, rid, hit)
        if since is not None:
            found = {rid: hit for rid, hit in found.items() if hit.time >= since}
        return found

    def _scan(self, request_ids: set[str], since: datetime | None) -> dict[str, Captured]:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        assert self.store is not None
        first_day = since.astimezone(UTC).date() if since is not None else None
        value_set = pa.array(sorted(request_ids), pa.string())
        index: dict[str, _Indexed] = {}
        for path, day in partition_dirs(self.store, root=self.root):
            if first_day is not None and day < first_day:
                continue
            for part in sorted(self.store.fs.glob(f"{path}/part-*.parquet")):
                with self.store.fs.open(part, "rb") as fh:
                    parquet = pq.ParquetFile(fh)
                    columns = [c for c in _COLUMNS if c in parquet.schema_arrow.names]
                    table = parquet.read(columns=columns)
                table = table.filter(pc.is_in(table["request_id"], value_set=value_set))
                for record in table.to_pylist():
                    _merge(index, record)
        return {rid: indexed.snapshot() for rid, indexed in index.items()}


def _merge_captured(found: dict[str, Captured], rid: str, hit: Captured) -> None:
    # The same request may be read twice (from a segment and from its compacted part);
    # keep the fuller reading.
    known = found.get(rid)
    if known is None or hit.rows > known.rows:
        found[rid] = hit
