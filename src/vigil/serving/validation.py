"""Check decoded request input against a model's :class:`~vigil.bundle.signature.Signature`.

Protocols decode their bodies into one of four raw shapes (:class:`Records`,
:class:`Split`, :class:`Columns`, :class:`Matrix`); a :class:`Validator` matches columns by
name (any order), applies the extra-feature policy, allows only safe casts and builds the
model's input: a C-contiguous float64 matrix in signature order when every input is
numeric (one ``np.array`` call on the fast path), a DataFrame otherwise.

Checks cost time linear in the input: a table wider than ``max_columns`` or holding more
than ``max_cells`` values (rows x features) is refused (413) before any value is looked at.

Safe casts: ints are accepted for float features; integral floats for int features;
numeric strings are *not* numbers; ``true``/``false`` are only accepted by bool features
and bool features accept nothing else. A null (or NaN) is a missing value, accepted where
the feature is ``nullable``; ``Inf`` is rejected unless ``allow_inf``. Every error is a
:class:`~vigil.errors.ValidationError` whose detail names the field, the row, what was
expected and what came.

>>> from vigil.bundle.signature import FeatureSpec, Signature
>>> sig = Signature(inputs=[FeatureSpec(name="a", dtype="float64"),
...                         FeatureSpec(name="b", dtype="int64")])
>>> Validator(sig).validate(Records([{"b": 2, "a": 0.5}])).X
array([[0.5, 2. ]])
>>> Validator(sig).validate(Records([{"a": "0.5", "b": 2}]))
Traceback (most recent call last):
...
vigil.errors.ValidationError: feature 'a' in row 0: expected a number (float64), got the string '0.5'; send numbers unquoted
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import numpy as np

from vigil.errors import PayloadTooLargeError, ValidationError

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    from vigil.bundle.signature import FeatureSpec, Signature

ExtraPolicy = Literal["reject", "ignore"]
UnseenPolicy = Literal["accept", "refuse"]

_NONE = type(None)
_NUMBER: frozenset[type] = frozenset({int, float, _NONE})
_INTEGER: frozenset[type] = frozenset(
    {int, float, _NONE}
)  # floats pass only when integral (checked after)
_BOOL: frozenset[type] = frozenset({bool, _NONE})
_STRING: frozenset[type] = frozenset({str, _NONE})
_INT64_BOUND = 2.0**63
"""Integer features take values in [-2**63, 2**63): int64 (the model's) range."""


# The raw shapes and the validated table are built for every request: plain slotted
# dataclasses, since a frozen one's __init__ sets each field through object.__setattr__.


@dataclass(slots=True)
class Records:
    """Row objects: ``[{"f1": 1.0, "f2": "x"}, ...]``."""

    rows: list[Any]


@dataclass(slots=True)
class Split:
    """Column names plus row lists: ``{"columns": [...], "data": [[...], ...]}``."""

    columns: list[Any]
    data: list[Any]


@dataclass(slots=True)
class Columns:
    """One list of values per named column: ``{"f1": [...], "f2": [...]}``."""

    columns: dict[str, Any]


@dataclass(slots=True)
class Matrix:
    """Row lists already in signature order, without names (a 2-D tensor)."""

    data: list[Any]


RawTable = Records | Split | Columns | Matrix


@dataclass(slots=True)
class ValidatedTable:
    """The model's input, ready for ``predict``, and its number of rows."""

    X: npt.NDArray[np.float64] | pd.DataFrame
    n_rows: int


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, int) and value.bit_length() > 64:
        # repr() of a huge int is slow (quadratic) and past 4,300 digits raises.
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _expected(spec: FeatureSpec) -> str:
    if spec.dtype in ("float64", "float32"):
        return f"a number ({spec.dtype})"
    if spec.dtype in ("int64", "int32"):
        return f"an integer ({spec.dtype})"
    if spec.dtype == "bool":
        return "true or false"
    if spec.categories:
        shown = ", ".join(repr(c) for c in spec.categories[:5])
        more = ", ..." if len(spec.categories) > 5 else ""
        return f"a category ({shown}{more})"
    return "a string" if spec.dtype == "string" else "a category (string or integer)"


