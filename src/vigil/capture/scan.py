"""Stream the inference log: an Arrow dataset scan in record batches, never the whole span.

:func:`scan_capture` finds the compacted parts of a model (every model for ``None``) whose
day partition meets ``[since, until)`` from the partition directories alone
(``capture/model=<name>/date=<day>/``: pruned by model and day before any file is opened),
scans them as one Arrow dataset with only the columns asked for and the time (and version)
filter pushed into the scan (row groups whose statistics miss the span are not read), and
yields record batches; then the rows of the segments not yet compacted, which the
capture's segment rotation bounds. Memory holds a few batches, whatever the span holds.

Parts written at different times may disagree on a column (a feature sent as a number,
then as text): the scan reads such a column as text everywhere, as
:func:`vigil.capture.reader.read_capture` does; a column a part lacks is null there.
Batches come part after part (each part in time order), not sorted across parts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vigil.capture.compact import CAPTURE_ROOT, model_dir, partition_dirs
from vigil.capture.crypt import log_filesystem, open_log_file, store_codec
from vigil.capture.reader import list_segments, uncompacted_tables

if TYPE_CHECKING:
    from vigil.storage.artifacts import ArtifactStore

BATCH_ROWS = 65_536
"""Rows per record batch: what a scan holds of the log at a time (a few of them)."""


@dataclass(frozen=True)
class CaptureScan:
    """A scan ready to run: its columns (:attr:`schema`) and its :meth:`batches`."""

    schema: pa.Schema
    parts: list[str]
    """The files of the compacted parts the scan reads (after partition pruning)."""
    _store: ArtifactStore | None
    _segments: list[pa.Table]
    _filter: Any
    _batch_rows: int
    _full: pa.Schema
    """Every column of the span (the filter may name columns the projection leaves out)."""
    _times: dict[str, list[Any] | None] = field(default_factory=dict)
    """Each part's ``time`` statistics per row group, read once for every narrowed copy."""

    def _part_may_hold(self, part: str, since: datetime | None, until: datetime | None) -> bool:
        import pyarrow.parquet as pq  # Parquet footers: only where a scan is narrowed

        if part not in self._times:
            assert self._store is not None
            with open_log_file(self._store, part) as fh:
                parquet = pq.ParquetFile(fh)
                index = parquet.schema_arrow.get_field_index("time")
                meta = parquet.metadata
                self._times[part] = (
                    None
                    if index < 0
                    else [
                        meta.row_group(i).column(index).statistics
                        for i in range(meta.num_row_groups)
                    ]
                )
        stats = self._times[part]
        return stats is None or any(_may_hold(s, since, until) for s in stats)

    def narrowed(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        columns: list[str] | None = None,
    ) -> CaptureScan:
        """The same scan kept to ``since <= time < until`` and to ``columns`` (those of them
        the span has; the scan's own when ``None``), without listing the parts or reading
        the segments again: a reader that walks a span piece by piece lists it once."""
        import pyarrow.compute as pc  # Arrow compute: the narrowed filter
        import pyarrow.dataset as ds

        since, until = _utc(since), _utc(until)
        where = self._filter
        if since is not None:
            where = _and(where, ds.field("time") >= pc.scalar(since))
        if until is not None:
            where = _and(where, ds.field("time") < pc.scalar(until))
        schema = self.schema
        if columns is not None:
            schema = pa.schema([self._full.field(c) for c in columns if c in self._full.names])
        parts = self.parts
        if since is not None or until is not None:
            # Parts whose row groups all miss the span are not opened by the scan at all:
            # a reader walking a long span slice by slice would open every part each time.
            parts = [p for p in parts if self._part_may_hold(p, since, until)]
        return replace(self, schema=schema, parts=parts, _filter=where)

    def filtered(self, where: Callable[[pa.Schema], Any]) -> CaptureScan:
        """This scan with the filter ``where(schema)`` added (a :mod:`pyarrow.dataset`
        expression, or ``None`` for none), given every column of the span: pushed into the
        scan like the time filter, so row groups whose statistics rule it out are not read
        (e.g. ``endpoint == name``)."""
        extra = where(self._full)
        if extra is None:
            return self
        return replace(self, _filter=extra if self._filter is None else self._filter & extra)

    def projected(self, columns: list[str]) -> CaptureScan:
        """This scan keeping only those of ``columns`` it has (the same files and rows)."""
        return replace(self, schema=pa.schema([f for f in self.schema if f.name in columns]))

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows, one record batch at a time."""
        import pyarrow.dataset as ds  # Arrow datasets: only where the log is scanned

        if self.parts:
            assert self._store is not None
            dataset = ds.dataset(
                self.parts,
                schema=self._full,
                format="parquet",
                filesystem=log_filesystem(self._store),
            )
            # One file and a couple of batches read ahead: Arrow's defaults (4 files, 16
            # batches) would hold tens of batches at once.
            scanner = dataset.scanner(
                columns=self.schema.names,
                filter=self._filter,
                batch_size=self._batch_rows,
                batch_readahead=2,
                fragment_readahead=1,
            )
            for batch in scanner.to_batches():
                if batch.num_rows:
                    yield batch
        for table in self._segments:
            table = _conform(table, self._full)
            if self._filter is not None:
                table = table.filter(self._filter)
            yield from table.select(self.schema.names).to_batches(self._batch_rows)


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("pass timezone-aware datetimes (e.g. datetime(..., tzinfo=UTC))")
    return value.astimezone(UTC) if value is not None else None


def _unify(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for every part: numbers widened, a column of clashing types as text."""
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        types: dict[str, set[pa.DataType]] = {}
        for s in schemas:
            for f in s:
                if not pa.types.is_null(f.type):
                    types.setdefault(f.name, set()).add(f.type)
        clash = {n for n, ts in types.items() if len(ts) > 1}
        text = [
            pa.schema([f.with_type(pa.string()) if f.name in clash else f for f in s])
            for s in schemas
        ]
        return pa.unify_schemas(text, promote_options="permissive")


