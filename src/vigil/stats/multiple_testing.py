"""Corrections for comparing several treatments with one control.

- ``"bonferroni"``: controls the family-wise error rate; ``p · m``.
- ``"holm"``: Holm's step-down, also family-wise, uniformly more powerful than Bonferroni.
- ``"fdr_bh"``: Benjamini–Hochberg step-up, controls the false discovery rate.

Adjusted p-values and rejections are the same as
``statsmodels.stats.multitest.multipletests`` with the same method names. A NaN p-value
(a comparison without data yet) counts as a hypothesis with ``p = 1`` and stays NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vigil.params import check_choice, check_probability, fail
from vigil.stats.results import _Record

__all__ = ["METHODS", "MultipleTestingResult", "adjust_p_values", "benjamini_hochberg"]

METHODS = ("bonferroni", "holm", "fdr_bh")


@dataclass(frozen=True)
class MultipleTestingResult(_Record):
    """Adjusted p-values and which hypotheses are rejected at ``alpha``."""

    p_adjusted: tuple[float, ...]
    reject: tuple[bool, ...]
    method: str
    alpha: float


def benjamini_hochberg(p_values: ArrayLike) -> NDArray[np.float64]:
    """Benjamini–Hochberg adjusted p-values, in the input order: the one implementation,
    behind ``adjust_p_values(method="fdr_bh")`` and the drift reports' correction.

    Testing twenty columns at 5% each flags one by chance most days; the step-up
    procedure keeps the expected share of false alarms among flagged ones at ``alpha``.

    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.5]).round(4).tolist()
    [0.04, 0.0533, 0.0533, 0.5]
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    m = p.size
    order = np.argsort(p, kind="mergesort")
    # Step-up: each adjusted value is the smallest scaled p-value at or above its rank.
    steps = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(steps, 1.0)
    return adjusted


def adjust_p_values(
    p_values: ArrayLike, *, method: str = "holm", alpha: float = 0.05
) -> MultipleTestingResult:
    """Adjust p-values for multiple comparisons.

    >>> r = adjust_p_values([0.01, 0.04, 0.03], method="holm")
    >>> [round(p, 2) for p in r.p_adjusted], r.reject
    ([0.03, 0.06, 0.06], (True, False, False))
    >>> [round(p, 3) for p in adjust_p_values([0.01, 0.04, 0.03], method="fdr_bh").p_adjusted]
    [0.03, 0.04, 0.04]
    """
    check_choice("adjust_p_values", "method", method, METHODS)
    check_probability("adjust_p_values", "alpha", alpha)
    raw = np.asarray(p_values, dtype=float).ravel()
    missing = np.isnan(raw)
    if np.any((raw[~missing] < 0) | (raw[~missing] > 1)):
        fail("adjust_p_values", "p_values", "all in [0, 1] (or NaN)", raw.tolist())
    p = np.where(missing, 1.0, raw)
    m = p.size
    if method == "bonferroni":
        adjusted = np.minimum(p * m, 1.0)
    elif method == "fdr_bh":
        adjusted = benjamini_hochberg(p)
    else:
        order = np.argsort(p, kind="mergesort")
        steps = np.maximum.accumulate(p[order] * np.arange(m, 0, -1))
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(steps, 1.0)
    adjusted = np.where(missing, np.nan, adjusted)
    reject = (adjusted <= alpha) & ~missing
    return MultipleTestingResult(
        p_adjusted=tuple(float(x) for x in adjusted),
        reject=tuple(bool(x) for x in reject),
        method=method,
        alpha=alpha,
    )
