"""Quantile bins for numeric columns, shared by PSI, Jensen–Shannon, KL and Hellinger.

The bins follow the baseline profile's convention (:mod:`vigil.bundle.profile_schema`):
edges are the reference quantiles at ``0, 1/B, ..., 1`` (``numpy.quantile``, linear),
deduplicated; a value ``x`` falls in bin ``i`` when ``edge[i] <= x < edge[i+1]``; the first
and last bins are open tails (``-inf`` / ``+inf``), so current values outside the reference
range land in the outer bins instead of being lost. Missing values get a bin of their own,
appended last, so a rise in missing values is a shift like any other. ``±inf`` values are
not binned (they are counted separately by the callers).

>>> import numpy as np
>>> from vigil.drift._column import NumericColumn
>>> ref = NumericColumn.from_values(np.arange(100.0))
>>> edges = quantile_edges(ref, n_bins=4)
>>> edges.tolist()
[0.0, 24.75, 49.5, 74.25, 99.0]
>>> bin_counts(edges, NumericColumn.from_values([-5.0, 30.0, 500.0, np.nan])).tolist()
[1, 1, 0, 1, 1]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from vigil.drift._column import NumericColumn

DEFAULT_BINS = 10


def quantile_edges(reference: NumericColumn, n_bins: int = DEFAULT_BINS) -> npt.NDArray[np.float64]:
    """Deduplicated reference quantiles at ``0, 1/n_bins, ..., 1``; empty without values."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    if reference.n == 0:
        return np.empty(0, dtype=np.float64)
    qs = np.linspace(0.0, 1.0, n_bins + 1)
    return np.unique(np.quantile(reference.values, qs))


def bin_counts(edges: npt.ArrayLike, column: NumericColumn) -> npt.NDArray[np.int64]:
    """Counts of ``column`` in the open-tailed bins of ``edges``, plus a last missing bin.

    ``len(edges) - 1`` value bins (at least one) followed by the missing-value bin. The
    column is sorted, so the counts come from a binary search per edge, not per value.
    """
    interior = np.asarray(edges, dtype=np.float64)[1:-1]
    n_value_bins = interior.size + 1
    # Sorted values: the number of values below each interior edge gives the bin sizes.
    cuts = np.searchsorted(column.values, interior, side="left")
    bounds = np.concatenate([[0], cuts, [column.n]])
    counts = np.diff(bounds).astype(np.int64)
    assert counts.size == n_value_bins
    return np.append(counts, np.int64(column.n_missing))
