"""From one chunk of a data file to the model's input, checked exactly like a request.

The server's :class:`~vigil.serving.validation.Validator` is the one authority on what a
model accepts. Feeding it a million rows as Python objects would cost seconds, so a chunk
first takes a vectorised path over its Arrow columns that only *accepts*: it builds the
same float64 matrix (or DataFrame) the validator would, and whenever a column has a type
or a value the fast path is not certain about (a string in a numeric column, a null where
none is allowed, an infinity, a fractional integer...) the chunk goes to the validator
itself, which either accepts it (its output is then used) or raises its own error. Error
rows are renumbered from the chunk to the whole file.

CSV carries numbers as text: its readers hand numeric features over as strings (listed in
:attr:`Chunk.text_columns`), which are parsed here, so a bad cell becomes a validation
error naming its row and column instead of a parse error from deep inside the reader.

>>> import pyarrow as pa
>>> from vigil.bundle.signature import FeatureSpec, Signature
>>> sig = Signature(inputs=[FeatureSpec(name="a", dtype="float64", nullable=False)])
>>> check = ChunkValidator(sig, source="rows.csv")
>>> check.prepare(Chunk(offset=0, table=pa.table({"a": ["0.5", "2"]}),
...                     text_columns=frozenset({"a"}))).X
array([[0.5],
       [2. ]])
>>> check.prepare(Chunk(offset=1000, table=pa.table({"a": ["1", "x"]}),
...                     text_columns=frozenset({"a"})))
Traceback (most recent call last):
...
vigil.errors.ValidationError: rows.csv: feature 'a' in row 1001: expected a number (float64), got the string 'x'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from vigil.errors import DataFileError, ValidationError
from vigil.serving.validation import Columns, Records, Validator

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    from vigil.bundle.signature import FeatureSpec, Signature

_INT = ("int64", "int32")


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive rows of a data file: an Arrow table, or (for JSON lines Arrow could not
    type) the decoded records; ``offset`` is the file-wide index of its first row."""

    offset: int
    table: pa.Table | None = None
    records: list[Any] | None = None
    text_columns: frozenset[str] = field(default_factory=frozenset)

    @property
    def num_rows(self) -> int:
        if self.table is not None:
            return int(self.table.num_rows)
        return len(self.records or ())


@dataclass(frozen=True, slots=True)
class PreparedChunk:
    """The model's input for a chunk, and the input columns to write back out (CSV text
    numbers replaced by the numbers they hold)."""

    X: npt.NDArray[np.float64] | pd.DataFrame
    table: pa.Table
    offset: int


def text_feature_names(signature: Signature) -> frozenset[str]:
    """Features a text format (CSV) must turn from strings into numbers: the numeric ones
    and categories whose known values are integers."""
    return frozenset(f.name for f in signature.inputs if f.is_numeric or _int_categories(f))


def _int_categories(spec: FeatureSpec) -> bool:
    cats = spec.categories or []
    return bool(cats) and all(type(c) is int for c in cats)


