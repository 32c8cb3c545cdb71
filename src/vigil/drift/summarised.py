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
>>> grid = NumericColumn.from_values(np.quantile(window.values, (np.arange(1000) + 0.5) / 1000))
>>> res = numeric_drift_summarised("x", ref, SummarisedColumn(
...     n=window.n, n_missing=0, bin_counts=ref.bins.count(window), quantiles=grid))
>>> res.method, round(res.statistic, 2), res.drifted, res.n_current
('wasserstein_normalised', 0.51, True, 100000)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vigil.drift._column import NumericColumn
from vigil.drift.column_drift import (
    ColumnDrift,
    NumericReference,
    _judge_binned,
    _none,
)
from vigil.drift.distances import psi
from vigil.drift.numeric import (
    normalising_scale,
    wasserstein_chance_bound,
    wasserstein_sorted,
)
from vigil.drift.select import (
    BINNED_METHODS,
    DEFAULT_THRESHOLDS,
    MethodChoice,
    choose_method,
)
from vigil.errors import ValidationError


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
    quantiles: NumericColumn | None
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
    if sample is not None:
        choice = choose_method(
            "numeric",
            n_reference=sample.n,
            n_current=current.n,
            small_sample=small_sample,
            alpha=alpha,
            thresholds=limits,
        )
    else:
        choice = choose_method(
            "numeric",
            n_reference=int(reference.counts.sum()),
            n_current=int(cur_counts.sum()),
            binned=True,
            small_sample=small_sample,
            alpha=alpha,
            thresholds=limits,
        )
        choice = MethodChoice(choice.method, choice.threshold, f"{binned}; {choice.reason}")
    if choice.method not in BINNED_METHODS and choice.method != "wasserstein_normalised":
        raise NeedsRawValues(
            f"column {column!r}: {choice.method} needs the window's raw values "
            f"({choice.reason}); read them instead of the summary",
            detail={"column": column, "method": choice.method},
        )
    effect: float | None = None
    effect_method: str | None = None
    scale = normalising_scale(reference.std)
    if sample is not None and current.quantiles is not None and current.n > 0:
        effect = wasserstein_sorted(sample, current.quantiles) / scale
        effect_method = "wasserstein_normalised"
    p_value: float | None = None
    if choice.method in BINNED_METHODS:
        statistic, p_value, choice = _judge_binned(choice, reference.counts, cur_counts)
        if effect is None:
            effect, effect_method = float(psi(reference.counts, cur_counts)), "psi"
    else:
        assert effect is not None and sample is not None and current.quantiles is not None
        statistic = effect
        if statistic > choice.threshold:  # below it, chance cannot matter
            bound = wasserstein_chance_bound(
                sample, current.quantiles, scale, current_size=current.n
            )
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