def _may_hold(stats: Any, since: datetime | None, until: datetime | None) -> bool:
    """Whether a row group's ``time`` statistics allow a row in ``[since, until)``."""
    if stats is None or not stats.has_min_max:
        return True
    return (since is None or stats.max >= since) and (until is None or stats.min < until)


def _and(left: Any, right: Any) -> Any:
    return right if left is None else left & right


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
        for f in schema
    ]
    return pa.table(columns, schema=schema)


def scan_capture(
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    version: int | None = None,
    *,
    columns: list[str] | None = None,
    store: ArtifactStore | None = None,
    log_dir: str | Path | None = None,
    batch_rows: int = BATCH_ROWS,
) -> CaptureScan:
    """A streaming scan of the captured rows of ``model`` with ``since <= time < until``
    (timezone-aware; ``None``: unbounded) and ``version``, keeping only ``columns`` (those
    of them the log has; every column when ``None``). See the module docstring."""
    import pyarrow.compute as pc  # Arrow compute: the scan's filter
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    since, until = _utc(since), _utc(until)
    first = since.date() if since is not None else date.min
    # ``until`` is exclusive: a span ending at midnight does not open the next day.
    last = (until - timedelta(microseconds=1)).date() if until is not None else date.max
    files: list[str] = []
    compacted: set[tuple[str, str, date]] = set()
    schemas: list[pa.Schema] = []
    listed = list_segments(log_dir)  # before the parts (see vigil.capture.reader)
    if store is not None:
        wanted = model_dir(model) if model is not None else None
        for path, day in partition_dirs(store, root=CAPTURE_ROOT):
            mdir = path.rsplit("/", 2)[-2]
            if not first <= day <= last or (wanted is not None and mdir != wanted):
                continue
            for part in sorted(store.fs.glob(f"{path}/part-*.parquet")):
                sid = str(part).rsplit("/", 1)[-1][len("part-") : -len(".parquet")]
                compacted.add((sid, mdir, day))
                files.append(str(part))
                with open_log_file(store, part) as fh:
                    schemas.append(pq.read_schema(fh))
    segments = list(
        uncompacted_tables(
            log_dir, model, compacted, codec=store_codec(store), segments=listed, store=store
        )
    )
    schemas.extend(t.schema for t in segments)
    if not schemas:
        return CaptureScan(pa.schema([]), [], store, [], None, batch_rows, pa.schema([]))
    full = _unify(schemas)
    schema = full
    if columns is not None:
        schema = pa.schema([full.field(c) for c in columns if c in full.names])
    where = ds.field("model") == model if model is not None and "model" in full.names else None
    conditions = []
    if since is not None:
        conditions.append(ds.field("time") >= pc.scalar(since))
    if until is not None:
        conditions.append(ds.field("time") < pc.scalar(until))
    if version is not None:
        conditions.append(ds.field("version") == version)
    for c in conditions:
        where = c if where is None else where & c
    return CaptureScan(schema, files, store, segments, where, batch_rows, full)
