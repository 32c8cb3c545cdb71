"""Benjamini–Hochberg false discovery rate control over a report's p-values.

Testing twenty columns at 5% each flags one by chance most days; the BH step-up
procedure keeps the expected share of false alarms among flagged columns at ``alpha``.
Equal to ``statsmodels.stats.multitest.multipletests(p, method="fdr_bh")[1]``.

>>> benjamini_hochberg([0.01, 0.04, 0.03, 0.5]).round(4).tolist()
[0.04, 0.0533, 0.0533, 0.5]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def benjamini_hochberg(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """BH-adjusted p-values, in the input order."""
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    # Step-up: each adjusted value is the smallest scaled p-value at or above its rank.
    adjusted_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = np.minimum(adjusted_sorted, 1.0)
    return adjusted
