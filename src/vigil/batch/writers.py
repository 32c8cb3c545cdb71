"""Write scored chunks as CSV, Parquet or JSON lines, all or nothing.

A writer takes the schema of the first chunk and holds every later chunk to it (casting
where Arrow can do it losslessly), so a file never changes types half-way. The output
appears only when the whole job succeeded: chunks go to a hidden temporary file next to
it, renamed into place at the end (:func:`replacing`) and removed on any failure.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import pyarrow as pa

from vigil.errors import DataFileError

if TYPE_CHECKING:
    from vigil.file_formats import RowFormat

Sink: TypeAlias = Any
"""A path (``str``), or an open ``pyarrow.NativeFile`` (Ray's part files)."""


class ChunkWriter(Protocol):
    schema: pa.Schema

    def write(self, table: pa.Table, offset: int) -> None:
        """Append ``table`` (whose first row is row ``offset`` of the input)."""
        ...

    def close(self) -> None: ...


def open_writer(fmt: RowFormat, sink: Sink, schema: pa.Schema, *, name: str) -> ChunkWriter:
    """A writer of ``fmt`` to ``sink`` (a path or an open Arrow stream); ``name`` is how
    errors refer to the output."""
    if fmt == "parquet":
        return ParquetChunkWriter(sink, schema, name=name)
    if fmt == "csv":
        return CsvChunkWriter(sink, schema, name=name)
    return JsonlChunkWriter(sink, schema, name=name)


def conform(table: pa.Table, schema: pa.Schema, *, offset: int, name: str) -> pa.Table:
    """``table`` with exactly ``schema``'s columns and types, or a :class:`DataFileError`
    saying which column changed from row ``offset`` on."""
    if table.schema.equals(schema):
        return table
    known = set(schema.names)
    for column in table.column_names:
        if column not in known:
            raise DataFileError(
                f"{name}: column {column!r} first appears in rows from {offset} on; every "
                "row must have the same columns (or use a larger --chunk-rows)",
                detail={"field": column, "row": offset},
            )
    columns = []
    for f in schema:
        if f.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        column = table.column(f.name)
        if column.type != f.type:
            try:
                column = column.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise DataFileError(
                    f"{name}: column {f.name!r} holds {column.type} values in rows from "
                    f"{offset} on but {f.type} before; give each column one type",
                    detail={"field": f.name, "row": offset},
                ) from None
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _plain(schema: pa.Schema) -> pa.Schema:
    """Dictionary-encoded columns (pandas categoricals) as their value type."""
    return pa.schema(
        [
            pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f
            for f in schema
        ]
    )


class ParquetChunkWriter:
    def __init__(self, sink: Sink, schema: pa.Schema, *, name: str) -> None:
        # Parquet: only where a partition is read or written
        import pyarrow.parquet as pq

        self.schema = schema
        self.name = name
        # Dictionary-encoding float columns (features, probabilities) almost never pays and
        # made writing ~8x slower; text, integer and boolean columns keep it.
        encoded = [f.name for f in schema if not pa.types.is_floating(f.type)]
        self._writer = pq.ParquetWriter(sink, schema, use_dictionary=encoded)

    def write(self, table: pa.Table, offset: int) -> None:
        self._writer.write_table(conform(table, self.schema, offset=offset, name=self.name))

    def close(self) -> None:
        self._writer.close()


class CsvChunkWriter:
    def __init__(self, sink: Sink, schema: pa.Schema, *, name: str) -> None:
        # the CSV reader/writer: only for that format
        import pyarrow.csv as pcsv

        self.schema = _plain(schema)
        self.name = name
        try:
            self._writer = pcsv.CSVWriter(sink, self.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise DataFileError(
                f"{name}: CSV cannot hold these columns ({exc}); write Parquet or JSON lines",
            ) from None

    def write(self, table: pa.Table, offset: int) -> None:
        self._writer.write_table(conform(table, self.schema, offset=offset, name=self.name))

    def close(self) -> None:
        self._writer.close()


def _json_default(value: Any) -> Any:
    """What orjson does not encode itself: decimals as numbers, bytes as base64 text."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


def _values(column: pa.ChunkedArray) -> list[Any]:
    """A column as Python values; through NumPy (twice as fast) where that cannot change
    a value: plain numbers and booleans without nulls."""
    kind = column.type
    plain = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    if plain and column.null_count == 0:
        values: list[Any] = column.to_numpy().tolist()
        return values
    return list(column.to_pylist())


class JsonlChunkWriter:
    def __init__(self, sink: Sink, schema: pa.Schema, *, name: str) -> None:
        self.schema = schema
        self.name = name
        self._own = isinstance(sink, str)
        self._sink: Any = open(sink, "wb") if isinstance(sink, str) else sink  # noqa: SIM115

    def write(self, table: pa.Table, offset: int) -> None:
        # only for JSON lines
        import orjson

        # No conform(): each line carries its own keys, so columns may come and go.
        names = table.column_names
        columns = [_values(c) for c in table.columns]
        try:
            # orjson writes NaN as null, which is what JSON readers expect.
            self._sink.write(
                b"".join(
                    [
                        orjson.dumps(dict(zip(names, row, strict=True)), default=_json_default)
                        + b"\n"
                        for row in zip(*columns, strict=True)
                    ]
                )
            )
        except TypeError as exc:
            raise DataFileError(f"{self.name}: {exc}; write Parquet instead") from None

    def close(self) -> None:
        if self._own:
            self._sink.close()


# -- all or nothing ----------------------------------------------------------------------------


def _partial_name(output: Path) -> Path:
    return output.with_name(f".{output.name}.{secrets.token_hex(4)}.partial")


@contextmanager
def replacing(output: Path) -> Iterator[Path]:
    """A temporary path next to ``output`` that becomes ``output`` when the block ends
    without error, and is removed when it raises."""
    partial = _partial_name(output)
    try:
        yield partial
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)


@contextmanager
def replacing_dir(output: Path) -> Iterator[Path]:
    """Like :func:`replacing`, for a directory of part files (the Ray engine's output)."""
    partial = _partial_name(output)
    try:
        yield partial
        os.replace(partial, output)
    finally:
        if partial.exists():  # ours alone: its random name was made for this job
            shutil.rmtree(partial, ignore_errors=True)
