"""The reference side of a comparison, from raw reference data or a baseline profile.

Raw data gives every statistic its full power. A stored
:class:`~vigil.profile_schema.BaselineProfile` lets serving-time monitoring run
without the reference data: binned statistics (PSI, Jensen–Shannon, KL, Hellinger, total
variation, chi-squared) use the profile's exact counts, while KS, Wasserstein and
Cramér–von Mises use the profile's bounded raw ``sample`` (their p-values then reflect the
sample's size) with the profile's full-data standard deviation as the Wasserstein scale.
"""

from __future__ import annotations

import numpy as np

from vigil.drift._column import NumericColumn, is_constant
from vigil.drift.binning import (
    DEFAULT_BINS,
    BandBins,
    Bins,
    KindBins,
    QuantileBins,
    reference_bins,
)
from vigil.drift.column_drift import NumericReference
from vigil.errors import ReferenceDataError
from vigil.profile_schema import NumericProfile


def numeric_reference(column: NumericColumn, n_bins: int = DEFAULT_BINS) -> NumericReference:
    """Reference side from raw values: all of them as the sample, bins on top."""
    bins = reference_bins(column, n_bins)
    return NumericReference(
        n=column.n,
        n_missing=column.n_missing,
        std=column.std,
        bins=bins,
        counts=bins.count(column),
        sample=column,
    )


def _profile_bins(profile: NumericProfile) -> tuple[Bins, list[int]]:
    """The bins of a profile and its reference counts in them (missing bin excluded)."""
    finite = profile.count - profile.infinite
    if finite <= 0 or profile.min is None or profile.max is None:
        return KindBins(), [0, profile.infinite]
    if is_constant(profile.min, profile.max):
        return BandBins(profile.min), [0, finite, 0, profile.infinite]
    edges = np.asarray(profile.bin_edges, dtype=np.float64)
    if len(profile.bin_counts) != max(edges.size - 1, 1):
        raise ReferenceDataError(
            f"profile has {edges.size} bin edges but {len(profile.bin_counts)} bin counts; "
            "rebuild the baseline profile"
        )
    return QuantileBins(edges), list(profile.bin_counts)


def numeric_reference_from_profile(
    profile: NumericProfile, sample: list[object] | None = None
) -> NumericReference:
    """Reference side from a stored profile (and its raw sample of the column, if any)."""
    bins, counts = _profile_bins(profile)
    column = NumericColumn.from_values(np.asarray(sample, dtype=object)) if sample else None
    return NumericReference(
        n=profile.count - profile.infinite,
        n_missing=profile.missing,
        std=0.0 if isinstance(bins, BandBins) else profile.std,
        bins=bins,
        counts=np.asarray([*counts, profile.missing], dtype=np.int64),
        sample=column if column is not None and column.n > 0 else None,
    )
