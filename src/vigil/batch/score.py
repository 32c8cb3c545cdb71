"""Score a data file with a model, chunk by chunk: :func:`score_file`.

Read a chunk → check it against the signature with the server's validator → predict →
append the answer columns → write; memory is bounded by the chunk size, never the file
size. Rows are numbered across the whole file in errors, and the output appears only
when every row was scored (see :mod:`vigil.batch.writers`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

from vigil.batch.inputs import ChunkValidator
from vigil.batch.predictions import Scorer
from vigil.batch.readers import Unit, open_reader
from vigil.batch.writers import ChunkWriter, open_writer, replacing
from vigil.errors import DataFileError, InvalidParameterError
from vigil.file_formats import ROWS, RowFormat, format_of

if TYPE_CHECKING:
    from vigil.bundle.model import LoadedBundle
    from vigil.bundle.signature import Signature

DEFAULT_CHUNK_ROWS = 65_536
"""Rows per chunk: large enough that per-chunk overhead vanishes, small enough that a
chunk of a wide table stays in tens of megabytes."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Progress after one chunk: ``rows`` scored so far; ``done`` of ``total`` in ``unit``
    (rows for Parquet, bytes read for the text formats; ``total`` None when unknown)."""

    rows: int
    done: int
    total: int | None
    unit: Unit


Progress = Callable[[Tick], None]


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """What a scoring job did."""

    rows: int
    seconds: float
    output: Path
    format: RowFormat
    engine: str = "local"
    chunks: int = 0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "seconds": round(self.seconds, 4),
            "rows_per_second": round(self.rows_per_second, 1),
            "output": str(self.output),
            "format": self.format,
            "engine": self.engine,
            "chunks": self.chunks,
        }


def formats_of(
    source: Path, output: Path, output_format: str | None = None
) -> tuple[RowFormat, RowFormat]:
    """The input's format and the output's (``output_format``, else its suffix's)."""
    return format_of(source, ROWS), format_of(
        output, ROWS, explicit=output_format, hint=" (or pass --format)"
    )


def check_paths(source: Path, output: Path) -> None:
    """Fail early, with what to do, on paths that cannot work."""
    if not source.is_file():
        raise DataFileError(
            f"input file {str(source)!r} does not exist", detail={"path": str(source)}
        )
    if output.exists() and output.resolve() == source.resolve():
        raise InvalidParameterError("the output would overwrite the input; choose another -o path")
    if output.is_dir():
        raise InvalidParameterError(f"the output {str(output)!r} is a directory; name a file")
    if not output.parent.is_dir():
        raise DataFileError(
            f"the output's directory {str(output.parent)!r} does not exist; create it first",
            detail={"path": str(output)},
        )


def score_file(
    model: LoadedBundle,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    output_format: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    proba: bool = False,
    allow_inf: bool = False,
    progress: Progress | None = None,
) -> BatchSummary:
    """Score every row of ``input`` with ``model`` and write ``output``.

    The output holds every input column, ``prediction`` and, with ``proba``, one
    ``proba_<class>`` column per class. Formats (CSV, Parquet, JSON lines) follow the
    suffixes unless ``output_format`` is given. A row the model cannot accept stops the
    job with a :class:`~vigil.errors.ValidationError` naming the row (counted from 0
    across the file, as the server counts rows of a request) and the feature; no output
    file is left behind.

    >>> import tempfile, pathlib, pandas as pd
    >>> from sklearn.tree import DecisionTreeRegressor
    >>> from vigil.bundle.flavors.sklearn import SklearnModel, estimator_signature
    >>> from vigil.bundle.model import LoadedBundle
    >>> frame = pd.DataFrame({"x": [0.0, 1.0, 2.0], "id": [7, 8, 9]})
    >>> tree = DecisionTreeRegressor().fit(frame[["x"]], [1.0, 3.0, 5.0])
    >>> model = LoadedBundle(SklearnModel(tree), estimator_signature(tree))
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> frame.to_csv(tmp / "in.csv", index=False)
    >>> score_file(model, tmp / "in.csv", tmp / "out.csv").rows
    3
    >>> print((tmp / "out.csv").read_text().strip())
    "x","id","prediction"
    0,7,1
    1,8,3
    2,9,5
    """
    if chunk_rows < 1:
        raise InvalidParameterError(f"chunk_rows must be at least 1, got {chunk_rows}")
    source, dest = Path(input), Path(output)
    in_fmt, out_fmt = formats_of(source, dest, output_format)
    check_paths(source, dest)
    started = perf_counter()
    check = ChunkValidator(model.signature, allow_inf=allow_inf, source=source.name)
    rows = chunks = 0
    reader = open_reader(source, in_fmt, model.signature, chunk_rows=chunk_rows)
    try:
        check.check_columns(reader.columns)
        scorer = Scorer(model, reader.columns, proba=proba)
        with replacing(dest) as partial:
            writer: ChunkWriter | None = None
            try:
                for chunk in reader.chunks():
                    scored = scorer.score(check.prepare(chunk))
                    if writer is None:
                        writer = open_writer(out_fmt, str(partial), scored.schema, name=dest.name)
                    writer.write(scored, chunk.offset)
                    rows += scored.num_rows
                    chunks += 1
                    if progress is not None:
                        progress(Tick(rows, reader.position(), reader.total, reader.unit))
            finally:
                if writer is not None:
                    writer.close()
            if rows == 0:
                raise DataFileError(f"{source.name} has no rows; nothing to score")
    finally:
        reader.close()
    return BatchSummary(
        rows=rows,
        seconds=perf_counter() - started,
        output=dest,
        format=out_fmt,
        engine="local",
        chunks=chunks,
    )


def check_file(
    signature: Signature,
    input: str | os.PathLike[str],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    allow_inf: bool = False,
) -> int:
    """Check every row of ``input`` against ``signature`` without predicting; the number
    of rows, or the first bad row's :class:`~vigil.errors.ValidationError`."""
    source = Path(input)
    check = ChunkValidator(signature, allow_inf=allow_inf, source=source.name)
    reader = open_reader(source, format_of(source, ROWS), signature, chunk_rows=chunk_rows)
    rows = 0
    try:
        check.check_columns(reader.columns)
        for chunk in reader.chunks():
            rows += check.prepare(chunk).table.num_rows
    finally:
        reader.close()
    return rows
