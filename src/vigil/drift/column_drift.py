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

from vigil.drift import distances
from vigil.drift._column import CategoryCounts, NumericColumn
from vigil.drift.binning import bin_counts
from vigil.drift.categorical import chi_squared
from vigil.drift.numeric import cramer_von_mises, ks_2samp, normalising_scale, wasserstein_sorted
from vigil.drift.select import (
    CATEGORICAL_METHODS,
    DEFAULT_THRESHOLDS,
    NUMERIC_METHODS,
    P_VALUE_METHODS,
    Kind,
    MethodChoice,
    choose_method,
)


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
    ``edges``/``counts`` are the quantile bins (counts with the missing bin last).
    """

    n: int
    n_missing: int
    std: float | None
    edges: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]
    sample: NumericColumn | None


def _binned(method: str, ref: npt.ArrayLike, cur: npt.ArrayLike) -> float:
    funcs = {
        "psi": distances.psi,
        "js": distances.js_distance,
        "kl": distances.kl_divergence,
        "hellinger": distances.hellinger,
        "tvd": distances.total_variation,
    }
    return funcs[method](ref, cur)


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
        raise ValueError(
            f"method {method!r} does not apply to a {kind} column; use one of {sorted(allowed)}"
        )
    return MethodChoice(method, thresholds[method], "chosen by caller")


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
    limits = {**DEFAULT_THRESHOLDS, "ks": alpha, "cvm": alpha, **(thresholds or {})}
    if current.n_rows == 0:
        return _none(column, "numeric", reference.n, "empty current window")
    cur_counts = bin_counts(reference.edges, current)
    sample = reference.sample
    n_ref_test = sample.n if sample is not None else 0
    if method is None:
        choice = choose_method(
            "numeric",
            n_reference=n_ref_test,
            n_current=current.n,
            small_sample=small_sample,
            alpha=alpha,
            thresholds=limits,
        )
        if sample is None and choice.method != "psi":
            choice = MethodChoice("psi", limits["psi"], "no reference sample in the profile")
    else:
        choice = _forced(method, NUMERIC_METHODS, limits, "numeric")

    have_values = sample is not None and sample.n > 0 and current.n > 0
    effect: float | None = None
    effect_method: str | None = None
    if have_values:
        assert sample is not None
        effect = wasserstein_sorted(sample, current) / normalising_scale(reference.std)
        effect_method = "wasserstein_normalised"
    p_value: float | None = None
    if choice.method in ("ks", "cvm", "wasserstein_normalised") and not have_values:
        raise ValueError(
            f"column {column!r}: {choice.method} needs finite values on both sides "
            "(and a reference sample when comparing to a profile); use method='psi'"
        )
    if choice.method == "ks":
        res = ks_2samp(sample, current)
        statistic, p_value = res.statistic, res.p_value
    elif choice.method == "cvm":
        res = cramer_von_mises(sample, current)
        statistic, p_value = res.statistic, res.p_value
    elif choice.method == "wasserstein_normalised":
        assert effect is not None
        statistic = effect
    else:
        statistic = _binned(choice.method, reference.counts, cur_counts)
    if effect is None:
        effect = statistic if choice.method not in P_VALUE_METHODS else None
        effect_method = choice.method if effect is not None else None
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
    if method is None:
        n_buckets = int(((ref + cur) > 0).sum())
        choice = choose_method(
            "categorical",
            n_reference=n_ref,
            n_current=n_cur,
            n_buckets=n_buckets,
            small_sample=small_sample,
            alpha=alpha,
            thresholds=limits,
        )
    else:
        choice = _forced(method, CATEGORICAL_METHODS, limits, "categorical")
    effect = distances.js_distance(ref, cur)
    p_value: float | None = None
    if choice.method == "chi2":
        res = chi_squared(ref, cur)
        statistic, p_value = res.statistic, res.p_value
    else:
        statistic = _binned(choice.method, ref, cur)
    drifted = (p_value < choice.threshold) if p_value is not None else statistic > choice.threshold
    return ColumnDrift(
        column=column,
        kind="categorical",
        method=choice.method,
        statistic=statistic,
        p_value=p_value,
        effect_size=effect,
        effect_size_method="js",
        threshold=choice.threshold,
        drifted=bool(drifted),
        n_reference=n_ref,
        n_current=n_cur,
        current_missing=counts.current_missing,
        unseen_categories=list(counts.unseen_categories),
        reason=choice.reason,
    )
