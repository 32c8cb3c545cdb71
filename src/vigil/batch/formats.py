"""Which file formats batch scoring reads and writes, told apart by suffix.

>>> format_of("scores.parquet"), format_of("rows.ndjson"), format_of("out.bin", "csv")
('parquet', 'jsonl', 'csv')
>>> format_of("rows.xlsx")
Traceback (most recent call last):
...
vigil.errors.DataFileError: cannot tell the format of 'rows.xlsx' from its suffix; use .csv, .parquet, .pq, .jsonl or .ndjson (or pass --format)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args

from vigil.errors import DataFileError

Format = Literal["csv", "parquet", "jsonl"]
FORMATS: tuple[Format, ...] = get_args(Format)

SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def format_of(path: str | os.PathLike[str], explicit: str | None = None) -> Format:
    """The format named by ``explicit``, else the one ``path``'s suffix says."""
    if explicit is not None:
        name = explicit.lower().lstrip(".")
        if name == "ndjson":
            name = "jsonl"
        if name not in FORMATS:
            raise DataFileError(
                f"unknown format {explicit!r}; choose one of {', '.join(FORMATS)}",
                detail={"format": explicit},
            )
        return name
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        known = ", ".join(SUFFIXES)
        known = known.rsplit(", ", 1)[0] + " or " + known.rsplit(", ", 1)[1]
        raise DataFileError(
            f"cannot tell the format of {Path(path).name!r} from its suffix; use {known} "
            "(or pass --format)",
            detail={"path": str(path)},
        )
    return SUFFIXES[suffix]
