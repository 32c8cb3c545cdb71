"""Read a CSV, Parquet or JSON-lines file as a stream of bounded chunks.

Memory stays bounded by the chunk size, whatever the file size: Parquet through
``ParquetFile.iter_batches``, CSV through Arrow's streaming reader (re-cut into chunks of
exactly ``chunk_rows``), JSON lines ``chunk_rows`` lines at a time. Each reader knows how
far it has got, in rows (Parquet, whose footer gives the total) or bytes (the text
formats), for the progress bar.

Types come from the model's signature where the format leaves them open: a CSV file's
feature columns are read as text and parsed by :mod:`vigil.batch.inputs` (so a bad cell is
reported by row and column, not as an Arrow parse error), and a JSON-lines file's feature
fields are given their signature types. JSON lines that Arrow cannot type are decoded with
orjson and checked record by record, as the server checks a request.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pyarrow as pa

from vigil.batch.inputs import Chunk, text_feature_names
from vigil.errors import DataFileError

if TYPE_CHECKING:
    from vigil.bundle.signature import FeatureSpec, Signature
    from vigil.file_formats import RowFormat

Unit = Literal["rows", "bytes"]


class ChunkReader(Protocol):
    """What the scorer needs from a reader."""

    columns: list[str]
    total: int | None
    unit: Unit

    def chunks(self) -> Iterator[Chunk]: ...

    def position(self) -> int:
        """How far reading has got, in :attr:`unit`."""
        ...

    def close(self) -> None: ...


def open_reader(
    path: Path, fmt: RowFormat, signature: Signature, *, chunk_rows: int
) -> ChunkReader:
    """A reader of ``path`` in ``fmt`` yielding chunks of at most ``chunk_rows`` rows."""
    if fmt == "parquet":
        return ParquetReader(path, chunk_rows)
    if fmt == "csv":
        return CsvReader(path, signature, chunk_rows)
    return JsonlReader(path, signature, chunk_rows)


def _unreadable(path: Path, fmt: str, exc: Exception) -> DataFileError:
    return DataFileError(
        f"{path.name}: cannot read it as {fmt}: {str(exc).strip()[:300]}",
        detail={"path": str(path), "format": fmt},
    )


# -- Parquet ------------------------------------------------------------------------------


PARQUET_BUFFER_BYTES = 1 << 16
"""Read buffer of a Parquet column chunk; with it, one page at a time is held."""


class ParquetReader:
    unit: Unit = "rows"

    def __init__(self, path: Path, chunk_rows: int) -> None:
        # Parquet: only where a partition is read or written
        import pyarrow.parquet as pq

        self.path = path
        self.chunk_rows = chunk_rows
        try:
            # Page by page: the default pre-buffering reads a whole row group at once
            # (pandas writes up to a million rows per group), so memory grew with the file.
            self._file = pq.ParquetFile(path, pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES)
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(path, "Parquet", exc) from None
        self.columns: list[str] = list(self._file.schema_arrow.names)
        self.total: int | None = int(self._file.metadata.num_rows)
        self._done = 0

    def chunks(self) -> Iterator[Chunk]:
        try:
            for batch in self._file.iter_batches(batch_size=self.chunk_rows):
                chunk = Chunk(offset=self._done, table=pa.Table.from_batches([batch]))
                self._done += batch.num_rows
                yield chunk
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(self.path, "Parquet", exc) from None

    def position(self) -> int:
        return self._done

    def close(self) -> None:
        self._file.close()


# -- CSV -----------------------------------------------------------------------------------


def csv_convert_options(signature: Signature) -> Any:
    """Arrow CSV options: every feature column read as text (parsed later, so a bad cell
    gets a row number); empty cells and the usual NA spellings are missing values."""
    # the CSV reader/writer: only for that format
    import pyarrow.csv as pcsv

    return pcsv.ConvertOptions(
        column_types={f.name: pa.string() for f in signature.inputs},
        strings_can_be_null=True,
    )


CSV_BLOCK_BYTES = 1 << 18
"""Bytes Arrow's CSV reader parses at a time. Its background reader runs up to 32 blocks
ahead, so this sets the reader's memory (~8 MiB here, ~40 MiB at Arrow's 1 MiB default)
at no cost in speed; one row must fit in a block."""


class CsvReader:
    unit: Unit = "bytes"

    def __init__(self, path: Path, signature: Signature, chunk_rows: int) -> None:
        # the CSV reader/writer: only for that format
        import pyarrow.csv as pcsv

        self.path = path
        self.chunk_rows = chunk_rows
        self.text_columns = text_feature_names(signature)
        self.total: int | None = path.stat().st_size
        # An OSFile, not a path: its position tells the progress bar how far Arrow has read.
        self._file = pa.OSFile(str(path))
        try:
            self._reader = pcsv.open_csv(
                self._file,
                read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                convert_options=csv_convert_options(signature),
            )
        except (pa.ArrowException, OSError) as exc:
            self._file.close()
            raise self._error(exc) from None
        self.columns: list[str] = list(self._reader.schema.names)

    def _error(self, exc: Exception) -> DataFileError:
        if "straddl" in str(exc):  # Arrow's word for a row longer than a block
            return DataFileError(
                f"{self.path.name}: a row is longer than {CSV_BLOCK_BYTES >> 10} KiB, more "
                "than the CSV reader takes at once; convert the file to Parquet or JSON lines",
                detail={"path": str(self.path)},
            )
        return _unreadable(self.path, "CSV", exc)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._reader
        except (pa.ArrowException, OSError) as exc:
            raise self._error(exc) from None

    def chunks(self) -> Iterator[Chunk]:
        offset = 0
        for table in rebatch(self._batches(), self.chunk_rows):
            yield Chunk(offset=offset, table=table, text_columns=self.text_columns)
            offset += table.num_rows

    def position(self) -> int:
        return int(self._file.tell())

    def close(self) -> None:
        self._file.close()


def rebatch(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Re-cut record batches into tables of exactly ``rows`` rows (the last may be
    shorter), slicing without copying.

    >>> b = pa.record_batch({"x": list(range(5))})
    >>> [t.num_rows for t in rebatch(iter([b, b, b]), 4)]
    [4, 4, 4, 3]
    """
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            take = min(rows - count, batch.num_rows)
            pending.append(batch.slice(0, take))
            count += take
            batch = batch.slice(take)
            if count == rows:
                yield pa.Table.from_batches(pending)
                pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending)


