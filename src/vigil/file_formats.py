"""Data file formats, told apart by suffix: the one table behind batch scoring, feedback
files, reference data and ``vigil drift``.

Each reader accepts the formats it can read: rows one at a time (:data:`ROWS`: batch
scoring, feedback) or whole columns through Arrow (:data:`TABLES`: reference data,
``vigil drift``).

>>> format_of("scores.parquet", ROWS), format_of("rows.ndjson", ROWS)
('parquet', 'jsonl')
>>> format_of("out.bin", ROWS, explicit="csv"), format_of("ref.tsv", TABLES)
('csv', 'tsv')
>>> format_of("rows.xlsx", ROWS, hint=" (or pass --format)")
Traceback (most recent call last):
...
vigil.errors.DataFileError: cannot tell the format of 'rows.xlsx' from its suffix; use .csv, .txt, .parquet, .pq, .jsonl or .ndjson (or pass --format)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, TypeVar

from vigil.errors import DataFileError

__all__ = ["ROWS", "SUFFIXES", "TABLES", "Format", "RowFormat", "TableFormat", "format_of"]

Format = Literal["csv", "tsv", "parquet", "jsonl"]
RowFormat = Literal["csv", "parquet", "jsonl"]
TableFormat = Literal["csv", "tsv", "parquet"]

ROWS: tuple[RowFormat, ...] = ("csv", "parquet", "jsonl")
"""What batch scoring reads and writes, and feedback files are."""
TABLES: tuple[TableFormat, ...] = ("csv", "tsv", "parquet")
"""What reference data and ``vigil drift`` read (column by column, through Arrow)."""

SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

F = TypeVar("F", bound=str)


def format_of(
    path: str | os.PathLike[str],
    accept: tuple[F, ...],
    *,
    explicit: str | None = None,
    what: str = "",
    hint: str = "",
) -> F:
    """The format named by ``explicit``, else the one ``path``'s suffix says, if it is
    one of ``accept``; else a :class:`~vigil.errors.DataFileError` naming the file as
    ``what`` (``"reference data "``) and ending with ``hint``."""
    if explicit is not None:
        name = explicit.lower().lstrip(".")
        name = SUFFIXES.get(f".{name}", name)  # ndjson, pq, txt: the format they stand for
        for fmt in accept:
            if fmt == name:
                return fmt
        raise DataFileError(
            f"unknown format {explicit!r}; choose one of {', '.join(accept)}",
            detail={"format": explicit},
        )
    found = SUFFIXES.get(Path(path).suffix.lower())
    for fmt in accept:
        if fmt == found:
            return fmt
    known = [s for s, f in SUFFIXES.items() if f in accept]
    raise DataFileError(
        f"cannot tell the format of {what}{Path(path).name!r} from its suffix; use "
        f"{', '.join(known[:-1])} or {known[-1]}{hint}",
        detail={"path": str(path)},
    )
