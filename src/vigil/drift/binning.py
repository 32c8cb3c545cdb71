"""Bins for numeric columns, shared by the binned statistics (chi-squared, PSI,
Jensen–Shannon, KL, Hellinger, total variation).

Three layouts, chosen from the reference (raw values or a baseline profile alike):

* :class:`QuantileBins` — the usual case. The bins follow the baseline profile's
  convention (:mod:`vigil.profile_schema`): edges are the reference quantiles at
  ``0, 1/B, ..., 1`` (``numpy.quantile``, linear), deduplicated; a value ``x`` falls in
  bin ``i`` when ``edge[i] <= x < edge[i+1]``; the first and last bins are open tails, so
  current values outside the reference range (and ``-inf`` / ``+inf``) land in the outer
  bins instead of being lost.
* :class:`BandBins` — a constant reference (every finite value equal up to rounding,
  :func:`~vigil.drift._column.is_constant`): below the value, at it (within
  :data:`~vigil.drift._column.REL_TOL`), above it, and infinities. Quantile bins of a
  constant have one bin and could not see a move.
* :class:`KindBins` — a reference without a finite value: finite, infinite.

Every layout appends a missing-value bin last, so a rise in missing values is a shift
like any other.

>>> import numpy as np
>>> from vigil.drift._column import NumericColumn
>>> ref = NumericColumn.from_values(np.arange(100.0))
>>> edges = quantile_edges(ref, n_bins=4)
>>> edges.tolist()
[0.0, 24.75, 49.5, 74.25, 99.0]
>>> bin_counts(edges, NumericColumn.from_values([-5.0, 30.0, 500.0, np.nan])).tolist()
[1, 1, 0, 1, 1]
>>> BandBins(0.3).count(NumericColumn.from_values([0.1 * 3, 0.3, 0.5, np.inf])).tolist()
[0, 2, 1, 1, 0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vigil.drift._column import NumericColumn, band_halfwidth
from vigil.params import check_count

DEFAULT_BINS = 10

Counts = npt.NDArray[np.int64]


def quantile_edges(reference: NumericColumn, n_bins: int = DEFAULT_BINS) -> npt.NDArray[np.float64]:
    """Deduplicated reference quantiles at ``0, 1/n_bins, ..., 1``; empty without values."""
    if n_bins < 1:
        check_count("quantile_edges", "n_bins", n_bins, minimum=1)
    if reference.n == 0:
        return np.empty(0, dtype=np.float64)
    qs = np.linspace(0.0, 1.0, n_bins + 1)
    return np.unique(np.quantile(reference.values, qs))


def _between(column: NumericColumn, cuts: npt.NDArray[np.float64]) -> Counts:
    """Counts of the sorted finite values between consecutive ``cuts`` (open outer bins)."""
    bounds = np.concatenate([[0], np.searchsorted(column.values, cuts, side="left"), [column.n]])
    return np.diff(bounds).astype(np.int64)


def bin_counts(edges: npt.ArrayLike, column: NumericColumn) -> Counts:
    """Counts of ``column`` in the open-tailed bins of ``edges``, plus a last missing bin.

    ``len(edges) - 1`` value bins (at least one) followed by the missing-value bin;
    ``-inf`` counts in the first bin and ``+inf`` in the last value bin. The column is
    sorted, so the counts come from a binary search per edge, not per value.
    """
    counts = _between(column, np.asarray(edges, dtype=np.float64)[1:-1])
    counts[0] += column.n_neg_inf
    counts[-1] += column.n_pos_inf
    return np.append(counts, np.int64(column.n_missing))


@dataclass(frozen=True)
class QuantileBins:
    """Reference quantile bins (see :func:`bin_counts`)."""

    edges: npt.NDArray[np.float64]

    def count(self, column: NumericColumn) -> Counts:
        return bin_counts(self.edges, column)


@dataclass(frozen=True)
class BandBins:
    """Bins of a constant reference: below, at and above ``value``, infinite, missing."""

    value: float

    def count(self, column: NumericColumn) -> Counts:
        half = band_halfwidth(self.value)
        cuts = np.asarray([self.value - half, np.nextafter(self.value + half, np.inf)])
        return np.append(_between(column, cuts), [column.n_infinite, column.n_missing])


@dataclass(frozen=True)
class KindBins:
    """Bins of a reference with no finite value: finite, infinite, missing."""

    def count(self, column: NumericColumn) -> Counts:
        return np.asarray([column.n, column.n_infinite, column.n_missing], dtype=np.int64)


Bins = QuantileBins | BandBins | KindBins


def reference_bins(column: NumericColumn, n_bins: int = DEFAULT_BINS) -> Bins:
    """The layout that fits a reference column (see the module docstring)."""
    if column.n == 0:
        return KindBins()
    if column.constant:
        return BandBins(float(column.values[0]))
    return QuantileBins(quantile_edges(column, n_bins))