class ChunkValidator:
    """Checks chunks of one file against a signature and builds the model's input.

    Parameters
    ----------
    signature
        The model's signature.
    allow_inf
        Accept ``+/-Inf`` in numeric features (as the server's ``allow_inf``).
    source
        How error messages name the file.
    """

    def __init__(
        self, signature: Signature, *, allow_inf: bool = False, source: str = "input"
    ) -> None:
        self.signature = signature
        self.allow_inf = allow_inf
        self.source = source
        # Columns that are not features are the caller's to keep (ids, labels...), so
        # they are ignored rather than rejected.
        self.validator = Validator(signature, extra="ignore", allow_inf=allow_inf)
        self._specs = list(signature.inputs)
        self._names = [f.name for f in self._specs]
        self._nullable = np.array([f.nullable for f in self._specs], dtype=bool)
        self._int_cols = [j for j, f in enumerate(self._specs) if f.dtype in _INT]

    def check_columns(self, columns: Sequence[str]) -> None:
        """Fail before reading any row when a required feature has no column."""
        present = set(columns)
        for spec in self._specs:
            if spec.required and spec.name not in present:
                raise ValidationError(
                    f"{self.source}: required feature {spec.name!r} has no column; "
                    f"the model expects {self._names}",
                    detail={"field": spec.name, "row": None, "expected": "a column", "got": "none"},
                )

    def prepare(self, chunk: Chunk) -> PreparedChunk:
        """The model input for ``chunk``, or a :class:`ValidationError` naming the
        file-wide row and the feature."""
        if chunk.table is None:
            return self._from_records(chunk)
        table = chunk.table
        exact = False
        for name in chunk.text_columns:
            if name in table.column_names and _is_text(table.column(name).type):
                parsed = _cast_text(table.column(name), self.signature.feature(name))
                if parsed is None:
                    exact = True
                else:
                    table = table.set_column(table.column_names.index(name), name, parsed)
        X = None if exact else self._fast(table)
        if X is not None:
            return PreparedChunk(X, table, chunk.offset)
        return self._exact(table, chunk)

    # -- the vectorised path: accepts, or returns None -------------------------------------

    def _fast(self, table: pa.Table) -> npt.NDArray[np.float64] | pd.DataFrame | None:
        n = int(table.num_rows)
        if not self.signature.all_numeric:
            return self._fast_frame(table, n)
        # Filled feature by feature as rows of its transpose (contiguous writes, ~3x faster
        # than writing strided columns), then laid out C-contiguous like the validator's.
        XT = np.empty((len(self._specs), n), dtype=np.float64)
        for j, spec in enumerate(self._specs):
            column = self._numeric(table, spec, n)
            if column is None:
                return None
            XT[j] = column
        X = np.ascontiguousarray(XT.T)
        del XT
        if not np.isfinite(X).all():
            bad = np.isnan(X) & ~self._nullable
            if not self.allow_inf:
                bad |= np.isinf(X)
            if bad.any():
                return None
        if self._int_cols:
            sub = X[:, self._int_cols]
            if (np.isfinite(sub) & (sub != np.trunc(sub))).any():
                return None
        return X

    def _numeric(self, table: pa.Table, spec: FeatureSpec, n: int) -> npt.NDArray[Any] | None:
        if spec.name not in table.column_names:
            return np.full(n, np.nan)
        column = table.column(spec.name)
        kind = column.type
        if spec.dtype == "bool":
            ok = pa.types.is_boolean(kind)
        else:
            ok = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        if not (ok or pa.types.is_null(kind)):
            return None
        # unsafe: a huge int64 rounds to the nearest double, as Python's float() does.
        return np.asarray(column.cast(pa.float64(), safe=False).to_numpy())

    def _fast_frame(self, table: pa.Table, n: int) -> pd.DataFrame | None:
        # pandas: only when a frame is built
        import pandas as pd

        data: dict[str, Any] = {}
        for spec in self._specs:
            if not spec.is_numeric:
                values = self._categorical(table, spec, n)
                if values is None:
                    return None
                data[spec.name] = values
                continue
            column = self._numeric(table, spec, n)
            if column is None:
                return None
            finite = np.isfinite(column)
            if not finite.all():
                nan = np.isnan(column)
                if (nan.any() and not spec.nullable) or (
                    not self.allow_inf and (~finite & ~nan).any()
                ):
                    return None
                data[spec.name] = column
            elif spec.dtype in _INT:
                if (column != np.trunc(column)).any():
                    return None
                data[spec.name] = column.astype(np.int64)
            elif spec.dtype == "bool":
                data[spec.name] = column.astype(bool)
            else:
                data[spec.name] = column
        return pd.DataFrame(data, columns=self._names)

    def _categorical(self, table: pa.Table, spec: FeatureSpec, n: int) -> npt.NDArray[Any] | None:
        if spec.name not in table.column_names:
            return np.full(n, None, dtype=object) if spec.nullable else None
        column = table.column(spec.name)
        if pa.types.is_dictionary(column.type):  # pandas categoricals written to Parquet
            column = column.cast(column.type.value_type)
        kind = column.type
        if column.null_count and not spec.nullable:
            return None
        allowed = Validator._allowed_types(spec)  # the validator's own rule for this feature
        if _is_text(kind) and str in allowed:
            return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
        if pa.types.is_integer(kind) and int in allowed:
            return np.array(column.to_pylist(), dtype=object)
        if pa.types.is_null(kind):
            return np.full(n, None, dtype=object)
        return None

    # -- the exact path: the server's validator ---------------------------------------------

    def _exact(self, table: pa.Table, chunk: Chunk) -> PreparedChunk:
        columns: dict[str, Any] = {}
        parsed: dict[str, list[Any]] = {}
        for spec in self._specs:
            if spec.name not in table.column_names:
                continue
            values = table.column(spec.name).to_pylist()
            if spec.name in chunk.text_columns and _is_text(table.column(spec.name).type):
                values = [_parse_text(v, spec) for v in values]
                parsed[spec.name] = values
            columns[spec.name] = values
        try:
            validated = self.validator.validate(Columns(columns))
        except ValidationError as exc:
            raise self._in_file(exc, chunk.offset) from None
        for name, values in parsed.items():  # every value is a number or null by now
            table = table.set_column(table.column_names.index(name), name, pa.array(values))
        return PreparedChunk(validated.X, table, chunk.offset)

    def _from_records(self, chunk: Chunk) -> PreparedChunk:
        records = chunk.records or []
        try:
            validated = self.validator.validate(Records(records))
        except ValidationError as exc:
            raise self._in_file(exc, chunk.offset) from None
        return PreparedChunk(
            validated.X, table_from_records(records, chunk.offset, self.source), chunk.offset
        )

    def _in_file(self, exc: ValidationError, offset: int) -> ValidationError:
        """The validator's error with its chunk-local row number made file-wide."""
        row = exc.detail.get("row")
        message = exc.message
        if isinstance(row, int):
            where = f"row {offset + row}"
            # Search after the quoted feature name, so a feature called 'row 3' is safe.
            name = exc.detail.get("field")
            start = message.find(repr(name)) + len(repr(name)) if name is not None else 0
            start = max(start, 0)
            message = message[:start] + re.sub(rf"\brow {row}\b", where, message[start:], count=1)
            return ValidationError(
                f"{self.source}: {message}", detail={**exc.detail, "row": offset + row}
            )
        return ValidationError(f"{self.source}: {message}", detail=exc.detail)


