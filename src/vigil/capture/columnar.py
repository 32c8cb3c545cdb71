"""A capture segment's columnar batches to Arrow tables, without a dict per row:
:func:`segment_tables`.

The server writes answered requests as columnar batches (:func:`~vigil.capture.framing.
encode_batch_frame`): fields shared by a batch once, per-request fields as lists, feature
and probability values as column lists. Expanding them into one record (and two nested
dicts) per row, only for :func:`~vigil.capture.table.records_to_table` to take the columns
apart again, is what made compaction cost a loaded server several seconds of its core per
64 MB segment, all of it Python holding the GIL against the event loop (issue 14, "Sustained
load" in docs/benchmarks.md). Here each batch's lists are appended to the table's column
lists as they are (C-level ``list.extend``); the Python work is per batch, not per row.

The tables are the ones a partition function of the model and time (as
:func:`~vigil.capture.compact.capture_partition`) and
:func:`~vigil.capture.table.records_to_table` make of the expanded records: the same
columns in the same order, built by the same ``pyarrow.array`` calls over the same values.
Anything off that path (a record that does not convert, a batch in an older layout, a field
where the server never puts it) makes :func:`segment_tables` answer ``None``, and the caller
expands the segment the slow way, which sets bad records aside one by one.

>>> from vigil.capture.framing import decode_frames, encode_batch_frame
>>> data = encode_batch_frame({"n": 2, "same": {"time": "2025-03-01T10:00:00+00:00",
...     "model": "churn", "status": 200}, "requests": {"sizes": [1, 1],
...     "request_id": ["a", "b"]}, "rows": {"prediction": [0, 1]},
...     "maps": {"features": {"keys": ["x"], "columns": [[1.5, 2.5]]}}})
>>> items, _torn = decode_frames(data, expand=False)
>>> from vigil.capture.compact import capture_partition
>>> tables = segment_tables(items, segment="s1", partition=capture_partition)
>>> list(tables), tables["model=churn/date=2025-03-01"]["feature.x"].to_pylist()
(['model=churn/date=2025-03-01'], [1.5, 2.5])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from itertools import repeat
from typing import Any

import pyarrow as pa

from vigil.capture.framing import Batch, expand_batch
from vigil.capture.table import (
    _FIXED,
    DATA_ERRORS,
    FEATURE_PREFIX,
    PASSTHROUGH_PREFIX,
    PROBA_PREFIX,
    _column,
    parse_time,
)

_MAPS = {
    "features": FEATURE_PREFIX,
    "probabilities": PROBA_PREFIX,
    "passthrough": PASSTHROUGH_PREFIX,
}
_FIELDS = (*(name for name in _FIXED if name not in ("row", "time")), "prediction")
"""The record fields a table column is made of, as found at any level of a batch."""
_FIELD_SET = frozenset(_FIELDS)
_RESERVED = frozenset(("row", "time", *_MAPS))
"""Names the expansion sets itself (``row``), a batch has only in ``same`` (``time``: see
:func:`_batch_partition`) or reads from ``maps`` only (``same`` says ``"probabilities":
null`` for a model without them)."""


class _Unfit(Exception):
    """The segment holds something the columnar path does not reproduce exactly."""


class _Partition:
    """The columns of one partition's rows.

    Rows come in blocks (a batch, or a lone record). A field every row of a block shares
    (the batch's ``same``) is kept once per block, and its column made by one ``take`` of
    the block values; a field met per request or per row (and ``prediction``) is kept as
    a list of row values instead, *promoted* from the block values the first time. Row
    lists are padded with ``None`` lazily: a list behind the row count is brought up to it
    before it grows, and to the full length before its array is built."""

    def __init__(self) -> None:
        self.rows = 0
        self.blocks: list[dict[str, Any]] = []
        """Each block's shared fields..."""
        self.times: list[datetime] = []
        """...its time, parsed once..."""
        self.sizes: list[int] = []
        """...its row count..."""
        self.block_at: list[int] = []
        """...and the block of each row."""
        self.fields: dict[str, list[Any]] = {"prediction": []}
        self.row: list[Any] = []
        self.maps: dict[str, dict[str, list[Any]]] = {name: {} for name in _MAPS}

    def _list(self, columns: dict[str, list[Any]], name: str) -> list[Any]:
        values = columns.get(name)
        if values is None:
            values = columns[name] = []
        if len(values) < self.rows:
            values.extend(repeat(None, self.rows - len(values)))
        return values

    def _rows_of(self, name: str) -> list[Any]:
        """The row list of a field, promoted from the block values the first time."""
        values = self.fields.get(name)
        if values is None:
            values = self.fields[name] = []
            for shared, size in zip(self.blocks, self.sizes, strict=True):
                values.extend(repeat(shared.get(name), size))
        elif len(values) < self.rows:
            values.extend(repeat(None, self.rows - len(values)))
        return values

    def _block(self, shared: dict[str, Any], time: datetime, n: int) -> None:
        self.block_at.extend(repeat(len(self.blocks), n))
        self.blocks.append(shared)
        self.times.append(time)
        self.sizes.append(n)
        self.rows += n

    def add_batch(self, frame: dict[str, Any], time: datetime) -> None:
        """Append a batch's rows (``time``: its ``same`` time, parsed)."""
        same = frame.get("same") or {}
        requests = dict(frame.get("requests") or {"sizes": [frame["n"]]})
        sizes = requests.pop("sizes")
        per_row = frame.get("rows") or {}
        if type(sizes) is not list or not set(map(type, sizes)) <= {int} or min(sizes) < 0:
            raise _Unfit("request sizes")
        n = sum(sizes)
        single = n == len(sizes)  # one row per request: request lists are row lists
        if (
            same.keys() & requests.keys()
            or (same.keys() | requests.keys()) & per_row.keys()
            or any(same[name] is not None for name in (same.keys() - {"time"}) & _RESERVED)
            or requests.keys() & _RESERVED
            or per_row.keys() & _RESERVED
        ):
            raise _Unfit("a field at two levels, or where the expansion puts its own")
        for name in same.keys() & self.fields.keys():
            self._rows_of(name).extend(repeat(same[name], n))
        for name, values in requests.items():
            if name in _FIELD_SET:
                if type(values) is not list or len(values) != len(sizes):
                    raise _Unfit(f"request field {name}")
                column = self._rows_of(name)
                if single:
                    column.extend(values)
                else:
                    for value, size in zip(values, sizes, strict=True):
                        column.extend(repeat(value, size))
        for name, values in per_row.items():
            if type(values) is not list or len(values) != n:
                raise _Unfit(f"row field {name}")
            if name in _FIELD_SET:
                self._rows_of(name).extend(values)
        if single:
            self.row.extend(repeat(0, n))
        else:
            for size in sizes:
                self.row.extend(range(size))
        for name, spec in (frame.get("maps") or {}).items():
            if name not in _MAPS:
                raise _Unfit(f"map {name}")  # none the sink writes: expanded as it may be
            keys, columns = spec.get("keys"), spec.get("columns")
            if type(keys) is not list or type(columns) is not list or "rows" in spec:
                raise _Unfit(f"map {name}")
            if not columns:
                continue  # no mapping on any row
            if len(keys) != len(columns) or len(set(keys)) != len(keys):
                raise _Unfit(f"map {name} keys")
            known = self.maps[name]
            for key, values in zip(keys, columns, strict=True):
                if type(values) is not list or len(values) != n:
                    raise _Unfit(f"map {name} column")
                if type(key) is not str:
                    raise _Unfit(f"map {name} key")
                self._list(known, key).extend(values)
        self._block(same, time, n)

    def add_record(self, record: dict[str, Any]) -> None:
        for name in _FIELDS:
            value = record.get(name)
            if value is not None:
                self._rows_of(name).append(value)
        self.row.append(record.get("row"))
        for name in _MAPS:
            mapping = record.get(name) or {}
            if type(mapping) is not dict:
                raise _Unfit(f"record {name}")
            known = self.maps[name]
            for key, value in mapping.items():
                self._list(known, key).append(value)
        self._block({}, parse_time(record["time"]), 1)

    def table(self, segment: str) -> pa.Table:
        def full(values: list[Any]) -> list[Any]:
            values.extend(repeat(None, self.rows - len(values)))
            return values

        columns: dict[str, pa.Array] = {}
        at = pa.array(self.block_at, pa.int64())
        for name, dtype in _FIXED.items():
            if name == "row":
                columns[name] = pa.array(self.row, dtype)
            elif name == "time":  # each block's converted once
                columns[name] = pa.array(self.times, dtype).take(at)
            elif name in self.fields:
                columns[name] = pa.array(full(self.fields[name]), dtype)
            else:
                shared = [block.get(name) for block in self.blocks]
                columns[name] = pa.array(shared, dtype).take(at)
        columns["prediction"] = _column(full(self.fields["prediction"]))
        for name, prefix in _MAPS.items():
            for key, values in self.maps[name].items():
                columns[prefix + key] = _column(full(values))
        columns["segment"] = pa.array([segment] * self.rows, pa.string())
        return pa.table(columns)


Partition = Callable[[dict[str, Any]], str]
"""The partition of a record: a function of its ``model`` and the UTC date of its
``time`` only (batches of one model and day are placed once)."""


def _batch_partition(frame: dict[str, Any]) -> tuple[Any, datetime] | None:
    """The model and time every row of a batch shares (as the server writes them);
    ``None`` when it keeps either per request or per row (then each of its records is
    placed alone)."""
    same = frame.get("same") or {}
    if "time" not in same:
        return None
    for level in ("requests", "rows"):
        found = frame.get(level) or {}
        if "model" in found or "time" in found:
            return None
    return same.get("model"), parse_time(same["time"])


def segment_tables(
    items: Sequence[Any], *, segment: str, partition: Partition
) -> dict[str, pa.Table] | None:
    """One table per partition of a capture segment's decoded items (records and
    :class:`~vigil.capture.framing.Batch` es, in file order), or ``None`` when the segment
    must be expanded record by record (see the module docstring)."""
    partitions: dict[str, _Partition] = {}
    places: dict[tuple[Any, date], _Partition] = {}  # (model, UTC day): a batch's partition

    def place(record: dict[str, Any]) -> _Partition:
        where = partition(record)
        found = partitions.get(where)
        if found is None:
            found = partitions[where] = _Partition()
        return found

    try:
        for item in items:
            if type(item) is Batch:
                frame = item.frame
                shared = _batch_partition(frame)
                if shared is not None:
                    model, when = shared
                    key = (model, when.astimezone(UTC).date())
                    rows = places.get(key)
                    if rows is None:
                        rows = places[key] = place({"model": model, "time": when})
                    rows.add_batch(frame, when)
                    continue
                records = expand_batch(frame)
            else:
                records = [item]
            for record in records:
                if type(record) is not dict:
                    raise _Unfit("a record that is not an object")
                place(record).add_record(record)
        return {where: rows.table(segment) for where, rows in partitions.items()}
    except (_Unfit, *DATA_ERRORS, IndexError):
        return None
