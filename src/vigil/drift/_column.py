"""Prepared columns: a numeric column sorted once, a categorical column as codes.

Every numeric statistic needs the finite values in sorted order; sorting is the one
expensive step, so it happens here once per column and side and is shared by KS,
Wasserstein and the quantile bins. Missing values (NaN / None) and ``±inf`` are counted
and kept out of the numeric statistics.

Floating-point rounding is not drift: ``0.1 * 3`` and ``0.3`` differ in the last bit, and
a column whose values agree to :data:`REL_TOL` is *constant* (:func:`is_constant`), its
spread zero, whatever the rounding left in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

REL_TOL = 1e-9
"""Relative tolerance under which two values, or a column's spread, count as equal."""


def is_constant(low: float, high: float) -> bool:
    """Whether ``[low, high]`` is one value up to :data:`REL_TOL` (rounding noise).

    >>> is_constant(0.1 * 3, 0.3), is_constant(0.0, 0.0), is_constant(1.0, 1.001)
    (True, True, False)
    """
    return high - low <= REL_TOL * max(abs(low), abs(high))


def band_halfwidth(value: float) -> float:
    """Half-width of the band of values equal to ``value`` up to :data:`REL_TOL`."""
    return max(REL_TOL * abs(value), float(np.finfo(np.float64).tiny))


@dataclass(frozen=True)
class NumericColumn:
    """Finite values of one numeric column, sorted, with the counts that were left out."""

    values: FloatArray
    """Finite values, ascending."""
    n_missing: int
    n_neg_inf: int = 0
    n_pos_inf: int = 0

    @property
    def n_infinite(self) -> int:
        return self.n_neg_inf + self.n_pos_inf

    @property
    def n(self) -> int:
        """Number of finite values (what the numeric tests see)."""
        return int(self.values.size)

    @property
    def n_rows(self) -> int:
        return self.n + self.n_missing + self.n_infinite

    @property
    def constant(self) -> bool:
        """Whether there is at least one finite value and all agree up to rounding."""
        return self.n > 0 and is_constant(float(self.values[0]), float(self.values[-1]))

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof=1), None below two values, 0 for a constant."""
        if self.n < 2:
            return None
        if self.constant:
            return 0.0  # rounding noise is no spread
        return float(np.std(self.values, ddof=1))

    @classmethod
    def from_values(cls, data: Any) -> NumericColumn:
        """Sort the finite values of ``data`` (anything array-like, nullable or not).

        >>> col = NumericColumn.from_values([3.0, None, 1.0, float("inf")])
        >>> col.values.tolist(), col.n_missing, col.n_pos_inf, col.n_neg_inf
        ([1.0, 3.0], 1, 1, 0)
        """
        arr = as_float_array(data)
        finite = np.isfinite(arr)
        if finite.all():
            return cls(values=np.sort(arr), n_missing=0)  # a copy: the caller's data stays
        n_missing = int(np.isnan(arr).sum())
        n_pos_inf = int(np.count_nonzero(arr == np.inf))
        n_neg_inf = int(arr.size - finite.sum()) - n_missing - n_pos_inf
        return cls(np.sort(arr[finite]), n_missing, n_neg_inf=n_neg_inf, n_pos_inf=n_pos_inf)


def as_float_array(data: Any) -> FloatArray:
    """``data`` as a 1-D float64 array with NaN for missing values (None, pd.NA, NaT)."""
    if isinstance(data, pd.Series | pd.Index):
        return np.asarray(data.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    arr = np.asarray(data)
    if arr.dtype == object:
        return np.asarray(pd.to_numeric(pd.Series(arr), errors="coerce"), dtype=np.float64)
    return np.asarray(arr, dtype=np.float64).reshape(-1)


def is_categorical_dtype(data: Any) -> bool:
    """Whether a column's dtype says categorical (strings, objects, categories, booleans)."""
    dtype = getattr(data, "dtype", None)
    if dtype is None:
        dtype = np.asarray(data).dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return True
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        return True
    return bool(pd.api.types.is_bool_dtype(dtype))