def table_from_records(records: list[Any], offset: int, source: str) -> pa.Table:
    """An Arrow table of JSON records, with every key any record has (Arrow's own
    ``from_pylist`` keeps only the first record's keys)."""
    names = list(dict.fromkeys(k for r in records for k in r))
    try:
        return pa.table({n: pa.array([r.get(n) for r in records]) for n in names})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataFileError(
            f"{source}: rows {offset}-{offset + len(records) - 1} mix value types in a "
            f"column ({exc}); give each column one type",
            detail={"row": offset},
        ) from None


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _cast_text(column: pa.ChunkedArray, spec: FeatureSpec) -> pa.ChunkedArray | None:
    """Parse a text column in Arrow (fast), or None when some cell is not a clean number."""
    if spec.dtype == "bool":
        targets = [pa.bool_()]
    elif spec.dtype in _INT:
        targets = [pa.int64(), pa.float64()]  # "3.0" is an integer the validator accepts
    elif spec.is_numeric:
        targets = [pa.float64()]
    else:
        targets = [pa.int64()]
    for target in targets:
        try:
            return column.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return None


def _parse_text(value: str | None, spec: FeatureSpec) -> Any:
    """One CSV cell as the number (or boolean) it spells; the text itself when it spells
    none, so the validator names it in its error."""
    if value is None:
        return None
    if spec.dtype == "bool":
        word = value.strip().lower()
        return {"true": True, "1": True, "false": False, "0": False}.get(word, value)
    try:
        return int(value)
    except ValueError:
        pass
    if not spec.is_numeric:
        return value
    try:
        return float(value)
    except ValueError:
        return value
