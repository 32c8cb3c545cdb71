"""Drift of a numeric column judged from a summary of the current window, not its rows.

A window too large to hold (millions of rows) reaches the statistics as a summary: exact
counts of finite, missing and infinite values, exact counts in the reference's bins, and
the window's quantiles at an even grid of ranks (from a quantile sketch, see
:mod:`vigil.monitor.summaries`). :func:`numeric_drift_summarised` follows
:func:`~vigil.drift.column_drift.numeric_drift` step by step, with the window's true size
wherever the method table or a chance bound needs it:

* binned methods (PSI, chi-squared, ...) see the exact bin counts, so they equal the
  computation on raw values;
* the normalised Wasserstein distance is taken between the reference sample and the
  quantile grid. By the triangle inequality it differs from the exact value by at most the
  Wasserstein distance between the grid and the window's values, which the grid's builder
  bounds (the sketch's rank error integrated over the column's range);
* KS needs raw values: a window small enough to be judged by it (effective n at most
  ``small_sample``) is read raw, and asking for it here is an error.

>>> import numpy as np
>>> from vigil.drift._column import NumericColumn
>>> from vigil.drift.reference import numeric_reference
>>> rng = np.random.default_rng(0)
>>> ref = numeric_reference(NumericColumn.from_values(rng.normal(0, 1, 5000)))
>>> window = NumericColumn.from_values(rng.normal(0.5, 1, 100_000))
>>> grid = np.quantile(window.values, (np.arange(1000) + 0.5) / 1000)
>>> res = numeric_drift_summarised("x", ref, SummarisedColumn(
...     n=window.n, n_missing=0, bin_counts=ref.bins.count(window), quantiles=grid))
>>> res.method, round(res.statistic, 2), res.drifted, res.n_current
('wasserstein_normalised', 0.51, True, 100000)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vigil.drift._column import (
    MAX_LISTED_UNSEEN,
    UNSEEN,
    CategoryCounts,
    NumericColumn,
    band_halfwidth,
)
from vigil.drift.binning import BandBins, KindBins, QuantileBins
from vigil.drift.categorical import OTHER
from vigil.drift.column_drift import (
    ColumnDrift,
    NumericReference,
    _judge_binned,
    _none,
    numeric_choice,
)
from vigil.drift.distances import psi
from vigil.drift.numeric import (
    normalising_scale,
    wasserstein_chance_bound,
    wasserstein_sorted,
)
from vigil.drift.reference import numeric_reference_from_profile
from vigil.drift.select import (
    BINNED_METHODS,
    DEFAULT_THRESHOLDS,
    MethodChoice,
)
from vigil.errors import ValidationError
from vigil.profile_schema import CategoricalProfile, NumericProfile

__all__ = [
    "POOLED",
    "CategoryCounts",
    "NeedsRawValues",
    "SummarisedColumn",
    "bin_cuts",
    "binned_counts",
    "category_counts_from",
    "numeric_drift_summarised",
]

POOLED = "__pooled__"
"""A window's labels that a summary counted only in bulk (past its exact cap)."""


class NeedsRawValues(ValidationError):
    """The method chosen (KS, Cramér–von Mises) needs the window's raw values."""


@dataclass(frozen=True)
class SummarisedColumn:
    """What the statistics know of a numeric column of a large window."""

    n: int
    """Finite values."""
    n_missing: int
    bin_counts: npt.NDArray[np.int64]
    """Counts in the reference's bins (:mod:`vigil.drift.binning`), the missing bin last."""
    quantiles: npt.NDArray[np.float64] | None
    """The window's finite values at an even grid of ranks, sorted; None without any."""
    n_neg_inf: int = 0
    n_pos_inf: int = 0

    @property
    def n_infinite(self) -> int:
        return self.n_neg_inf + self.n_pos_inf

    @property
    def n_rows(self) -> int:
        return self.n + self.n_missing + self.n_infinite


def numeric_drift_summarised(
    column: str,
    reference: NumericReference,
    current: SummarisedColumn,
    *,
    alpha: float = 0.05,
    small_sample: int = 1000,
    thresholds: dict[str, float] | None = None,
) -> ColumnDrift:
    """Drift of a numeric column from a summary of the window (see the module docstring).

    Raises :class:`NeedsRawValues` when the method table picks a test on raw values.
    """
    limits = {**DEFAULT_THRESHOLDS, "ks": alpha, "cvm": alpha, "chi2": alpha, **(thresholds or {})}
    if current.n_rows == 0:
        return _none(column, "numeric", reference.n, "empty current window")
    if int(reference.counts.sum()) == 0:
        return _none(column, "numeric", 0, "empty reference")
    cur_counts = np.asarray(current.bin_counts, dtype=np.int64)
    binned = reference.binned_reason()
    if binned is None and (current.n == 0 or current.quantiles is None):
        binned = "the current window has no finite value: compared on bins"
    sample = reference.sample if binned is None else None
    grid = NumericColumn(np.sort(current.quantiles), 0) if current.quantiles is not None else None
    choice = numeric_choice(
        sample, reference, current.n, cur_counts, binned, small_sample, alpha, limits
    )
    if choice.method not in BINNED_METHODS and choice.method != "wasserstein_normalised":
        raise NeedsRawValues(
            f"column {column!r}: {choice.method} needs the window's raw values "
            f"({choice.reason}); read them instead of the summary",
            detail={"column": column, "method": choice.method},
        )
    effect: float | None = None
    effect_method: str | None = None
    scale = normalising_scale(reference.std)
    if sample is not None and grid is not None and current.n > 0:
        effect = wasserstein_sorted(sample, grid) / scale
        effect_method = "wasserstein_normalised"
    p_value: float | None = None
    if choice.method in BINNED_METHODS:
        statistic, p_value, choice = _judge_binned(choice, reference.counts, cur_counts)
        if effect is None:
            effect, effect_method = float(psi(reference.counts, cur_counts)), "psi"
    else:
        assert effect is not None and sample is not None and grid is not None
        statistic = effect
        if statistic > choice.threshold:  # below it, chance cannot matter
            bound = wasserstein_chance_bound(sample, grid, scale, current_size=current.n)
            if bound > choice.threshold:
                reason = f"{choice.reason}; chance bound {bound:.3g} at this size"
                choice = MethodChoice(choice.method, bound, reason)
    drifted = (p_value < choice.threshold) if p_value is not None else statistic > choice.threshold
    return ColumnDrift(
        column=column,
        kind="numeric",
        method=choice.method,
        statistic=statistic,
        p_value=p_value,
        effect_size=effect,
        effect_size_method=effect_method,
        threshold=choice.threshold,
        drifted=bool(drifted),
        n_reference=reference.n,
        n_current=current.n,
        current_missing=current.n_missing,
        current_infinite=current.n_infinite,
        reason=choice.reason,
    )


