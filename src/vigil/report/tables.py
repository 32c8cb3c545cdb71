"""Reading a whole CSV / Parquet file into column arrays, chunk by chunk.

Drift statistics need every value of every compared column (sorted once for KS and
Wasserstein), so the columns are gathered in full; the file itself is read in bounded
chunks through :mod:`vigil.bundle.reference` so that only the compared columns are ever
decoded and a caller can show progress. Column kinds come from the file's Arrow schema:
text, dictionary and boolean columns are categorical, the rest numeric, unless the caller
names the categorical ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.bundle.reference import CSV_SUFFIXES, PARQUET_SUFFIXES, Reference, open_reference
from vigil.errors import ReferenceDataError, ValidationError

if TYPE_CHECKING:
    import numpy.typing as npt
    import pyarrow as pa

Progress = Callable[[int], None]
"""Called with the number of rows just read."""

CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class ColumnarTable:
    """Every row of the chosen columns: float64 arrays (NaN missing) or object arrays."""

    name: str
    columns: dict[str, npt.NDArray[Any]]
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
    if p.suffix.lower() not in (*PARQUET_SUFFIXES, *CSV_SUFFIXES):
        raise ReferenceDataError(
            f"{side} data {p.name!r} is neither Parquet ({', '.join(PARQUET_SUFFIXES)}) nor "
            f"CSV ({', '.join(CSV_SUFFIXES)}); convert it first"
        )
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
    """Read every row of ``columns``: categorical ones as text, the others as float64."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts: dict[str, list[npt.NDArray[Any]]] = {c: [] for c in columns}
    n_rows = 0
    try:
        for chunk in table.chunks(columns):
            for name in columns:
                if name in categorical:
                    # Text labels on both sides, so 1 in one file meets 1 in the other.
                    text = pc.cast(chunk.categorical(name), pa.string())
                    parts[name].append(
                        np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
                    )
                else:
                    parts[name].append(_numeric(chunk, name, side))
            n_rows += chunk.n_rows
            if progress is not None:
                progress(chunk.n_rows)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise ReferenceDataError(
            f"cannot read {side} data {table.name!r}: {_first_line(str(exc))}"
        ) from exc
    arrays = {
        name: np.concatenate(chunks) if chunks else np.empty(0, dtype=np.float64)
        for name, chunks in parts.items()
    }
    return ColumnarTable(name=table.name or side, columns=arrays, n_rows=n_rows)


def _numeric(chunk: Any, name: str, side: str) -> npt.NDArray[np.float64]:
    try:
        values: npt.NDArray[np.float64] = chunk.numeric(name)
    except ReferenceDataError as exc:
        raise ValidationError(
            f"{side} column {name!r} is not numeric in this file; "
            f"pass --categorical {name} to compare it as categories",
            detail={"column": name, "side": side},
        ) from exc
    return values
