"""Two-sample tests and distances for numeric columns.

All functions accept raw arrays (missing values and ``±inf`` are dropped and counted, see
:class:`~vigil.drift._column.NumericColumn`) or columns already prepared by
:meth:`NumericColumn.from_values`, which is how :func:`vigil.drift.compare` shares one sort
per column between the statistics.

* :func:`ks_2samp` — Kolmogorov–Smirnov statistic and p-value, equal to
  ``scipy.stats.ks_2samp(method="auto")`` (exact below 10,000 rows per side, Smirnov's
  asymptotic ``kstwo`` distribution above), computed in linear time from the sorted
  columns so that a million rows per side take a fraction of a second.
* :func:`wasserstein` — equal to ``scipy.stats.wasserstein_distance``;
  :func:`wasserstein_normalised` divides by the reference standard deviation (ddof=1)
  so one threshold fits every column (0.1 means a shift of a tenth of a standard
  deviation). A constant or one-row reference has no spread; the distance is then
  divided by 1, i.e. reported in the column's own units.
* :func:`cramer_von_mises` — ``scipy.stats.cramervonmises_2samp`` (rank based, slower;
  never chosen automatically).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref, cur = rng.normal(0, 1, 2000), rng.normal(0.5, 1, 2000)
>>> r = ks_2samp(ref, cur)
>>> round(r.statistic, 4), r.p_value < 1e-10
(0.1985, True)
>>> round(wasserstein_normalised(ref, cur), 3)
0.526
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.drift._column import NumericColumn
from vigil.errors import ValidationError

EXACT_KS_MAX_N = 10_000
"""Largest side for which SciPy's ``method="auto"`` computes the exact KS p-value."""


@dataclass(frozen=True)
class TestResult:
    """A test statistic and its p-value (None for distances without a null distribution)."""

    __test__ = False  # not a pytest test class

    statistic: float
    p_value: float | None


def _column(data: Any) -> NumericColumn:
    return data if isinstance(data, NumericColumn) else NumericColumn.from_values(data)


