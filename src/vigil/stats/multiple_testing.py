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
from numpy.typing import ArrayLike

from vigil.params import check_choice, check_probability, fail
from vigil.stats.results import _Record

__all__ = ["METHODS", "MultipleTestingResult", "adjust_p_values"]

METHODS = ("bonferroni", "holm", "fdr_bh")


@dataclass(frozen=True)
class MultipleTestingResult(_Record):
    """Adjusted p-values and which hypotheses are rejected at ``alpha``."""

    p_adjusted: tuple[float, ...]
    reject: tuple[bool, ...]
    method: str
    alpha: float


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
    else:
        order = np.argsort(p, kind="mergesort")
        ranked = p[order]
        if method == "holm":
            steps = np.maximum.accumulate(ranked * np.arange(m, 0, -1))
        else:
            steps = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
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
