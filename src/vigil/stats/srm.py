"""Sample-ratio mismatch (SRM): did traffic really split as configured?

A split that should be 50/50 but comes out 50.8/49.2 over 100,000 users points at a bug
in assignment, logging or bot filtering, and makes every other number of the experiment
suspect. The check is Pearson's chi-squared goodness of fit of the observed counts
against the configured weights (``scipy.stats.chisquare``). Because it runs continuously
on every experiment, the conventional threshold is strict: ``p < 0.001``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from vigil.params import check_count, check_positive, check_probability, fail
from vigil.stats.results import _Record

__all__ = ["SRMResult", "sample_ratio_mismatch"]


@dataclass(frozen=True)
class SRMResult(_Record):
    """Chi-squared statistic, p-value, and whether the split is flagged as mismatched."""

    statistic: float
    p_value: float
    mismatch: bool
    threshold: float
    observed: dict[str, int]
    expected: dict[str, float]


def sample_ratio_mismatch(
    observed: Mapping[str, int],
    weights: Mapping[str, float] | None = None,
    *,
    threshold: float = 0.001,
) -> SRMResult:
    """Test observed per-variant counts against the configured traffic ``weights``.

    ``weights`` need not sum to one (``{"a": 9, "b": 1}`` is a 90/10 split); ``None`` means
    an even split. With no traffic yet the p-value is 1 and nothing is flagged.

    >>> r = sample_ratio_mismatch({"a": 50_800, "b": 49_200})
    >>> round(r.statistic, 2), r.p_value < 0.001, r.mismatch
    (25.6, True, True)
    >>> sample_ratio_mismatch({"a": 9_040, "b": 960}, {"a": 0.9, "b": 0.1}).mismatch
    False
    """
    owner = "sample_ratio_mismatch"
    check_probability(owner, "threshold", threshold)
    names = list(observed)
    if len(names) < 2:
        fail(owner, "observed", "counts for at least 2 variants", dict(observed))
    weights = dict.fromkeys(names, 1.0) if weights is None else dict(weights)
    if set(weights) != set(names):
        fail(owner, "weights", f"given for exactly the variants {sorted(names)}", sorted(weights))
    counts = np.array([check_count(owner, f"observed[{n!r}]", observed[n]) for n in names], float)
    w = np.array([check_positive(owner, f"weights[{n!r}]", weights[n]) for n in names])
    expected = counts.sum() * w / w.sum()
    if counts.sum() == 0:
        stat, p = 0.0, 1.0
    else:
        res = sps.chisquare(counts, expected)
        stat, p = float(res.statistic), float(res.pvalue)
    return SRMResult(
        statistic=stat,
        p_value=p,
        mismatch=p < threshold,
        threshold=threshold,
        observed={n: int(c) for n, c in zip(names, counts, strict=True)},
        expected={n: float(e) for n, e in zip(names, expected, strict=True)},
    )
