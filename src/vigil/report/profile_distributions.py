"""Chart data when the reference side is a stored baseline profile, not raw data.

A profile keeps, per numeric feature, an equal-width histogram between the reference's
min and max (``hist_edges``/``hist_counts``) and, per categorical feature, the counts of
its most frequent categories. The current side is counted over the **same** histogram
edges when all its finite values fall inside them, so both sets of bars are exact. When
current values fall outside the reference range, the edges are widened to cover both
sides (equal width, :data:`~vigil.report.distributions.NUMERIC_BINS` bins) and the
reference bars are re-binned from the stored histogram assuming its values spread evenly
within each stored bin (the current bars stay exact).

Shares are over every row of a side, as in :mod:`vigil.report.distributions`: missing
values and ``±inf`` make up the ``missing`` share.

>>> import numpy as np
>>> from vigil.profile_schema import NumericProfile
>>> p = NumericProfile(count=4, missing=0, min=0.0, max=2.0, mean=1.0, std=1.0,
...                    hist_edges=[0.0, 1.0, 2.0], hist_counts=[1, 3])
>>> ref, cur = numeric_against_profile(p, np.array([0.5, 1.5, np.nan, 1.5]))
>>> ref.edges, ref.proportions, cur.proportions, cur.missing
((0.0, 1.0, 2.0), (0.25, 0.75), (0.25, 0.5), 0.25)
>>> ref, cur = numeric_against_profile(p, np.array([3.0]))
>>> ref.edges[0], ref.edges[-1], round(sum(ref.proportions), 4), cur.proportions[-1]
(0.0, 3.0, 1.0, 1.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from vigil.drift._column import as_float_array
from vigil.profile_schema import CategoricalProfile, NumericProfile
from vigil.report.distributions import (
    NUMERIC_BINS,
    Distribution,
    _share,
    categorical_from_counts,
    label_counts,
    summarise_numeric,
)

FloatArray = npt.NDArray[np.float64]


def _rebinned(
    edges: FloatArray, counts: npt.NDArray[np.int64], new_edges: FloatArray
) -> FloatArray:
    """Counts of a histogram moved onto ``new_edges`` (mass even within each old bin)."""
    cumulative = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
    # np.interp clamps outside the old edges: nothing below the first, everything above
    # the last, which is exactly where the reference's values are.
    at = np.interp(new_edges, edges, cumulative)
    return np.diff(at)


def numeric_against_profile(
    profile: NumericProfile, current: Any, *, bins: int = NUMERIC_BINS
) -> tuple[Distribution, Distribution]:
    """The reference histogram stored in ``profile`` beside ``current`` on shared edges."""
    cur = as_float_array(current)
    finite = cur[np.isfinite(cur)]
    ref_rows = profile.count + profile.missing
    ref_edges = np.asarray(profile.hist_edges, dtype=np.float64)
    ref_counts = np.asarray(profile.hist_counts, dtype=np.int64)
    if ref_edges.size < 2 or ref_counts.sum() == 0:
        # No finite reference value: draw the current side alone.
        _, cur_dist = summarise_numeric(np.empty(0), cur, bins=bins)
        ref_dist = Distribution(
            kind="numeric",
            proportions=tuple(0.0 for _ in cur_dist.proportions),
            n=ref_rows,
            missing=1.0 if ref_rows else 0.0,
            edges=cur_dist.edges,
        )
        return ref_dist, cur_dist
    lo, hi = float(ref_edges[0]), float(ref_edges[-1])
    if finite.size and (finite.min() < lo or finite.max() > hi):
        lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
        edges = np.histogram_bin_edges(finite[:0], bins=bins, range=(lo, hi))
        ref_binned = _rebinned(ref_edges, ref_counts, edges)
    else:
        edges, ref_binned = ref_edges, ref_counts.astype(np.float64)
    cur_counts, _ = np.histogram(finite, bins=edges)
    ref_finite = int(ref_counts.sum())
    ref_dist = Distribution(
        kind="numeric",
        proportions=tuple(_share(c, ref_rows) for c in ref_binned),
        n=ref_rows,
        missing=_share(ref_rows - ref_finite, ref_rows),
        edges=tuple(float(e) for e in edges),
    )
    cur_dist = Distribution(
        kind="numeric",
        proportions=tuple(_share(c, cur.size) for c in cur_counts),
        n=int(cur.size),
        missing=_share(cur.size - finite.size, cur.size),
        edges=tuple(float(e) for e in edges),
    )
    return ref_dist, cur_dist


def categorical_against_profile(
    profile: CategoricalProfile, current: Any
) -> tuple[Distribution, Distribution]:
    """The category shares stored in ``profile`` beside those of ``current``.

    When the profile capped its categories (``other_count``), a current category it does
    not list may be one of the capped ones, so it joins ``(other)`` on both sides rather
    than showing a reference share of zero it may not have.

    >>> p = CategoricalProfile(count=9, missing=1, frequencies={"a": 6, "b": 3}, n_unique=2)
    >>> ref, cur = categorical_against_profile(p, ["b", "b", "c", None])
    >>> ref.labels, ref.proportions, cur.proportions, cur.missing
    (('b', 'a', 'c'), (0.3, 0.6, 0.0), (0.5, 0.0, 0.25), 0.25)
    """
    counts, rows = label_counts(current)
    current_counts = {str(k): int(v) for k, v in counts.items()}
    current_other = 0
    if profile.other_count:
        current_other = sum(v for k, v in current_counts.items() if k not in profile.frequencies)
        current_counts = {k: v for k, v in current_counts.items() if k in profile.frequencies}
    return categorical_from_counts(
        profile.frequencies,
        profile.count + profile.missing,
        current_counts,
        rows,
        reference_other=profile.other_count,
        current_other=current_other,
    )


def against_profile(
    profile: NumericProfile | CategoricalProfile, current: Any
) -> tuple[Distribution, Distribution]:
    """Chart data of one feature (or the predictions) against its stored profile."""
    if isinstance(profile, CategoricalProfile):
        return categorical_against_profile(profile, current)
    return numeric_against_profile(profile, current)
