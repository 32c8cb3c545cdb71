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

A request is known by its id *and its caller* (the API key that made it): two keys that
chose the same ``X-Request-ID`` made two requests, and :meth:`CaptureLookup.find_all`
tells them apart (feedback is bound to the key that made the prediction).

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

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.capture.compact import CAPTURE_ROOT, partition_dirs
from vigil.capture.crypt import open_log_file, store_codec
from vigil.capture.framing import Batch
from vigil.capture.table import parse_time
from vigil.capture.tail import SegmentTail

if TYPE_CHECKING:
    from vigil.storage.artifacts import ArtifactStore

log = logging.getLogger("vigil.capture")

_COLUMNS = (
    "request_id",
    "caller",
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
    caller: str | None = None
    """Id of the API key that made the request (``None`` with authentication off)."""
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

    __slots__ = (
        "caller",
        "captured",
        "endpoint",
        "model",
        "predictions",
        "time",
        "variant",
        "version",
    )

    def __init__(self, record: dict[str, Any]) -> None:
        time = record["time"]
        self.time = time if isinstance(time, datetime) else parse_time(time).astimezone(UTC)
        self.model: str = record.get("model") or ""
        self.version: int | None = record.get("version")
        self.endpoint: str | None = record.get("endpoint")
        self.variant: str | None = record.get("variant")
        self.caller: str | None = record.get("caller")
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
                caller=self.caller,
            )
        return self.captured


Index = dict[str, dict[str | None, _Indexed]]
"""Requests being indexed, by id, then by caller (the API key that made them)."""
Found = dict[str, dict[str | None, Captured]]
"""Captured requests by id, then by caller."""


def _entry(index: Index, fields: dict[str, Any]) -> _Indexed:
    callers = index.setdefault(fields["request_id"], {})
    caller = fields.get("caller")
    known = callers.get(caller)
    if known is None:
        known = callers[caller] = _Indexed(fields)
    return known


def _merge(index: Index, record: dict[str, Any] | Batch) -> None:
    if isinstance(record, Batch):
        _merge_batch(index, record.frame)
        return
    status = record.get("status")
    if status is not None and status >= 400:
        return
    _entry(index, record).add(int(record.get("row") or 0), record.get("prediction"))


def _merge_batch(index: Index, batch: dict[str, Any]) -> None:
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
            rows = predictions[start:stop] if predictions is not None else [None] * size
            _entry(index, fields).add_all(rows)
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
        self.tail = (
            SegmentTail(log_dir, prefix, expand=False, codec=store_codec(store))
            if log_dir is not None
            else None
        )
        self.store = store
        self.root = root
        self._recent: dict[str, Index] = {}

    def __repr__(self) -> str:
        return f"CaptureLookup({self.tail!r}, store={self.store!r})"

    def find(
        self, request_ids: Iterable[str], *, since: datetime | None = None
    ) -> dict[str, Captured]:
        """The captured requests among ``request_ids`` (predicted at or after ``since``);
        of an id several callers chose, the earliest."""
        return {rid: hits[0] for rid, hits in self.find_all(request_ids, since=since).items()}

    def find_all(
        self, request_ids: Iterable[str], *, since: datetime | None = None
    ) -> dict[str, list[Captured]]:
        """Every captured request among ``request_ids`` (predicted at or after ``since``),
        one per caller that used the id, earliest first."""
        wanted = set(request_ids)
        found: Found = {}
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
                    hits = {caller: e.snapshot() for caller, e in index[rid].items()}
                    _merge_captured(found, rid, hits)
        missing = wanted - found.keys()
        if missing and self.store is not None:
            try:
                scanned = self._scan(missing, since)
            except Exception:
                # Unreachable store: those ids count as unknown (their feedback is still
                # stored, and joins when read) rather than failing the feedback.
                log.warning(
                    "cannot read the compacted capture log in %s; %d request id(s) not in "
                    "the live segments are taken as unknown",
                    self.store,
                    len(missing),
                    exc_info=True,
                )
                scanned = {}
            for rid, hits in scanned.items():
                _merge_captured(found, rid, hits)
        by_id: dict[str, list[Captured]] = {}
        for rid, hits in found.items():
            kept = sorted(
                (h for h in hits.values() if since is None or h.time >= since),
                key=lambda h: h.time,
            )
            if kept:
                by_id[rid] = kept
        return by_id

    def _scan(self, request_ids: set[str], since: datetime | None) -> Found:
        # PyArrow: only when a table is built
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        assert self.store is not None
        first_day = since.astimezone(UTC).date() if since is not None else None
        value_set = pa.array(sorted(request_ids), pa.string())
        index: Index = {}
        for path, day in partition_dirs(self.store, root=self.root):
            if first_day is not None and day < first_day:
                continue
            for part in sorted(self.store.fs.glob(f"{path}/part-*.parquet")):
                with open_log_file(self.store, part) as fh:
                    parquet = pq.ParquetFile(fh)
                    columns = [c for c in _COLUMNS if c in parquet.schema_arrow.names]
                    table = parquet.read(columns=columns)
                table = table.filter(pc.is_in(table["request_id"], value_set=value_set))
                for record in table.to_pylist():
                    _merge(index, record)
        return {rid: {c: e.snapshot() for c, e in hits.items()} for rid, hits in index.items()}


def _merge_captured(found: Found, rid: str, hits: dict[str | None, Captured]) -> None:
    # The same request may be read twice (from a segment and from its compacted part);
    # keep the fuller reading.
    callers = found.setdefault(rid, {})
    for caller, hit in hits.items():
        known = callers.get(caller)
        if known is None or hit.rows > known.rows:
            callers[caller] = hit