# -- JSON lines ----------------------------------------------------------------------------


def json_field_type(spec: FeatureSpec) -> pa.DataType | None:
    """The Arrow type a JSON field of this feature is parsed as (None: let Arrow infer)."""
    if spec.dtype in ("float64", "float32"):
        return pa.float64()
    if spec.dtype in ("int64", "int32"):
        return pa.int64()
    if spec.dtype == "bool":
        return pa.bool_()
    cats = spec.categories or []
    if spec.dtype == "string" or (cats and all(isinstance(c, str) for c in cats)):
        return pa.string()
    if cats and all(type(c) is int for c in cats):
        return pa.int64()
    return None


def json_schema(signature: Signature, columns: list[str]) -> pa.Schema:
    """The types Arrow must give the feature fields among ``columns`` (a field the file
    does not have is left out, so it is not invented as a column of nulls)."""
    fields = []
    for spec in signature.inputs:
        kind = json_field_type(spec)
        if kind is not None and spec.name in columns:
            fields.append(pa.field(spec.name, kind))
    return pa.schema(fields)


def in_file_order(table: pa.Table, columns: list[str]) -> pa.Table:
    """``table`` with ``columns`` first, in that order (Arrow puts the fields of an explicit
    schema first), then any column the first record did not have.

    >>> in_file_order(pa.table({"b": [1], "a": [2], "c": [3]}), ["a", "b"]).column_names
    ['a', 'b', 'c']
    """
    names = table.column_names
    order = [c for c in columns if c in names] + [c for c in names if c not in columns]
    return table if order == names else table.select(order)


class JsonlReader:
    unit: Unit = "bytes"

    def __init__(self, path: Path, signature: Signature, chunk_rows: int) -> None:
        # only for JSON lines
        import orjson

        self.path = path
        self.signature = signature
        self.chunk_rows = chunk_rows
        self.total: int | None = path.stat().st_size
        self._fh = path.open("rb")
        self._lines = (line for line in self._fh if line.strip())
        first = next(self._lines, None)
        self._first = first
        try:
            head = orjson.loads(first) if first is not None else None
        except orjson.JSONDecodeError as exc:
            self._fh.close()
            raise DataFileError(f"{path.name}: row 0 is not valid JSON ({exc})") from None
        if not isinstance(head, dict):
            self._fh.close()
            what = "has no rows" if first is None else "row 0 is not a JSON object"
            raise DataFileError(f"{path.name}: {what}; JSON lines hold one object per line")
        # The first record names the columns; later records may leave fields out (null).
        self.columns: list[str] = list(head)
        self._schema = json_schema(signature, self.columns)

    def chunks(self) -> Iterator[Chunk]:
        offset = 0
        lines = itertools.chain([self._first] if self._first is not None else [], self._lines)
        while True:
            block = list(itertools.islice(lines, self.chunk_rows))
            if not block:
                return
            yield self._parse(block, offset)
            offset += len(block)

    def _parse(self, block: list[bytes], offset: int) -> Chunk:
        # only for JSON lines
        import orjson
        import pyarrow.json as pjson

        data = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in block)
        try:
            table = pjson.read_json(
                pa.BufferReader(data),
                read_options=pjson.ReadOptions(block_size=max(len(data), 1 << 20)),
                parse_options=pjson.ParseOptions(
                    explicit_schema=self._schema, unexpected_field_behavior="infer"
                ),
            )
        except pa.ArrowInvalid:
            # Arrow types a column once; a record it cannot fit is checked on its own by
            # the validator, which says which row and field are wrong.
            records = []
            for i, line in enumerate(block):
                try:
                    records.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise DataFileError(
                        f"{self.path.name}: row {offset + i} is not valid JSON ({exc})",
                        detail={"row": offset + i},
                    ) from None
            return Chunk(offset=offset, records=records)
        table = in_file_order(table, self.columns)
        if offset == 0:
            # Later chunks keep the first one's types, so every chunk writes alike.
            known = {f.name for f in self._schema}
            extra = [
                f for f in table.schema if f.name not in known and not pa.types.is_null(f.type)
            ]
            self._schema = pa.schema([*self._schema, *extra])
        return Chunk(offset=offset, table=table)

    def position(self) -> int:
        return int(self._fh.tell()) if not self._fh.closed else self.total or 0

    def close(self) -> None:
        self._fh.close()