def _merged_cdfs(
    a: np.ndarray[Any, np.dtype[np.float64]], b: np.ndarray[Any, np.dtype[np.float64]]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Merge two sorted arrays; return merged values and both empirical CDFs at each position.

    A stable sort of two concatenated sorted runs is a linear merge (timsort finds the runs).
    Inside a run of ties the CDFs are not final, which is harmless: the Wasserstein
    integrand is weighted by a zero gap there, and KS only reads the last tie.
    """
    merged = np.concatenate([a, b])
    order = np.argsort(merged, kind="stable")
    merged = merged[order]
    from_a = order < a.size
    cdf_a = np.cumsum(from_a) / a.size
    cdf_b = np.cumsum(~from_a) / b.size
    return merged, cdf_a, cdf_b


def ks_statistic_sorted(ref: NumericColumn, cur: NumericColumn) -> float:
    """KS statistic ``max |F_ref - F_cur|`` from two prepared (sorted) columns."""
    merged, cdf_a, cdf_b = _merged_cdfs(ref.values, cur.values)
    last_of_ties = np.append(merged[1:] != merged[:-1], True)
    return float(np.max(np.abs(cdf_a[last_of_ties] - cdf_b[last_of_ties])))


def ks_2samp(reference: Any, current: Any) -> TestResult:
    """Two-sided two-sample Kolmogorov–Smirnov test; matches ``scipy.stats.ks_2samp``.

    Raises ``ValueError`` if either side has no finite values.
    """
    ref, cur = _column(reference), _column(current)
    if ref.n == 0 or cur.n == 0:
        raise ValidationError("KS needs at least one finite value on each side")
    if max(ref.n, cur.n) <= EXACT_KS_MAX_N:
        from scipy import stats  # SciPy: on first use, not by importing vigil.drift

        with warnings.catch_warnings():
            # SciPy falls back to the asymptotic p-value itself when the exact one fails.
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ks_2samp(ref.values, cur.values, method="auto")
        return TestResult(float(res.statistic), float(res.pvalue))
    from scipy.stats import kstwo  # SciPy: on first use, not by importing vigil.drift

    d = ks_statistic_sorted(ref, cur)
    m, n = float(max(ref.n, cur.n)), float(min(ref.n, cur.n))
    en = m * n / (m + n)
    p = float(np.clip(kstwo.sf(d, np.round(en)), 0.0, 1.0))
    return TestResult(d, p)


def wasserstein_sorted(ref: NumericColumn, cur: NumericColumn) -> float:
    """First Wasserstein distance between two prepared (sorted) columns."""
    if ref.n == 0 or cur.n == 0:
        raise ValidationError("Wasserstein needs at least one finite value on each side")
    merged, cdf_a, cdf_b = _merged_cdfs(ref.values, cur.values)
    gaps = np.diff(merged)
    return float(np.sum(np.abs(cdf_a[:-1] - cdf_b[:-1]) * gaps))


def wasserstein(reference: Any, current: Any) -> float:
    """First Wasserstein (earth mover's) distance; ``scipy.stats.wasserstein_distance``."""
    return wasserstein_sorted(_column(reference), _column(current))


def normalising_scale(std: float | None) -> float:
    """The divisor of :func:`wasserstein_normalised`: the reference std, or 1 without spread."""
    if std is None or not math.isfinite(std) or std <= 0.0:
        return 1.0
    return std


def wasserstein_normalised(reference: Any, current: Any) -> float:
    """Wasserstein distance divided by the reference standard deviation (ddof=1)."""
    ref, cur = _column(reference), _column(current)
    return wasserstein_sorted(ref, cur) / normalising_scale(ref.std)


PERMUTATION_ROWS = 2000
"""Rows per side behind :func:`wasserstein_chance_bound`'s permutations."""


def wasserstein_chance_bound(
    reference: NumericColumn,
    current: NumericColumn,
    scale: float,
    *,
    level: float = 0.999,
    draws: int = 200,
    seed: int = 0,
    current_size: int | None = None,
) -> float:
    """The normalised Wasserstein distance chance exceeds with probability ``1 - level``.

    Both sides pooled and split at random ``draws`` times (at most
    :data:`PERMUTATION_ROWS` values a side, the result rescaled by ``sqrt(en_sub / en)``,
    how the null distance shrinks with the effective sample size), a gamma law fitted to
    the distances. At 30 rows a window of unchanged normal data is 0.2 standard
    deviations from its reference on average: the 0.1 threshold alone would flag most.

    ``current_size`` is the window's true number of values when ``current`` stands for
    it (an even grid of its quantiles, drawn from as from the window itself).
    """
    rng = np.random.default_rng(seed)
    ref, cur = reference.values, current.values
    n_ref, n_cur = min(ref.size, PERMUTATION_ROWS), min(cur.size, PERMUTATION_ROWS)
    if n_ref < 1 or n_cur < 1:
        return 0.0
    pooled = np.concatenate(
        [rng.choice(ref, n_ref, replace=False), rng.choice(cur, n_cur, replace=False)]
    )
    null = np.empty(draws)
    for i in range(draws):
        rng.shuffle(pooled)
        a = NumericColumn(np.sort(pooled[:n_ref]), 0)
        b = NumericColumn(np.sort(pooled[n_ref:]), 0)
        null[i] = wasserstein_sorted(a, b) / scale
    cur_size = cur.size if current_size is None else current_size
    en_full = ref.size * cur_size / (ref.size + cur_size)
    null *= math.sqrt((n_ref * n_cur / (n_ref + n_cur)) / en_full)
    return gamma_quantile(null, level)


def gamma_quantile(null: np.ndarray[Any, np.dtype[np.float64]], level: float) -> float:
    """The ``level`` quantile of a gamma law with the mean and variance of ``null``.

    The permutation null of a distance is a skewed, chi-squared-like law; a few hundred
    draws give its moments well, but not its 99.9 % point directly.
    """
    from scipy.stats import gamma  # SciPy: on first use, not by importing vigil.drift

    mean, var = float(null.mean()), float(null.var(ddof=1))
    if mean <= 0.0 or var <= 0.0:
        return float(null.max())
    return float(gamma.ppf(level, mean * mean / var, scale=var / mean))


def cramer_von_mises(reference: Any, current: Any) -> TestResult:
    """Two-sample Cramér–von Mises test; ``scipy.stats.cramervonmises_2samp``."""
    from scipy import stats  # SciPy: on first use, not by importing vigil.drift

    ref, cur = _column(reference), _column(current)
    if ref.n < 2 or cur.n < 2:
        raise ValidationError("Cramér–von Mises needs at least two finite values on each side")
    res = stats.cramervonmises_2samp(ref.values, cur.values)
    return TestResult(float(res.statistic), float(res.pvalue))
