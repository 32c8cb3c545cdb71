"""Reading reference data in bounded chunks: a DataFrame, or a Parquet / CSV file.

Every chunk offers its columns the two ways the profile needs them: numeric columns as
float64 NumPy arrays (NaN for missing), categorical columns as Arrow arrays (for fast
value counts), and the whole chunk as a pandas frame for the model's ``predict``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.errors import ReferenceDataError
from vigil.file_formats import TABLES, TableFormat, format_of

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd
    import pyarrow as pa


class Chunk:
    """Some consecutive rows of the reference data."""

    def __init__(self, arrow: pa.Table | pa.RecordBatch | None, frame: pd.DataFrame | None):
        self._arrow = arrow
        self._frame = frame
        self.n_rows = (
            arrow.num_rows if arrow is not None else len(frame) if frame is not None else 0
        )

    def numeric(self, name: str) -> npt.NDArray[np.float64]:
        """Column ``name`` as float64 with NaN for missing values."""
        if self._frame is not None:
            series = self._frame[name]
            try:
                return series.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise ReferenceDataError(
                    f"reference column {name!r} is declared numeric but holds "
                    f"{series.dtype} values; fix the data or declare it categorical"
                ) from exc
        import pyarrow as pa  # PyArrow: only when reading reference data
        import pyarrow.compute as pc

        assert self._arrow is not None
        column = self._arrow.column(name)
        try:
            as_float = pc.cast(column, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ReferenceDataError(
                f"reference column {name!r} is declared numeric but holds {column.type} "
                "values; fix the data or declare it categorical"
            ) from exc
        out: npt.NDArray[np.float64] = as_float.to_numpy(zero_copy_only=False)
        return out

    def categorical(self, name: str) -> pa.Array | pa.ChunkedArray:
        """Column ``name`` as an Arrow array (nulls for missing values)."""
        import pyarrow as pa  # PyArrow: only when reading reference data

        if self._frame is not None:
            series = self._frame[name]
            try:
                return pa.array(series, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # Mixed Python objects: compare them by their text, keeping missing missing.
                return pa.array(series.map(str).where(series.notna(), None), from_pandas=True)
        assert self._arrow is not None
        column: pa.Array | pa.ChunkedArray = self._arrow.column(name)
        return column

    def raw(self, name: str, idx: npt.NDArray[np.intp]) -> npt.NDArray[Any]:
        """The values of column ``name`` at positions ``idx``, as they are in the data."""
        if self._frame is not None:
            values: npt.NDArray[Any] = self._frame[name].to_numpy()[idx]
            return values
        import pyarrow as pa  # PyArrow: only when reading reference data

        assert self._arrow is not None
        taken = self._arrow.column(name).take(pa.array(idx))
        out: npt.NDArray[Any] = taken.to_numpy(zero_copy_only=False)
        return out

    def frame(self, columns: list[str]) -> pd.DataFrame:
        """The chunk as a pandas frame with ``columns`` in that order."""
        if self._frame is not None:
            return self._frame[columns]
        assert self._arrow is not None
        frame: pd.DataFrame = self._arrow.select(columns).to_pandas()
        return frame


class Reference:
    """Reference data read chunk by chunk (see :func:`open_reference`)."""

    def __init__(
        self,
        *,
        schema: pa.Schema,
        n_rows: int | None,
        name: str | None,
        path: Path | None,
        frame: pd.DataFrame | None,
        chunk_rows: int,
        format: TableFormat | None = None,
    ) -> None:
        self.schema = schema
        self.n_rows = n_rows
        self.name = name
        self.path = path
        self.format = format
        """The file's format (``None`` for a DataFrame)."""
        self.in_memory = frame is not None
        self._frame = frame
        self._chunk_rows = chunk_rows

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def chunks(self, columns: list[str]) -> Iterator[Chunk]:
        """The rows in order, ``chunk_rows`` at a time (CSV: about that many)."""
        if self._frame is not None:
            frame = self._frame
            for start in range(0, len(frame), self._chunk_rows):
                yield Chunk(None, frame.iloc[start : start + self._chunk_rows])
            return
        assert self.path is not None
        if self.format == "parquet":
            import pyarrow.parquet as pq  # PyArrow: only when reading reference data

            # pre_buffer=False: with it on, the reader keeps every row group's raw bytes
            # it has read until the file is closed, so memory grows with the file (1.7 GB
            # for a 10M-row, 1.7 GB file) instead of staying at one row group.
            with pq.ParquetFile(self.path, pre_buffer=False) as pf:
                for batch in pf.iter_batches(batch_size=self._chunk_rows, columns=columns):
                    yield Chunk(batch, None)
            return
        reader = _open_csv(self.path, self._csv_block_bytes(), columns, tabs=self.format == "tsv")
        try:
            for batch in reader:
                yield Chunk(batch, None)
        finally:
            reader.close()

    def _csv_block_bytes(self) -> int:
        # Arrow cuts CSV into byte blocks; aim for about chunk_rows rows of ~16 bytes a cell.
        width = max(len(self.schema.names), 1)
        return max(1 << 12, self._chunk_rows * width * 16)