def _fail(message: str, *, field: str | None, row: int | None, expected: str, got: str) -> None:
    raise ValidationError(
        message, detail={"field": field, "row": row, "expected": expected, "got": got}
    )


class Validator:
    """Validates raw tables against one signature; built once per served model version.

    Parameters
    ----------
    signature
        The model's signature: inputs in the order the model expects them.
    extra
        ``"reject"`` (default) answers 422 for undeclared columns; ``"ignore"`` drops them.
    allow_inf
        Accept ``+/-Inf`` in numeric features.
    max_columns
        Most columns a table may have (features and extra columns alike; never fewer than
        the signature's inputs); ``None``: no limit.
    max_cells
        Most values (rows x the signature's inputs) a table may hold; ``None``: no limit.
    unseen_categories
        ``"accept"`` (default) lets a categorical value outside the signature's
        ``categories`` through (monitoring counts it: ``quality.unseen_category_rate``);
        ``"refuse"`` answers it with a 422 naming the feature and the value. A feature
        whose categories the signature does not list accepts any value either way.
    """

    def __init__(
        self,
        signature: Signature,
        *,
        extra: ExtraPolicy = "reject",
        allow_inf: bool = False,
        max_columns: int | None = None,
        max_cells: int | None = None,
        unseen_categories: UnseenPolicy = "accept",
    ) -> None:
        if unseen_categories not in ("accept", "refuse"):
            raise ValueError(
                f"unseen_categories must be 'accept' or 'refuse', not {unseen_categories!r}"
            )
        self.signature = signature
        self.extra = extra
        self.allow_inf = allow_inf
        width = len(signature.inputs)
        self.max_columns = max(max_columns, width) if max_columns is not None else None
        self.max_cells = max_cells
        self._specs = list(signature.inputs)
        self._names = [f.name for f in self._specs]
        self._name_tuple = tuple(self._names)
        # A record's values in signature order, picked in C (a tuple; one name: one value).
        self._pick = itemgetter(*self._names) if len(self._names) > 1 else None
        self._index = {n: i for i, n in enumerate(self._names)}
        self._required = [f.name for f in self._specs if f.required]
        self._all_numeric = signature.all_numeric
        self._allowed = [self._allowed_types(f) for f in self._specs]
        # The fast path checks one set of value types for the whole table; it only holds
        # when no column needs a type rule of its own (bool features do).
        self._uniform = self._all_numeric and all(a == _NUMBER for a in self._allowed)
        self._nullable = np.array([f.nullable for f in self._specs], dtype=bool)
        self._int_cols = [i for i, f in enumerate(self._specs) if f.dtype in ("int64", "int32")]
        # One record of float features, the most common request, is validated by
        # :meth:`_one_record` in a few C calls; anything else takes the general path.
        self._one_record_ok = (
            self._uniform
            and not self._int_cols
            and width > 1
            and (max_cells is None or width <= max_cells)
        )
        refuse = unseen_categories == "refuse"
        self._known: list[frozenset[Any] | None] = [
            frozenset(f.categories) if refuse and f.categories and not f.is_numeric else None
            for f in self._specs
        ]

    @property
    def feature_names(self) -> list[str]:
        return list(self._names)

    @property
    def names(self) -> tuple[str, ...]:
        """The feature names in signature order, as one shared tuple (no copy)."""
        return self._name_tuple

    def values(self, raw: RawTable) -> int:
        """About how many values validating ``raw`` reads: its rows x the features, found
        in O(1) (every check is linear in that once the columns are bounded).

        >>> from vigil.bundle.signature import FeatureSpec, Signature
        >>> v = Validator(Signature(inputs=[FeatureSpec(name=n, dtype="float64") for n in "ab"]))
        >>> v.values(Records([{"a": 1}] * 5)), v.values(Columns({"a": [1, 2, 3]})), v.values(Matrix(7))
        (10, 6, 0)
        """
        if isinstance(raw, Columns):
            first = next(iter(raw.columns.values()), None) if isinstance(raw.columns, dict) else 0
            rows = len(first) if isinstance(first, list) else 1
        else:
            data = raw.rows if isinstance(raw, Records) else raw.data
            rows = len(data) if isinstance(data, list) else 0
        return rows * len(self._names)

    def has_feature(self, name: str) -> bool:
        """Whether the signature has an input called ``name`` (one dict lookup)."""
        return name in self._index

    def feature(self, name: str) -> FeatureSpec:
        """The input called ``name`` (one dict lookup); ``KeyError`` when there is none."""
        return self._specs[self._index[name]]

    def check_columns(self, count: int) -> None:
        """Refuse (413) a table of ``count`` columns when that is past ``max_columns``."""
        limit = self.max_columns
        if limit is not None and count > limit:
            raise PayloadTooLargeError(
                f"the input has {count} columns but the model takes {len(self._names)} "
                f"features and this server accepts at most {limit} columns per request; "
                "send only the model's features (or raise VIGIL_SERVE_MAX_COLUMNS)",
                detail={"limit": limit, "columns": count},
            )

    def _check_cells(self, n_rows: int) -> None:
        limit = self.max_cells
        values = n_rows * len(self._names)
        if limit is not None and values > limit:
            raise PayloadTooLargeError(
                f"the input has {n_rows} rows of {len(self._names)} features, {values} values; "
                f"this server accepts at most {limit} values per request: send fewer rows per "
                "request (or raise VIGIL_SERVE_MAX_CELLS)",
                detail={"limit": limit, "values": values, "rows": n_rows},
            )

    @staticmethod
    def _allowed_types(spec: FeatureSpec) -> frozenset[type]:
        if spec.dtype in ("float64", "float32"):
            return _NUMBER
        if spec.dtype in ("int64", "int32"):
            return _INTEGER
        if spec.dtype == "bool":
            return _BOOL
        if spec.dtype == "string":
            return _STRING
        if spec.categories:
            return frozenset({type(c) for c in spec.categories} | {_NONE})
        return frozenset({str, int, _NONE})

    # -- entry point -------------------------------------------------------------------

    def validate(self, raw: RawTable) -> ValidatedTable:
        """Check ``raw`` and build the model input, or raise :class:`ValidationError`."""
        if self._one_record_ok and type(raw) is Records:
            valid = self._one_record(raw.rows)
            if valid is not None:
                return valid
        if isinstance(raw, Records):
            rows = self._rows_from_records(raw.rows)
        elif isinstance(raw, Split):
            rows = self._rows_from_split(raw.columns, raw.data)
        elif isinstance(raw, Columns):
            rows = self._rows_from_columns(raw.columns)
        else:
            rows = self._rows_from_matrix(raw.data)
        if self._all_numeric:
            return ValidatedTable(self._numeric_matrix(rows), len(rows))
        return ValidatedTable(self._frame(rows), len(rows))

    def one_record(self, records: Any) -> ValidatedTable | None:
        """The model input of ``records`` when it is one record that :meth:`validate` would
        take by its fused check (see :meth:`_one_record`); ``None`` for anything else, which
        only :meth:`validate` may judge (errors included)."""
        return self._one_record(records) if self._one_record_ok else None

    def _one_record(self, records: Any) -> ValidatedTable | None:
        """The model input of one record holding exactly the signature's (float) features,
        each an int or a float, all finite; ``None`` for anything else (the general path
        then decides, errors included). The same checks as the general path, fused: the
        keys are exactly the features (each one found, no more), the value types are all
        numbers, and a finite sum means no value is missing, NaN or infinite (a sum that
        overflows only sends the record down the general path)."""
        if type(records) is not list or len(records) != 1:
            return None
        record = records[0]
        if type(record) is not dict or len(record) != len(self._names):
            return None
        try:
            values = self._pick(record)  # type: ignore[misc]
            if not (set(map(type, values)) <= _NUMBER and math.isfinite(sum(values))):
                return None
            # A 1-D array viewed as one row costs less than np.array([values]); the same
            # values, C-contiguous.
            return ValidatedTable(np.array(values, dtype=np.float64)[None], 1)
        except (KeyError, TypeError, OverflowError):
            return None

    # -- shapes -> rows in signature order ----------------------------------------------

    @staticmethod
    def _check_rows(rows: Any) -> None:
        if not isinstance(rows, list):
            _fail(
                "the input rows must be a JSON array",
                field=None,
                row=None,
                expected="an array of rows",
                got=_describe(rows),
            )
        if not rows:
            _fail(
                "the input has no rows; send at least one",
                field=None,
                row=None,
                expected="at least one row",
                got="0 rows",
            )

    def _rows_from_records(self, records: Any) -> Sequence[Sequence[Any]]:
        self._check_rows(records)
        self._check_cells(len(records))
        names, width, pick = self._names, len(self._names), self._pick
        rows: list[Sequence[Any]]
        try:
            if pick is not None:
                rows = [pick(r) for r in records]
            else:
                rows = [[r[n] for n in names] for r in records]
        except (KeyError, TypeError, IndexError):
            return self._rows_from_records_slow(records)
        if self.extra == "reject":
            if any(len(r) != width for r in records):
                return self._rows_from_records_slow(records)
        elif self.max_columns is not None and any(len(r) > self.max_columns for r in records):
            return self._rows_from_records_slow(records)
        return rows

    def _rows_from_records_slow(self, records: list[Any]) -> list[list[Any]]:
        rows: list[list[Any]] = []
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                _fail(
                    f"row {i} must be an object mapping feature names to values",
                    field=None,
                    row=i,
                    expected="an object",
                    got=_describe(record),
                )
            self.check_columns(len(record))
            self._check_names(record.keys(), row=i)
            rows.append([record.get(n) for n in self._names])
        return rows

    def _check_names(self, given: Any, *, row: int | None) -> None:
        present = set(given)
        for name in self._required:
            if name not in present:
                where = f" in row {row}" if row is not None else ""
                unknown = [str(n) for n in present if n not in self._index]
                sent = _closest(name, unknown)
                hint = f" (did you mean {name!r} for {sent!r}?)" if sent is not None else ""
                raise ValidationError(
                    f"required feature {name!r} is missing{where}{hint}; the model expects "
                    f"{self._names}",
                    detail={
                        "field": name,
                        "row": row,
                        "expected": "a value",
                        "got": "missing",
                        **({"suggestion": name} if sent is not None else {}),
                    },
                )
        if self.extra == "reject":
            for name in present:
                if name not in self._index:
                    shown = str(name)[:60]
                    close = _closest(shown, self._names)
                    hint = f" (did you mean {close!r}?)" if close is not None else ""
                    raise ValidationError(
                        f"unknown feature {shown!r}{hint}: the model expects {self._names} "
                        "(remove it, or serve with extra_features='ignore')",
                        detail={
                            "field": shown,
                            "row": row,
                            "expected": "no such feature",
                            "got": "an extra feature",
                            **({"suggestion": close} if close is not None else {}),
                        },
                    )

    def _check_width(self, rows: list[Any], width: int, hint: str) -> None:
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != width:
                got = f"{len(row)} values" if isinstance(row, list) else _describe(row)
                _fail(
                    f"row {i} has {got}, expected {width} {hint}",
                    field=None,
                    row=i,
                    expected=f"{width} values",
                    got=got,
                )

    def _rows_from_split(self, columns: Any, data: Any) -> Sequence[Sequence[Any]]:
        if isinstance(columns, list):
            self.check_columns(len(columns))
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            _fail(
                "'columns' must be an array of feature names",
                field="columns",
                row=None,
                expected="an array of strings",
                got=_describe(columns),
            )
        if len(set(columns)) != len(columns):
            seen: set[str] = set()
            for dup in columns:  # the first repeat, in one pass
                if dup in seen:
                    break
                seen.add(dup)
            _fail(
                f"column {dup[:60]!r} appears twice",
                field=dup[:60],
                row=None,
                expected="unique column names",
                got="a duplicate",
            )
        self._check_rows(data)
        self._check_cells(len(data))
        self._check_width(data, len(columns), "(one per column)")
        if columns == self._names:
            return data  # type: ignore[no-any-return]
        self._check_names(columns, row=None)
        position = {c: i for i, c in enumerate(columns)}
        picks = [position.get(n) for n in self._names]
        return [[None if p is None else row[p] for p in picks] for row in data]

    def _rows_from_columns(self, columns: Any) -> Sequence[Sequence[Any]]:
        if not isinstance(columns, dict):
            _fail(
                "the input must map feature names to lists of values",
                field=None,
                row=None,
                expected="an object of columns",
                got=_describe(columns),
            )
        self.check_columns(len(columns))
        self._check_names(columns.keys(), row=None)
        n_rows: int | None = None
        for name in self._names:
            values = columns.get(name)
            if values is None:
                continue
            if not isinstance(values, list):
                _fail(
                    f"column {name!r} must be an array of values",
                    field=name,
                    row=None,
                    expected="an array",
                    got=_describe(values),
                )
            if n_rows is None:
                n_rows = len(values)
            elif len(values) != n_rows:
                _fail(
                    f"column {name!r} has {len(values)} values but earlier columns have {n_rows}",
                    field=name,
                    row=None,
                    expected=f"{n_rows} values",
                    got=f"{len(values)} values",
                )
        if not n_rows:
            self._check_rows([])
        assert n_rows is not None
        self._check_cells(n_rows)
        blank = [None] * n_rows
        return list(zip(*[columns.get(n, blank) for n in self._names], strict=True))

    def _rows_from_matrix(self, data: Any) -> Sequence[Sequence[Any]]:
        self._check_rows(data)
        self._check_cells(len(data))
        self._check_width(data, len(self._names), f"in signature order {self._names}")
        return data  # type: ignore[no-any-return]

    # -- rows -> model input ------------------------------------------------------------

    def _check_types(self, rows: Sequence[Sequence[Any]], j: int) -> None:
        allowed = self._allowed[j]
        if {type(row[j]) for row in rows} <= allowed:
            return
        spec = self._specs[j]
        for i, row in enumerate(rows):
            value = row[j]
            if type(value) not in allowed:
                hint = (
                    "; send numbers unquoted"
                    if isinstance(value, str) and spec.is_numeric and _is_number(value)
                    else ""
                )
                expected = _expected(spec)
                _fail(
                    f"feature {spec.name!r} in row {i}: expected {expected}, "
                    f"got {_describe(value)}{hint}",
                    field=spec.name,
                    row=i,
                    expected=expected,
                    got=_describe(value),
                )

    def _numeric_matrix(self, rows: Sequence[Sequence[Any]]) -> npt.NDArray[np.float64]:
        if not (self._uniform and set(map(type, chain.from_iterable(rows))) <= _NUMBER):
            for j in range(len(self._specs)):
                self._check_types(rows, j)
        # None becomes NaN here; nullability is then checked on the array in one pass.
        try:
            X = _float_matrix(rows, len(self._specs))
        except OverflowError:
            self._reject_huge(rows, range(len(self._specs)))
        if not _all_finite(X, rows):
            self._check_non_finite(X, rows)
        if self._int_cols:
            self._check_integral(X)
        return X

    def _reject_huge(self, rows: Sequence[Sequence[Any]], columns: Iterable[int]) -> NoReturn:
        """Name the first int of feature ``columns`` too large for a float64 (past 1.8e308,
        over 300 digits: only Python's own JSON reader and CSV parsing make them)."""
        for j in columns:
            for i, row in enumerate(rows):
                value = row[j]
                if type(value) is int and value.bit_length() > 1023:
                    spec = self._specs[j]
                    _fail(
                        f"feature {spec.name!r} in row {i}: the number is too large for "
                        f"{spec.dtype}; send a number between -1.8e308 and 1.8e308",
                        field=spec.name,
                        row=i,
                        expected=_expected(spec),
                        got=_describe(value),
                    )
        raise AssertionError("OverflowError without a value too large for a float64")

    def _check_non_finite(self, X: npt.NDArray[np.float64], rows: Sequence[Sequence[Any]]) -> None:
        bad = np.isnan(X) & ~self._nullable
        if not self.allow_inf:
            bad |= np.isinf(X)
        if bad.any():
            i, j = (int(k) for k in np.argwhere(bad)[0])
            self._reject_non_finite(self._specs[j], i, rows[i][j], float(X[i, j]))

    def _reject_non_finite(self, spec: FeatureSpec, i: int, value: Any, x: float) -> None:
        if math.isnan(x):
            _fail(
                f"feature {spec.name!r} in row {i} is missing (null/NaN) and the model "
                "does not accept missing values for it; send a number",
                field=spec.name,
                row=i,
                expected=_expected(spec),
                got="null" if value is None else "NaN",
            )
        _fail(
            f"feature {spec.name!r} in row {i} is infinite; send a finite number "
            "(or serve with allow_inf=True)",
            field=spec.name,
            row=i,
            expected="a finite number",
            got=str(x),
        )

    def _check_integral(self, X: npt.NDArray[np.float64]) -> None:
        sub = X[:, self._int_cols]
        fractional = np.isfinite(sub) & ((sub != np.trunc(sub)) | (np.abs(sub) >= _INT64_BOUND))
        if fractional.any():
            i, k = (int(v) for v in np.argwhere(fractional)[0])
            spec = self._specs[self._int_cols[k]]
            _fail(
                f"feature {spec.name!r} in row {i}: expected an integer ({spec.dtype}), "
                f"got the number {float(sub[i, k])!r}",
                field=spec.name,
                row=i,
                expected=_expected(spec),
                got=f"the number {float(sub[i, k])!r}",
            )

    def _frame(self, rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
        import pandas as pd  # only for a model with text features: off the server's start

        data: dict[str, Any] = {}
        for j, spec in enumerate(self._specs):
            if spec.is_numeric:
                self._check_types(rows, j)
                try:
                    column = np.array([row[j] for row in rows], dtype=np.float64)
                except OverflowError:
                    self._reject_huge(rows, (j,))
                bad = ~np.isfinite(column)
                if bad.any():
                    bad &= np.isinf(column) if spec.nullable else bad
                    if self.allow_inf:
                        bad &= np.isnan(column)
                    if bad.any():
                        i = int(np.argmax(bad))
                        self._reject_non_finite(spec, i, rows[i][j], float(column[i]))
                    bad = ~np.isfinite(column)
                if spec.dtype in ("int64", "int32") and not bad.any():
                    wrong = (column != np.trunc(column)) | (np.abs(column) >= _INT64_BOUND)
                    if wrong.any():
                        i = int(np.argmax(wrong))
                        _fail(
                            f"feature {spec.name!r} in row {i}: expected an integer "
                            f"({spec.dtype}), got the number {float(column[i])!r}",
                            field=spec.name,
                            row=i,
                            expected=_expected(spec),
                            got=f"the number {float(column[i])!r}",
                        )
                    data[spec.name] = column.astype(np.int64)
                elif spec.dtype == "bool" and not bad.any():
                    data[spec.name] = column.astype(bool)
                else:
                    data[spec.name] = column
            else:
                # CSV and pandas-made JSON encode a missing category as NaN.
                values = [None if _is_nan(row[j]) else row[j] for row in rows]
                self._check_category(values, spec, j)
                known = self._known[j]
                if known is not None:
                    self._check_seen(values, spec, known)
                data[spec.name] = np.array(values, dtype=object)
        return pd.DataFrame(data, columns=self._names)

    def _check_category(self, values: list[Any], spec: FeatureSpec, j: int) -> None:
        allowed = self._allowed[j]
        for i, value in enumerate(values):
            if type(value) not in allowed:
                expected = _expected(spec)
                _fail(
                    f"feature {spec.name!r} in row {i}: expected {expected}, got {_describe(value)}",
                    field=spec.name,
                    row=i,
                    expected=expected,
                    got=_describe(value),
                )
            if value is None and not spec.nullable:
                _fail(
                    f"feature {spec.name!r} in row {i} is missing (null) and the model does not "
                    "accept missing values for it",
                    field=spec.name,
                    row=i,
                    expected=_expected(spec),
                    got="null",
                )

    @staticmethod
    def _check_seen(values: list[Any], spec: FeatureSpec, known: frozenset[Any]) -> None:
        for i, value in enumerate(values):
            if value is not None and value not in known:
                expected = _expected(spec)
                _fail(
                    f"feature {spec.name!r} in row {i}: {_short(value)} is a category the model "
                    f"never saw; send one of its categories ({_listed(spec)}), or serve with "
                    "unseen_categories: accept (VIGIL_SERVE_UNSEEN_CATEGORIES) to let it through",
                    field=spec.name,
                    row=i,
                    expected=expected,
                    got=f"the unseen category {_short(value)}",
                )


def _short(value: Any) -> str:
    return repr(value[:40]) if isinstance(value, str) else repr(value)


def _listed(spec: FeatureSpec) -> str:
    categories = spec.categories or []
    shown = ", ".join(repr(c) for c in categories[:10])
    return shown + (f", ... {len(categories)} in all" if len(categories) > 10 else "")


_CHUNK_ROWS = 8192
_FEW_ROWS = 4


def _all_finite(X: npt.NDArray[np.float64], rows: Sequence[Sequence[Any]]) -> bool:
    """Whether every value of ``X`` (built from ``rows``) is finite. A request of a few rows
    is summed row by row in Python, which costs less than NumPy's per-call overhead; a
    sum that is not finite (a missing or infinite value, or finite values whose sum
    overflows) sends the caller to the exact check, as ``False`` does.

    >>> X = np.array([[1.0, 2.0]])
    >>> _all_finite(X, [[1.0, 2.0]]), _all_finite(X, [[1.0, None]]), _all_finite(X, [[1e308, 1e308]])
    (True, False, False)
    """
    if len(rows) <= _FEW_ROWS:
        try:
            return all(math.isfinite(sum(row)) for row in rows)
        except (TypeError, OverflowError):  # None (missing), an int past float's range
            return False
    return bool(np.isfinite(X).all())


def _float_matrix(rows: Sequence[Sequence[Any]], width: int) -> npt.NDArray[np.float64]:
    """``np.array(rows, dtype=float64)``, a few thousand rows at a time for a large table:
    one conversion of half a million rows holds the interpreter lock for half a second,
    and the event loop waits for it meanwhile."""
    if len(rows) <= _CHUNK_ROWS:
        return np.array(rows, dtype=np.float64)
    X = np.empty((len(rows), width), dtype=np.float64)
    for start in range(0, len(rows), _CHUNK_ROWS):
        X[start : start + _CHUNK_ROWS] = rows[start : start + _CHUNK_ROWS]
    return X


_SUGGEST_AMONG = 1000
"""Most names a misspelt one is compared with (the error path stays cheap)."""


def _closest(name: str, candidates: list[str]) -> str | None:
    """The candidate ``name`` was most probably meant to be (difflib's ratio ≥ 0.75).

    >>> _closest("tenur", ["age", "tenure"]), _closest("zzz", ["age", "tenure"])
    ('tenure', None)
    """
    import difflib  # only on the error path: off the server's start

    found = difflib.get_close_matches(name[:60], candidates[:_SUGGEST_AMONG], n=1, cutoff=0.75)
    return found[0] if found else None


def _is_nan(value: Any) -> bool:
    return type(value) is float and value != value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
