"""An endpoint's per-variant counts streamed from the inference log: never the whole log.

:func:`counts_from_log` gives what :func:`~vigil.experiments.status.counts_from_frames`
gives for the whole log read as one frame (the reference, kept for the tests), reading:

1. the capture log as an Arrow dataset scan (:func:`~vigil.capture.scan.scan_capture`)
   in record batches, projected to ``request_id, row, time, variant, status, error_code``
   and filtered to this endpoint's rows of its variants inside the scan (row groups whose
   ``endpoint`` statistics rule the endpoint out are not read). Each batch folds into one
   record per request: its variant (that of its earliest row), and whether any row failed;
   plus the keys of the requests that were answered (status below 400);
2. the feedback store a batch at a time (:func:`~vigil.feedback.scan.read_feedback_where`),
   keeping the feedback on those answered requests only;
3. when there is any, the same scan again projected to ``request_id, row, caller, variant,
   prediction``, keeping the rows that feedback names, which are then joined by
   :func:`~vigil.feedback.join.join_feedback` (the join every reader uses) in the log's
   order, so the metric's statistics are those of the reference, bit for bit.

What is held is bounded by the endpoint, not the log: per request of the endpoint a
128-bit key of its id (two SipHash keys, in NumPy arrays; two ids colliding is a chance of
about n² / 2¹²⁹, 10⁻²⁵ for 10⁸ requests) and 19 bytes of state, about twice that while a
fold runs; the endpoint's feedback and the rows it judges; one record batch of the log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from vigil.capture.scan import scan_capture
from vigil.capture.table import concat
from vigil.errors import ModelInputError
from vigil.experiments._counts import Counts, feedback_counts
from vigil.experiments.config import EndpointConfig
from vigil.feedback.scan import read_feedback_where

if TYPE_CHECKING:
    from vigil.feedback.store import FeedbackStore
    from vigil.storage.artifacts import ArtifactStore

__all__ = ["counts_from_log"]

BATCH_ROWS = 65_536
"""Rows of the log (and of the feedback store) read at a time, by default."""
_HASH_KEYS = ("vigil-expstat-k1", "vigil-expstat-k2")  # SipHash keys: 16 bytes each
_FIRST_PASS = ["request_id", "row", "time", "variant", "status", "error_code"]
_JOIN_PASS = ["request_id", "row", "time", "caller", "variant", "prediction", "status"]


def request_keys(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """128-bit keys of request ids: an ``(n, 2)`` array of ``uint64`` (two SipHash keys).

    >>> k = request_keys(pa.array(["a", "b", "a"]))
    >>> k.shape, bool((k[0] == k[2]).all()), bool((k[0] == k[1]).any())
    ((3, 2), True, False)
    """
    import pandas as pd  # SipHash of an array of strings, vectorised

    values = np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)
    halves = [
        pd.util.hash_array(values, hash_key=key, categorize=False).astype(np.uint64)
        for key in _HASH_KEYS
    ]
    return np.stack(halves, axis=1)


def _key_order(keys: np.ndarray, *ties: np.ndarray) -> np.ndarray:
    """The order sorting ``keys`` by both halves, then by ``ties`` (last one first, as
    :func:`numpy.lexsort` takes them). One quicksort on the first half, then a full sort
    of only the rows whose first half is shared (one request's rows; ids reused): several
    times faster than sorting every row on every column."""
    order = np.argsort(keys[:, 0])
    first = keys[order, 0]
    shared = np.zeros(len(order), dtype=bool)
    same = first[1:] == first[:-1]
    shared[1:] |= same
    shared[:-1] |= same
    if shared.any():
        sub = order[shared]  # runs of equal first halves, in first-half order
        order[shared] = sub[np.lexsort((*(t[sub] for t in ties), keys[sub, 1], keys[sub, 0]))]
    return order


def _firsts(keys: np.ndarray) -> np.ndarray:
    """Where each run of equal keys starts, in ``keys`` sorted by key."""
    new = np.ones(len(keys), dtype=bool)
    new[1:] = (keys[1:, 0] != keys[:-1, 0]) | (keys[1:, 1] != keys[:-1, 1])
    return np.flatnonzero(new)


class _Requests:
    """One record per request of the endpoint, folded as batches go by: the variant of its
    earliest row (by time, then row, as the reference's time-ordered frame has it first) and
    whether any of its rows failed. Unfolded batches wait until they outnumber the folded
    requests (so folding costs O(n log n) in all)."""

    def __init__(self, batch_rows: int) -> None:
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._pending = 0
        self._folded = 0
        self._floor = 4 * batch_rows

    def add(
        self, keys: np.ndarray, time: np.ndarray, row: np.ndarray, code: np.ndarray, bad: np.ndarray
    ) -> None:
        self._parts.append((keys, time, row, code, bad))
        self._pending += len(keys)
        if self._pending > max(self._folded, self._floor):
            self._fold()

    def _fold(self) -> None:
        keys, time, row, code, bad = (np.concatenate(c) for c in zip(*self._parts, strict=True))
        order = _key_order(keys, row, time)
        starts = _firsts(keys[order])
        any_bad = np.logical_or.reduceat(bad[order], starts) if len(starts) else bad[:0]
        first = order[starts]  # gathering only the first rows keeps the fold's copies small
        self._parts = [(keys[first], time[first], row[first], code[first], any_bad)]
        self._folded, self._pending = len(starts), 0

    def counts(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Requests and failed requests per variant code ``0..n-1``."""
        if not self._parts:
            return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        self._fold()
        _keys, _time, _row, code, bad = self._parts[0]
        return np.bincount(code, minlength=n), np.bincount(code[bad], minlength=n)


class _KeySet:
    """Request keys collected batch by batch, deduplicated as they grow; then a sorted set
    to test keys against (:meth:`contains`)."""

    def __init__(self, batch_rows: int) -> None:
        self._parts: list[np.ndarray] = []
        self._pending = 0
        self._folded = 0
        self._floor = 4 * batch_rows
        self._first: np.ndarray | None = None
        """The held keys' first halves, contiguous (for searching), once folded."""
        self._shared = False
        """Whether two held keys share their first half."""

    def add(self, keys: np.ndarray) -> None:
        self._first = None
        self._parts.append(keys)
        self._pending += len(keys)
        if self._pending > max(self._folded, self._floor):
            self._fold()

    def _fold(self) -> np.ndarray:
        if not self._parts:
            return np.zeros((0, 2), np.uint64)
        keys = self._parts[0]
        if len(self._parts) > 1 or self._pending:
            keys = np.concatenate(self._parts)
            keys = keys[_key_order(keys)]
            keys = keys[_firsts(keys)]
            self._parts, self._folded, self._pending = [keys], len(keys), 0
        if self._first is None:
            self._first = np.ascontiguousarray(keys[:, 0])
            self._shared = bool(len(keys) > 1 and (self._first[1:] == self._first[:-1]).any())
        return keys

    def __len__(self) -> int:
        return len(self._fold())

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Which of ``keys`` are in the set."""
        held = self._fold()
        if not len(held) or not len(keys):
            return np.zeros(len(keys), dtype=bool)
        first = self._first
        assert first is not None
        at = np.minimum(np.searchsorted(first, keys[:, 0]), len(held) - 1)
        found: np.ndarray = (first[at] == keys[:, 0]) & (held[at, 1] == keys[:, 1])
        if self._shared:  # two ids whose first halves collide: a 2**-64 chance per pair
            for i in np.flatnonzero(~found & np.isin(keys[:, 0], first)):
                found[i] = bool(((held[:, 0] == keys[i, 0]) & (held[:, 1] == keys[i, 1])).any())
        return found


def _column(batch: pa.RecordBatch, name: str) -> Any:
    return batch.column(name) if name in batch.schema.names else None


def _flags(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """Per row: failed (a server error, or the model refusing the input) and answered
    (status below 400); a log without statuses counts every row as answered (status 0)."""
    import pyarrow.compute as pc  # Arrow compute: the rows' flags

    n = batch.num_rows
    status = _column(batch, "status")
    if status is None:
        failed = np.zeros(n, dtype=bool)
        answered = np.ones(n, dtype=bool)
    else:
        failed = pc.fill_null(pc.greater_equal(status, 500), False).to_numpy(zero_copy_only=False)
        answered = pc.fill_null(pc.less(status, 400), False).to_numpy(zero_copy_only=False)
    code = _column(batch, "error_code")
    if code is not None:
        refused = pc.fill_null(pc.equal(code, ModelInputError.code), False)
        failed = failed | refused.to_numpy(zero_copy_only=False)
    return np.asarray(failed, dtype=bool), np.asarray(answered, dtype=bool)


def _ints(batch: pa.RecordBatch, name: str, missing: int) -> np.ndarray:
    import pyarrow.compute as pc  # Arrow compute: nulls filled before NumPy

    column = _column(batch, name)
    if column is None:
        return np.full(batch.num_rows, missing, dtype=np.int64)
    as_int = pc.cast(column, pa.int64()) if not pa.types.is_integer(column.type) else column
    return np.asarray(pc.fill_null(as_int, missing).to_numpy(zero_copy_only=False), np.int64)


def _endpoint_filter(name: str, variants: list[str]) -> Callable[[pa.Schema], Any]:
    def where(schema: pa.Schema) -> Any:
        import pyarrow.dataset as ds  # dataset expressions: the scan's filter

        if "endpoint" not in schema.names or "variant" not in schema.names:
            return ds.scalar(False)  # rows without an endpoint or a variant are no one's
        return (
            (ds.field("endpoint") == name)
            & ds.field("variant").isin(variants)
            & ds.field("request_id").is_valid()
        )

    return where


def counts_from_log(
    config: EndpointConfig,
    *,
    store: ArtifactStore | None,
    log_dir: str | Path | None,
    feedback: Callable[[], FeedbackStore],
    since: datetime | None = None,
    batch_rows: int | None = None,
) -> Counts:
    """The counts of endpoint ``config`` from the capture log (rows from ``since`` on) and
    the feedback store ``feedback()`` opens (and this closes), read as the module docstring
    says. ``batch_rows``: rows of the log (and of feedback) held at a time
    (:data:`BATCH_ROWS` by default)."""
    import pyarrow.compute as pc  # Arrow compute: variant codes, the join pass's rows

    batch_rows = batch_rows or BATCH_ROWS

    names = config.variant_names
    scan = scan_capture(
        None,
        since,
        columns=sorted(set(_FIRST_PASS) | set(_JOIN_PASS)),
        store=store,
        log_dir=log_dir,
        batch_rows=batch_rows,
    ).filtered(_endpoint_filter(config.name, names))
    requests = _Requests(batch_rows)
    answered_keys = _KeySet(batch_rows)
    variants = pa.array(names, pa.string())
    for batch in scan.projected(_FIRST_PASS).batches():
        keys = request_keys(batch.column("request_id"))
        code = pc.index_in(batch.column("variant"), value_set=variants)
        failed, answered = _flags(batch)
        requests.add(
            keys,
            _ints(batch, "time", np.iinfo(np.int64).max),
            _ints(batch, "row", 0),
            np.asarray(code.to_numpy(zero_copy_only=False), dtype=np.int16),
            failed,
        )
        answered_keys.add(keys[answered])
    per_variant, failed_per_variant = requests.counts(len(names))
    request_counts = {v: int(per_variant[i]) for i, v in enumerate(names)}
    error_counts = {v: int(failed_per_variant[i]) for i, v in enumerate(names)}
    empty = _frame(None)
    if not len(answered_keys):
        return feedback_counts(names, request_counts, error_counts, empty, empty)
    opened = feedback()
    try:
        given = read_feedback_where(
            opened,
            lambda t: answered_keys.contains(request_keys(t.column("request_id"))),
            batch_rows=batch_rows,
        )
    finally:
        opened.close()
    if given is None:
        return feedback_counts(names, request_counts, error_counts, empty, empty)
    judged = _KeySet(batch_rows)
    judged.add(request_keys(given.column("request_id")))
    rows: list[pa.Table] = []
    for batch in scan.projected(_JOIN_PASS).batches():
        _failed, answered = _flags(batch)
        keep = answered & judged.contains(request_keys(batch.column("request_id")))
        if keep.any():
            rows.append(pa.Table.from_batches([batch]).filter(pa.array(keep)))
    answered_rows = _frame(concat(rows) if rows else None)
    return feedback_counts(names, request_counts, error_counts, answered_rows, _frame(given))


def _frame(table: pa.Table | None) -> Any:
    """Captured rows (or feedback) as the reference's frame; captured rows in the log's
    order (time, request, row), as :func:`~vigil.capture.reader.read_capture` sorts them,
    so the feedback statistics add up in the same order."""
    import pandas as pd  # the statistics stack: only for a status

    if table is None or not table.num_rows:
        return pd.DataFrame()
    if "variant" in table.column_names:  # captured rows (every part has these columns)
        order = [("time", "ascending"), ("request_id", "ascending"), ("row", "ascending")]
        table = table.sort_by(order)
        if "prediction" not in table.column_names:
            table = table.append_column("prediction", pa.nulls(table.num_rows))
    return table.to_pandas()