def bin_cuts(profile: NumericProfile) -> tuple[float, ...]:
    """The values between which a summary must count a column exactly for its bins in
    ``profile``'s layout (:mod:`vigil.drift.binning`): inner quantile edges, or the band
    around a constant; none for a reference without a finite value.

    >>> from vigil.profile_schema import NumericProfile
    >>> bin_cuts(NumericProfile(count=4, missing=0, min=0.0, max=3.0, mean=1.5, std=1.3,
    ...     bin_edges=[0.0, 1.0, 2.0, 3.0], bin_counts=[1, 1, 2]))
    (1.0, 2.0)
    """
    bins = numeric_reference_from_profile(profile).bins
    if isinstance(bins, QuantileBins):
        return tuple(float(e) for e in bins.edges[1:-1])
    if isinstance(bins, BandBins):
        half = band_halfwidth(bins.value)
        return (bins.value - half, float(np.nextafter(bins.value + half, np.inf)))
    return ()


def binned_counts(
    profile: NumericProfile,
    between: npt.NDArray[np.int64],
    *,
    n_missing: int,
    n_neg_inf: int = 0,
    n_pos_inf: int = 0,
) -> npt.NDArray[np.int64]:
    """A window's counts in ``profile``'s bins, as the bins' ``count`` gives them on its
    values, from its counts ``between`` the :func:`bin_cuts` (finite values only)."""
    bins = numeric_reference_from_profile(profile).bins
    between = np.asarray(between, dtype=np.int64)
    if isinstance(bins, KindBins):
        n = int(between.sum())
        return np.asarray([n, n_neg_inf + n_pos_inf, n_missing], dtype=np.int64)
    if isinstance(bins, BandBins):
        return np.append(between, [n_neg_inf + n_pos_inf, n_missing]).astype(np.int64)
    counts = between.copy()
    counts[0] += n_neg_inf
    counts[-1] += n_pos_inf
    return np.append(counts, n_missing).astype(np.int64)


def category_counts_from(
    profile: CategoricalProfile, counts: dict[str, int], missing: int
) -> CategoryCounts:
    """The counts :func:`~vigil.drift.categorical.count_against_profile` gives on a
    window whose labels were counted into ``counts`` (``str(value)`` keys; a
    :data:`POOLED` entry holds labels counted only in bulk, one bucket of unknown ones).

    >>> from vigil.profile_schema import CategoricalProfile
    >>> prof = CategoricalProfile(count=10, missing=0, frequencies={"a": 6, "b": 4},
    ...     n_unique=2)
    >>> cc = category_counts_from(prof, {"a": 3, "z": 2}, missing=1)
    >>> cc.labels, cc.current.tolist(), cc.unseen_categories, cc.current_missing
    (['a', 'b', '__unseen__'], [3, 0, 2], ['z'], 1)
    """
    labels = list(profile.frequencies)
    ref = [profile.frequencies[label] for label in labels]
    cur = [counts.get(label, 0) for label in labels]
    known = set(labels)
    rest = {k: v for k, v in counts.items() if k not in known and v > 0}
    unseen_counts: list[int] = []
    unseen: list[str] = []
    unseen_total = 0
    if profile.other_count > 0:
        labels.append(OTHER)
        ref.append(profile.other_count)
        cur.append(sum(rest.values()))
    else:
        ranked = sorted(rest.items(), key=lambda kv: (-kv[1], kv[0]))
        unseen_counts = [v for _k, v in ranked]
        unseen = [k for k, _v in ranked if k != POOLED][:MAX_LISTED_UNSEEN]
        unseen_total = sum(unseen_counts)
    labels.append(UNSEEN)
    ref.append(0)
    cur.append(unseen_total)
    return CategoryCounts(
        labels=labels,
        reference=np.asarray(ref, dtype=np.int64),
        current=np.asarray(cur, dtype=np.int64),
        reference_missing=profile.missing,
        current_missing=missing,
        unseen_categories=unseen,
        unseen_counts=np.asarray(unseen_counts, dtype=np.int64),
    )
