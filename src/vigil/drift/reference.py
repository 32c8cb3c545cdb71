"""The reference side of a comparison, from raw reference data or a baseline profile.

Raw data gives every statistic its full power. A stored
:class:`~vigil.bundle.profile_schema.BaselineProfile` lets serving-time monitoring run
without the reference data: binned statistics (PSI, Jensen–Shannon, KL, Hellinger, total
variation, chi-squared) use the profile's exact counts, while KS, Wasserstein and
Cramér–von Mises use the profile's bounded raw ``sample`` (their p-values then reflect the
sample's size) with the profile's full-data standard deviation as the Wasserstein scale.
"""

from __future__ import annotations

import numpy as np

from vigil.bundle.profile_schema import NumericProfile
from vigil.drift._column import NumericColumn
from vigil.drift.binning import DEFAULT_BINS, bin_counts, quantile_edges
from vigil.drift.column_drift import NumericReference
from vigil.errors import ReferenceDataError


def numeric_reference(column: NumericColumn, n_bins: int = DEFAULT_BINS) -> NumericReference:
    """Reference side from raw values: all of them as the sample, quantile bins on top."""
    edges = quantile_edges(column, n_bins)
    return NumericReference(
        n=column.n,
        n_missing=column.n_missing,
        std=column.std,
        edges=edges,
        counts=bin_counts(edges, column),
        sample=column,
    )


def numeric_reference_from_profile(
    profile: NumericProfile, sample: list[object] | None = None
) -> NumericReference:
    """Reference side from a stored profile (and its raw sample of the column, if any)."""
    counts = np.asarray([*profile.bin_counts, profile.missing], dtype=np.int64)
    edges = np.asarray(profile.bin_edges, dtype=np.float64)
    if edges.size == 0 or not profile.bin_counts:
        # No bins stored (no finite values, or one constant value): a single open bin
        # keeps the missing share comparable.
        counts = np.asarray([profile.count, profile.missing], dtype=np.int64)
        edges = edges[:1]
    elif len(profile.bin_counts) != max(edges.size - 1, 1):
        raise ReferenceDataError(
            f"profile has {edges.size} bin edges but {len(profile.bin_counts)} bin counts; "
            "rebuild the baseline profile"
        )
    column = NumericColumn.from_values(np.asarray(sample, dtype=object)) if sample else None
    return NumericReference(
        n=profile.count,
        n_missing=profile.missing,
        std=profile.std,
        edges=edges,
        counts=counts,
        sample=column if column is not None and column.n > 0 else None,
    )