@dataclass(frozen=True)
class CategoryCounts:
    """Reference and current counts over one list of category labels.

    The last label is ``UNSEEN`` (categories met only in current), pooled into one bucket
    for display; the statistics see each unseen category as a bucket of its own
    (:meth:`with_missing`). Pooling them first would make the table depend on the data
    in a way the tests' null does not know: rare levels a window meets by chance would
    pile up into one bucket that looks like a shift.
    """

    labels: list[str]
    reference: npt.NDArray[np.int64]
    current: npt.NDArray[np.int64]
    reference_missing: int
    current_missing: int
    unseen_categories: list[str]
    unseen_counts: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )
    """Current counts of each unseen category (they sum to the ``UNSEEN`` bucket)."""

    def with_missing(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The counts the statistics compare: known categories, one bucket per unseen
        category, and a last bucket for missing values."""
        unseen = self.unseen_counts[self.unseen_counts > 0]
        return (
            np.concatenate(
                [self.reference[:-1], np.zeros(unseen.size, np.int64), [self.reference_missing]]
            ),
            np.concatenate([self.current[:-1], unseen, [self.current_missing]]),
        )


UNSEEN = "__unseen__"
"""Label of the bucket holding categories found only in the current data."""

MAX_LISTED_UNSEEN = 20


def _codes(data: Any) -> tuple[npt.NDArray[np.intp], pd.Index]:
    if isinstance(data, pd.Categorical | pd.CategoricalIndex) or (
        isinstance(data, pd.Series) and isinstance(data.dtype, pd.CategoricalDtype)
    ):
        cat = data.array if isinstance(data, pd.Series) else data
        assert isinstance(cat, pd.Categorical | pd.CategoricalIndex)
        return np.asarray(cat.codes, dtype=np.intp), pd.Index(cat.categories)
    if not isinstance(data, pd.Series):
        data = np.asarray(data)
        if data.dtype.kind in "OUS":
            data = data.astype(object)
    codes, uniques = pd.factorize(data)
    return np.asarray(codes, dtype=np.intp), pd.Index(uniques)


def count_categories(reference: Any, current: Any) -> CategoryCounts:
    """Count both sides over the reference categories plus one ``UNSEEN`` bucket.

    Labels are ``str(category)``, the key convention of the baseline profile.

    >>> cc = count_categories(["a", "b", "a", None], ["a", "c", "c"])
    >>> cc.labels, cc.reference.tolist(), cc.current.tolist(), cc.unseen_categories
    (['a', 'b', '__unseen__'], [2, 1, 0], [1, 0, 2], ['c'])
    """
    ref_codes, ref_uniques = _codes(reference)
    cur_codes, cur_uniques = _codes(current)
    k = len(ref_uniques)
    ref_counts = np.bincount(ref_codes[ref_codes >= 0], minlength=k).astype(np.int64)
    cur_local = np.bincount(cur_codes[cur_codes >= 0], minlength=len(cur_uniques))
    ref_labels = [str(v) for v in ref_uniques]
    position = {label: i for i, label in enumerate(ref_labels)}
    cur_counts = np.zeros(k + 1, dtype=np.int64)
    unseen: list[str] = []
    unseen_counts: list[int] = []
    for value, count in zip(cur_uniques, cur_local, strict=True):
        label = str(value)
        i = position.get(label)
        if i is None:
            cur_counts[k] += count
            unseen_counts.append(int(count))
            if count and len(unseen) < MAX_LISTED_UNSEEN:
                unseen.append(label)
        else:
            cur_counts[i] += count
    return CategoryCounts(
        labels=[*ref_labels, UNSEEN],
        reference=np.append(ref_counts, 0),
        current=cur_counts,
        reference_missing=int((ref_codes < 0).sum()),
        current_missing=int((cur_codes < 0).sum()),
        unseen_categories=unseen,
        unseen_counts=np.asarray(unseen_counts, dtype=np.int64),
    )