def _open_csv(
    path: Path, block_size: int, columns: list[str] | None = None, *, tabs: bool = False
) -> Any:
    import pyarrow as pa  # PyArrow: only when reading reference data
    import pyarrow.csv as pcsv

    options = pcsv.ReadOptions(block_size=block_size)
    parse = pcsv.ParseOptions(delimiter="\t" if tabs else ",")
    # An empty CSV field is a missing value, for text columns too (as pandas reads it).
    convert = pcsv.ConvertOptions(include_columns=columns or [], strings_can_be_null=True)
    try:
        return pcsv.open_csv(
            path, read_options=options, parse_options=parse, convert_options=convert
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise ReferenceDataError(f"cannot read reference CSV {path.name!r}: {exc}") from exc


def open_reference(reference: pd.DataFrame | str | Path, *, chunk_rows: int = 200_000) -> Reference:
    """Open reference data: a pandas DataFrame or a path to a Parquet or CSV file.

    >>> import pandas as pd
    >>> ref = open_reference(pd.DataFrame({"x": [1.0, 2.0, None]}), chunk_rows=2)
    >>> ref.n_rows, ref.columns, [c.n_rows for c in ref.chunks(["x"])]
    (3, ['x'], [2, 1])
    """
    import pandas as pd  # PyArrow: only when reading reference data
    import pyarrow as pa

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if isinstance(reference, pd.DataFrame):
        try:
            schema = pa.Schema.from_pandas(reference.head(1000), preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ReferenceDataError(
                f"reference data has a column Arrow cannot read: {exc}"
            ) from exc
        return Reference(
            schema=schema,
            n_rows=len(reference),
            name=None,
            path=None,
            frame=reference,
            chunk_rows=chunk_rows,
        )
    path = Path(reference)
    if not path.is_file():
        raise ReferenceDataError(f"reference data {str(path)!r} is not a file")
    fmt = format_of(
        path, TABLES, what="reference data ", hint="; convert it, or pass a pandas DataFrame"
    )
    if fmt == "parquet":
        import pyarrow.parquet as pq  # PyArrow: only when reading reference data

        try:
            with pq.ParquetFile(path) as pf:
                schema, n_rows = pf.schema_arrow, pf.metadata.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise ReferenceDataError(f"cannot read reference Parquet {path.name!r}: {exc}") from exc
        return Reference(
            schema=schema,
            n_rows=n_rows,
            name=path.name,
            path=path,
            frame=None,
            chunk_rows=chunk_rows,
            format=fmt,
        )
    reader = _open_csv(path, 1 << 20, tabs=fmt == "tsv")
    schema = reader.schema
    reader.close()
    return Reference(
        schema=schema,
        n_rows=None,
        name=path.name,
        path=path,
        frame=None,
        chunk_rows=chunk_rows,
        format=fmt,
    )
