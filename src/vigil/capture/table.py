"""Log records as a flat Arrow table: one column per feature and per class probability.

Nested ``features`` become ``feature.<name>`` columns and ``probabilities`` become
``proba.<class>`` columns, so drift and performance code reads plain columns. A column
whose values mix types (a client sent ``1`` and ``"1"``) is stored as text rather than
failing. ``segment`` names the log segment a row came from (compaction is idempotent by it).

>>> t = records_to_table([{"request_id": "r", "row": 0, "time": "2025-01-02T03:04:05+00:00",
...     "model": "m", "features": {"a": 1.5}, "prediction": 1,
...     "probabilities": {"0": 0.3, "1": 0.7}}], segment="s1")
>>> t.column_names[:3], t["feature.a"].to_pylist(), t["proba.1"].to_pylist()
(['request_id', 'row', 'time'], [1.5], [0.7])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

FEATURE_PREFIX = "feature."
PROBA_PREFIX = "proba."
PASSTHROUGH_PREFIX = "passthrough."
"""Columns of fields sent beside the features and never given to the model (sensitive
attributes for fairness monitoring: :mod:`vigil.monitor.fairness`)."""

_FIXED: dict[str, pa.DataType] = {
    "request_id": pa.string(),
    "row": pa.int64(),
    "time": pa.timestamp("us", tz="UTC"),
    "route": pa.string(),
    "model": pa.string(),
    "version": pa.int64(),
    "variant": pa.string(),
    "caller": pa.string(),
    "endpoint": pa.string(),
    "propensity": pa.float64(),
    "latency_ms": pa.float64(),
    "status": pa.int64(),
    "error_code": pa.string(),
    "error_message": pa.string(),
    "raw_body": pa.string(),
    "cached": pa.bool_(),
}


log = logging.getLogger("vigil.capture")

DATA_ERRORS = (ValueError, TypeError, OverflowError, KeyError, AttributeError, pa.ArrowException)
"""What converting a record that does not fit its columns raises (a number past 64 bits, a
time that is no time, a missing field)."""

ToTable = Callable[..., pa.Table]
"""``to_table(records, segment=...)``: :func:`records_to_table` or the feedback one."""


def _column(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def parse_time(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def records_to_table(records: Sequence[dict[str, Any]], *, segment: str) -> pa.Table:
    """A flat table of capture records (as written by the sink)."""
    columns: dict[str, pa.Array] = {}
    for name, dtype in _FIXED.items():
        values = [r.get(name) for r in records]
        if name == "time":
            values = [parse_time(v) if v is not None else None for v in values]
        columns[name] = pa.array(values, dtype)
    columns["prediction"] = _column([r.get("prediction") for r in records])
    for prefix, key in (
        (FEATURE_PREFIX, "features"),
        (PROBA_PREFIX, "probabilities"),
        (PASSTHROUGH_PREFIX, "passthrough"),
    ):
        names: dict[str, None] = {}
        for r in records:
            names.update(dict.fromkeys(r.get(key) or ()))
        for n in names:
            columns[prefix + n] = _column([(r.get(key) or {}).get(n) for r in records])
    columns["segment"] = pa.array([segment] * len(records), pa.string())
    return pa.table(columns)


def tolerant_table(
    to_table: ToTable, records: Sequence[Any], *, segment: str
) -> tuple[pa.Table | None, list[tuple[Any, str]]]:
    """The table of the ``records`` that convert, and each one that does not with why.

    One bad record (written by an older vigil, or damaged) must not make its whole segment
    unreadable: when the batch fails, the records are tried one at a time, which costs
    something only on that rare path.

    >>> table, bad = tolerant_table(records_to_table, [
    ...     {"request_id": "a", "row": 0, "time": "2025-01-02T03:04:05+00:00"},
    ...     {"request_id": "b", "row": 2**63, "time": "2025-01-02T03:04:05+00:00"}], segment="s")
    >>> table["request_id"].to_pylist(), [r["request_id"] for r, _why in bad]
    (['a'], ['b'])
    """
    try:
        return to_table(records, segment=segment), []
    except DATA_ERRORS:
        pass
    good: list[Any] = []
    bad: list[tuple[Any, str]] = []
    for record in records:
        try:
            to_table([record], segment=segment)
        except DATA_ERRORS as exc:
            bad.append((record, f"{type(exc).__name__}: {exc}"[:500]))
        else:
            good.append(record)
    if not good:
        return None, bad
    try:
        return to_table(good, segment=segment), bad
    except DATA_ERRORS as exc:  # each fits alone but not together: keep them aside as well
        return None, bad + [(r, f"{type(exc).__name__}: {exc}"[:500]) for r in good]


def readable_table(
    to_table: ToTable, records: Sequence[Any], *, segment: str, what: str
) -> pa.Table | None:
    """The table of the ``records`` that convert, for a reader: the ones that do not are
    logged (``what`` names them, e.g. ``"capture"``) and left for compaction to quarantine."""
    table, bad = tolerant_table(to_table, records, segment=segment)
    if bad:
        log.warning(
            "skipped %d %s record(s) of segment %s that cannot be read as rows (first: %s); "
            "compaction will quarantine them",
            len(bad),
            what,
            segment,
            bad[0][1],
        )
    return table


def read_part(
    source: Any, *, since: datetime | None = None, until: datetime | None = None
) -> pa.Table | None:
    """The rows of a compacted Parquet part (a file object), leaving out the row groups
    whose ``time`` statistics show no row in ``[since, until)``; ``None`` when that is all
    of them. Readers of a recent span then pay for the footer of the older parts only,
    not for every row of their date partition. Rows are not filtered one by one: that is
    the caller's."""
    # Parquet: only where a partition is read or written
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(source)
    index = parquet.schema_arrow.get_field_index("time")
    if index < 0 or (since is None and until is None):
        return parquet.read()
    metadata = parquet.metadata
    keep = [
        i
        for i in range(metadata.num_row_groups)
        if _may_hold(metadata.row_group(i).column(index).statistics, since, until)
    ]
    if not keep:
        return None
    return parquet.read_row_groups(keep)


def _may_hold(stats: Any, since: datetime | None, until: datetime | None) -> bool:
    if stats is None or not stats.has_min_max:
        return True
    return (since is None or stats.max >= since) and (until is None or stats.min < until)


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """Tables with possibly different columns unioned (missing values null); a column whose
    types cannot be reconciled (numbers here, text there) is read as text everywhere."""
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        types: dict[str, set[pa.DataType]] = {}
        for t in tables:
            for f in t.schema:
                if not pa.types.is_null(f.type):
                    types.setdefault(f.name, set()).add(f.type)
        clash = {n for n, ts in types.items() if len(ts) > 1}
        return pa.concat_tables(
            [_text_columns(t, clash) for t in tables], promote_options="permissive"
        )


def _text_columns(table: pa.Table, names: set[str]) -> pa.Table:
    for i, field in enumerate(table.schema):
        if field.name in names and not pa.types.is_string(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.string()))
    return table
