"""Reading a whole CSV / Parquet file into column arrays, a piece at a time.

Drift statistics need every value of every compared column (sorted once for KS and
Wasserstein), so the columns are gathered in full, and nothing else: a Parquet file is
read one column at a time, a CSV file in bounded chunks through
:mod:`vigil.bundle.reference`, so only the compared columns are ever decoded, memory
holds little beyond the result, and a caller can show progress. Column kinds come from
the file's Arrow schema: text, dictionary and boolean columns are categorical, the rest
numeric, unless the caller names the categorical ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.bundle.reference import Reference, open_reference
from vigil.errors import ReferenceDataError, ValidationError
from vigil.file_formats import TABLES, format_of

if TYPE_CHECKING:
    import numpy.typing as npt
    import pyarrow as pa

Progress = Callable[[int], None]
"""Called with the number of rows just read."""

CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class ColumnarTable:
    """Every row of the chosen columns: float64 arrays (NaN missing) or, for categorical
    columns, pandas ``Categorical`` of text labels (missing as missing)."""

    name: str
    columns: dict[str, Any]
    n_rows: int


def open_table(path: str | Path, side: str) -> Reference:
    """Open a CSV or Parquet file, with errors that name the ``side`` it plays.

    >>> open_table("nowhere.csv", "current")
    Traceback (most recent call last):
    ...
    vigil.errors.ReferenceDataError: current data 'nowhere.csv' is not a file; check the path
    """
    p = Path(path)
    if not p.is_file():
        raise ReferenceDataError(f"{side} data {str(p)!r} is not a file; check the path")
    format_of(p, TABLES, what=f"{side} data ", hint="; convert it first")
    try:
        return open_reference(p, chunk_rows=CHUNK_ROWS)
    except ReferenceDataError as exc:
        raise ReferenceDataError(
            f"cannot read {side} data {p.name!r}: {_first_line(exc.message)}"
        ) from exc


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def is_categorical_type(data_type: pa.DataType) -> bool:
    """Whether an Arrow type holds categories (text, dictionary, boolean)."""
    # PyArrow: only when a table is built
    import pyarrow as pa

    return bool(
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_dictionary(data_type)
        or pa.types.is_boolean(data_type)
        or pa.types.is_binary(data_type)
    )


def check_columns(table: Reference, names: Iterable[str], side: str) -> None:
    """Fail with the available columns when a named column is not in ``table``."""
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise ValidationError(
            f"column {missing[0]!r} is missing from the {side} data; its columns are "
            f"{table.columns}",
            detail={"column": missing[0], "side": side},
        )


def read_columns(
    table: Reference,
    columns: list[str],
    categorical: set[str],
    *,
    side: str,
    progress: Progress | None = None,
) -> ColumnarTable:
    """Read every row of ``columns``: categorical ones as text, the others as float64.

    A Parquet file is read one column at a time, so memory holds the result plus one
    column in flight (not a whole row group of every column); CSV is read in chunks.
    """
    # PyArrow: only when a table is built
    import pyarrow as pa

    try:
        if table.path is not None and table.format == "parquet":
            arrays, n_rows = _parquet_columns(table.path, columns, categorical, side, progress)
        else:
            arrays, n_rows = _chunked_columns(table, columns, categorical, side, progress)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise ReferenceDataError(
            f"cannot read {side} data {table.name!r}: {_first_line(str(exc))}"
        ) from exc
    return ColumnarTable(name=table.name or side, columns=arrays, n_rows=n_rows)


def _parquet_columns(
    path: Path, columns: list[str], categorical: set[str], side: str, progress: Progress | None
) -> tuple[dict[str, Any], int]:
    # Parquet: only where a partition is read or written
    import pyarrow.parquet as pq

    arrays: dict[str, Any] = {}
    with pq.ParquetFile(path) as pf:
        n_rows = pf.metadata.num_rows
        done = 0
        for i, name in enumerate(columns):
            column = pf.read(columns=[name]).column(0)
            arrays[name] = _labels(column) if name in categorical else _numeric(column, name, side)
            if progress is not None:
                # The bar counts rows: each column read is its share of them.
                step = n_rows * (i + 1) // len(columns) - done
                progress(step)
                done += step
    return arrays, n_rows


def _chunked_columns(
    table: Reference,
    columns: list[str],
    categorical: set[str],
    side: str,
    progress: Progress | None,
) -> tuple[dict[str, Any], int]:
    parts: dict[str, list[Any]] = {c: [] for c in columns}
    n_rows = 0
    for chunk in table.chunks(columns):
        for name in columns:
            if name in categorical:
                parts[name].append(_labels(chunk.categorical(name)))
            else:
                parts[name].append(_numeric_chunk(chunk, name, side))
        n_rows += chunk.n_rows
        if progress is not None:
            progress(chunk.n_rows)
    # Joined one column at a time, each column's pieces freed as soon as it is whole.
    arrays = {name: _join(parts.pop(name), name in categorical) for name in columns}
    return arrays, n_rows


def _labels(values: Any) -> Any:
    """Text labels on both sides, so 1 in one file meets 1 in the other; kept as a pandas
    ``Categorical`` (codes + categories), never as one Python string per row."""
    # PyArrow: only when a table is built
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(values, pa.string())
    return pc.dictionary_encode(text).to_pandas().array


def _join(chunks: list[Any], categorical: bool) -> Any:
    if not chunks:
        return np.empty(0, dtype=np.float64)
    if categorical:
        # pandas: only when a frame is built
        from pandas.api.types import union_categoricals

        return union_categoricals(chunks) if len(chunks) > 1 else chunks[0]
    return np.concatenate(chunks)


def _not_numeric(name: str, side: str) -> ValidationError:
    return ValidationError(
        f"{side} column {name!r} is not numeric in this file; "
        f"pass --categorical {name} to compare it as categories",
        detail={"column": name, "side": side},
    )


def _numeric(column: Any, name: str, side: str) -> npt.NDArray[np.float64]:
    """An Arrow column as float64, NaN for missing values."""
    # PyArrow: only when a table is built
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        as_float = pc.cast(column, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise _not_numeric(name, side) from exc
    values: npt.NDArray[np.float64] = as_float.to_numpy()
    return values


def _numeric_chunk(chunk: Any, name: str, side: str) -> npt.NDArray[np.float64]:
    try:
        values: npt.NDArray[np.float64] = chunk.numeric(name)
    except ReferenceDataError as exc:
        raise _not_numeric(name, side) from exc
    return values
