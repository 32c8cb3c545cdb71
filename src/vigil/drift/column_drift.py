"""Drift of one column: run the chosen statistic and its effect size, return a result.

The reference side comes either from raw reference data or from a stored baseline
profile (see :mod:`vigil.drift.reference`); both are reduced to the same small shapes
(:class:`NumericReference`, :class:`~vigil.drift._column.CategoryCounts`) so that one code
path serves offline comparisons and serving-time monitoring alike.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from vigil.drift._column import CategoryCounts, NumericColumn
from vigil.drift.binned import chance_bound, chi_squared_test
from vigil.drift.binning import BandBins, Bins, KindBins
from vigil.drift.distances import DISTANCES, js_distance, psi
from vigil.drift.numeric import (
    cramer_von_mises,
    ks_2samp,
    normalising_scale,
    wasserstein_chance_bound,
    wasserstein_sorted,
)
from vigil.drift.select import (
    BINNED_METHODS,
    CATEGORICAL_METHODS,
    DEFAULT_THRESHOLDS,
    NUMERIC_METHODS,
    Kind,
    MethodChoice,
    choose_method,
)
from vigil.errors import ValidationError
from vigil.params import fail


@dataclass(frozen=True)
class ColumnDrift:
    """The verdict on one column.

    ``statistic`` is the chosen method's value; ``p_value`` is set for tests (``ks``,
    ``chi2``, ``cvm``) and ``p_value_adjusted`` after the report's Benjamini–Hochberg
    step; ``effect_size`` is always reported (see :mod:`vigil.drift.select`). For tests,
    ``threshold`` is the significance level and ``drifted`` means ``p_value_adjusted <
    threshold``; otherwise ``drifted`` means ``statistic > threshold``. Statistics computed
    from a profile's sample have p-values that reflect the sample's size, not the full
    reference's.
    """

    column: str
    kind: Kind
    method: str
    statistic: float | None
    p_value: float | None
    effect_size: float | None
    effect_size_method: str | None
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    current_missing: int = 0
    current_infinite: int = 0
    p_value_adjusted: float | None = None
    unseen_categories: list[str] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite floats become None)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        return out


@dataclass(frozen=True)
class NumericReference:
    """What the numeric statistics need of the reference side.

    ``sample`` holds sorted raw values for KS / Wasserstein / CvM (all of them for raw
    reference data, the profile's bounded sample otherwise, None when there is none);
    ``bins`` is the layout of :mod:`vigil.drift.binning` and ``counts`` the reference's
    counts in it (the missing bin last). ``n`` counts finite values.
    """

    n: int
    n_missing: int
    std: float | None
    bins: Bins
    counts: npt.NDArray[np.int64]
    sample: NumericColumn | None

    def binned_reason(self) -> str | None:
        """Why values cannot be compared directly (None when they can)."""
        if isinstance(self.bins, KindBins):
            return "the reference has no finite value: compared on value kinds"
        if isinstance(self.bins, BandBins):
            return "constant reference: compared on bins below, at and above its value"
        if self.sample is None:
            return "no reference sample in the profile: compared on its bins"
        return None


def _none(column: str, kind: Kind, n_reference: int, reason: str) -> ColumnDrift:
    return ColumnDrift(
        column=column,
        kind=kind,
        method="none",
        statistic=None,
        p_value=None,
        effect_size=None,
        effect_size_method=None,
        threshold=0.0,
        drifted=False,
        n_reference=n_reference,
        n_current=0,
        reason=reason,
    )


def _forced(
    method: str, allowed: frozenset[str], thresholds: dict[str, float], kind: str
) -> MethodChoice:
    if method not in allowed:
        fail("compare", "method", f"one of {sorted(allowed)} for a {kind} column", method)
    return MethodChoice(method, thresholds[method], "chosen by caller")


def _judge_binned(
    choice: MethodChoice, ref: npt.NDArray[np.int64], cur: npt.NDArray[np.int64]
) -> tuple[float, float | None, MethodChoice]:
    """Statistic, p-value and the (possibly raised) threshold of a binned method."""
    if choice.method == "chi2":
        res, how = chi_squared_test(ref, cur)
        reason = f"{choice.reason}; {how} p-value"
        return res.statistic, res.p_value, MethodChoice("chi2", choice.threshold, reason)
    statistic = float(DISTANCES[choice.method](ref, cur))
    if statistic <= choice.threshold:
        return statistic, None, choice  # below the threshold, chance cannot matter
    bound = chance_bound(choice.method, ref, cur)
    if bound <= choice.threshold:
        return statistic, None, choice
    reason = f"{choice.reason}; chance bound {bound:.3g} at this size and bin count"
    return statistic, None, MethodChoice(choice.method, bound, reason)


def numeric_choice(
    sample: NumericColumn | None,
    reference: NumericReference,
    n_current: int,
    current_counts: npt.NDArray[np.int64],
    binned: str | None,
    small_sample: int,
    alpha: float,
    limits: dict[str, float],
) -> MethodChoice:
    """The method for a numeric column: on the values when the reference has a sample (and
    ``binned`` gives no reason not to), else on the bin counts, saying why."""
    if sample is not None:
        return choose_method(
            "numeric",
            n_reference=sample.n,
            n_current=n_current,
            small_sample=small_sample,
            alpha=alpha,
            thresholds=limits,
        )
    choice = choose_method(
        "numeric",
        n_reference=int(reference.counts.sum()),
        n_current=int(current_counts.sum()),
        binned=True,
        small_sample=small_sample,
        alpha=alpha,
        thresholds=limits,
    )
    return MethodChoice(choice.method, choice.threshold, f"{binned}; {choice.reason}")


def numeric_drift(
    column: str,
    reference: NumericReference,
    current: NumericColumn,
    *,
    method: str | None = None,
    alpha: float = 0.05,
    small_sample: int = 1000,
    thresholds: dict[str, float] | None = None,
) -> ColumnDrift:
    """Drift of a numeric column; ``method`` forces a statistic instead of the table's."""
    limits = {**DEFAULT_THRESHOLDS, "ks": alpha, "cvm": alpha, "chi2": alpha, **(thresholds or {})}
    if current.n_rows == 0:
        return _none(column, "numeric", reference.n, "empty current window")
    if int(reference.counts.sum()) == 0:
        return _none(column, "numeric", 0, "empty reference")
    cur_counts = reference.bins.count(current)
    binned = reference.binned_reason()
    if binned is None and current.n == 0:
        binned = "the current window has no finite value: compared on bins"
    sample = reference.sample if binned is None else None
    if method is not None:
        choice = _forced(method, NUMERIC_METHODS, limits, "numeric")
        if method not in BINNED_METHODS and sample is None:
            raise ValidationError(
                f"column {column!r}: {method} needs finite, non-constant values on both sides "
                "(and a reference sample when comparing to a profile); use method='psi'",
                detail={"column": column, "method": method},
            )
    else:
        choice = numeric_choice(
            sample, reference, current.n, cur_counts, binned, small_sample, alpha, limits
        )

    effect: float | None = None
    effect_method: str | None = None
    if sample is not None and current.n > 0:
        effect = wasserstein_sorted(sample, current) / normalising_scale(reference.std)
        effect_method = "wasserstein_normalised"
    p_value: float | None = None
    if choice.method in BINNED_METHODS:
        statistic, p_value, choice = _judge_binned(choice, reference.counts, cur_counts)
        if effect is None:
            effect, effect_method = float(psi(reference.counts, cur_counts)), "psi"
    elif choice.method == "wasserstein_normalised":
        assert effect is not None and sample is not None
        statistic = effect
        if statistic > choice.threshold:  # below it, chance cannot matter
            bound = wasserstein_chance_bound(sample, current, normalising_scale(reference.std))
            if bound > choice.threshold:
                reason = f"{choice.reason}; chance bound {bound:.3g} at this size"
                choice = MethodChoice(choice.method, bound, reason)
    else:
        assert sample is not None
        test = ks_2samp if choice.method == "ks" else cramer_von_mises
        res = test(sample, current)
        statistic, p_value = res.statistic, res.p_value
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


def categorical_drift(
    column: str,
    counts: CategoryCounts,
    *,
    method: str | None = None,
    alpha: float = 0.05,
    small_sample: int = 1000,
    thresholds: dict[str, float] | None = None,
) -> ColumnDrift:
    """Drift of a categorical column from its aligned counts (missing values a bucket)."""
    limits = {**DEFAULT_THRESHOLDS, "chi2": alpha, **(thresholds or {})}
    ref, cur = counts.with_missing()
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    if n_cur == 0:
        return _none(column, "categorical", n_ref, "empty current window")
    if n_ref == 0:
        return _none(column, "categorical", 0, "empty reference")
    if method is None:
        choice = choose_method(
            "categorical",
            n_reference=n_ref,
            n_current=n_cur,
            small_sample=small_sample,
            alpha=alpha,
            thresholds=limits,
        )
    else:
        choice = _forced(method, CATEGORICAL_METHODS, limits, "categorical")
    statistic, p_value, choice = _judge_binned(choice, ref, cur)
    drifted = (p_value < choice.threshold) if p_value is not None else statistic > choice.threshold
    return ColumnDrift(
        column=column,
        kind="categorical",
        method=choice.method,
        statistic=statistic,
        p_value=p_value,
        effect_size=float(js_distance(ref, cur)),
        effect_size_method="js",
        threshold=choice.threshold,
        drifted=bool(drifted),
        n_reference=n_ref,
        n_current=n_cur,
        current_missing=counts.current_missing,
        unseen_categories=list(counts.unseen_categories),
        reason=choice.reason,
    )
