"""Comparing two models scored on the same rows: paired tests and intervals.

A candidate and the served model predict on the same labelled rows (a holdout, or replayed
traffic), so their errors are paired: each row's difference carries the comparison, and a
test that ignores the pairing (two independent proportions) wastes most of the evidence.

- :func:`mcnemar_test`: McNemar's test on the discordant rows (one model right, the other
  wrong), the test for paired accuracies; exact (binomial) for few discordant rows, the
  continuity-corrected chi-squared otherwise, as ``statsmodels``' ``mcnemar`` computes
  them; one-sided forms for "the candidate is more accurate".
- :func:`paired_bootstrap_ci`: a bootstrap interval for ``metric(candidate) -
  metric(current)`` over rows resampled together (``scipy.stats.bootstrap`` with
  ``paired=True``), for any metric: AUC, F1, a regression error, ...
- :func:`paired_mean_difference_ci`: the same interval for a metric that is a mean of
  per-row values (accuracy, squared or absolute error, log loss), which resamples one
  array of differences and is much faster; given the same seed it draws the same
  resamples as :func:`paired_bootstrap_ci` and returns the same interval.

Conventions: ``current`` first, ``candidate`` second; a difference is ``candidate -
current``; ``alternative="larger"`` tests that the candidate is better.

References
----------
McNemar, Q. (1947). Note on the sampling error of the difference between correlated
proportions or percentages. *Psychometrika* 12, 153-157.
Efron, B. and Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman & Hall.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats as sps

from vigil.params import check_choice, check_count, check_probability, fail
from vigil.stats.proportions import ALTERNATIVES
from vigil.stats.results import Estimate, TestResult

__all__ = [
    "EXACT_BELOW",
    "mcnemar_test",
    "paired_bootstrap_ci",
    "paired_mean_difference_ci",
]

EXACT_BELOW = 25
"""Discordant rows below which :func:`mcnemar_test` uses the exact binomial test by default:
the chi-squared approximation is poor for few of them."""

BOOTSTRAP_METHODS = ("percentile", "basic", "BCa")


def _paired(owner: str, *arrays: Any) -> list[np.ndarray]:
    out = [np.asarray(a) for a in arrays]
    n = len(out[0])
    for a in out:
        if a.ndim != 1 or len(a) != n:
            fail(owner, "the arrays", "one-dimensional and of one length (rows paired)", a.shape)
    if n == 0:
        fail(owner, "the arrays", "non-empty", 0)
    return out


def mcnemar_test(
    current_correct: Any,
    candidate_correct: Any,
    *,
    exact: bool | None = None,
    alternative: str = "two-sided",
) -> TestResult:
    """McNemar's test of equal accuracy for two models on the same rows.

    ``current_correct`` and ``candidate_correct`` say, row by row, whether each model was
    right. Only the discordant rows count: ``b`` where only the current model was right,
    ``c`` where only the candidate was. Under equal accuracy ``c`` is Binomial(b + c, 1/2).
    ``exact=None`` picks the exact binomial test when ``b + c <`` :data:`EXACT_BELOW`, the
    continuity-corrected chi-squared ``(|b - c| - 1)**2 / (b + c)`` otherwise (statsmodels'
    ``mcnemar(table, exact=..., correction=True)``). One-sided alternatives (``"larger"``:
    the candidate is more accurate) use the binomial tail, or the signed corrected z.

    The statistic is ``c`` for the exact test and the chi-squared (or z, one-sided) for
    the approximation. With no discordant row there is no evidence either way: p = 1.

    >>> cur = [1] * 80 + [0] * 20
    >>> cand = [1] * 70 + [0] * 10 + [1] * 18 + [0] * 2
    >>> r = mcnemar_test(cur, cand, alternative="larger")  # 10 rows against 18
    >>> r.test, round(r.statistic, 3), round(r.p_value, 4)
    ('mcnemar-z', 1.323, 0.0929)
    >>> r = mcnemar_test(cur, cand, exact=True, alternative="larger")
    >>> r.test, r.statistic, round(r.p_value, 4)
    ('mcnemar-exact', 18.0, 0.0925)
    """
    owner = "mcnemar_test"
    check_choice(owner, "alternative", alternative, ALTERNATIVES)
    current, candidate = _paired(owner, current_correct, candidate_correct)
    current, candidate = current.astype(bool), candidate.astype(bool)
    b = int(np.count_nonzero(current & ~candidate))
    c = int(np.count_nonzero(~current & candidate))
    n = b + c
    if exact is None:
        exact = n < EXACT_BELOW
    if n == 0:
        name = "mcnemar-exact" if exact else "mcnemar-chi2"
        return TestResult(name, 0.0, 1.0, alternative)
    if exact:
        scipy_alternative = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}
        p = sps.binomtest(c, n, 0.5, alternative=scipy_alternative[alternative]).pvalue
        return TestResult("mcnemar-exact", float(c), float(min(p, 1.0)), alternative)
    corrected = max(abs(c - b) - 1.0, 0.0)
    if alternative == "two-sided":
        chi2 = corrected**2 / n
        return TestResult("mcnemar-chi2", chi2, float(sps.chi2.sf(chi2, 1)), alternative, 1.0)
    z = math.copysign(corrected, c - b) / math.sqrt(n)
    p = sps.norm.sf(z) if alternative == "larger" else sps.norm.cdf(z)
    return TestResult("mcnemar-z", z, float(p), alternative)


def _check_bootstrap(owner: str, level: float, n_resamples: int, method: str) -> None:
    check_probability(owner, "level", level)
    check_count(owner, "n_resamples", n_resamples, minimum=100)
    check_choice(owner, "method", method, BOOTSTRAP_METHODS)


def _bootstrap(
    sample: np.ndarray,
    statistic: Callable[..., Any],
    value: float,
    *,
    vectorized: bool,
    level: float,
    n_resamples: int,
    method: str,
    seed: int | None,
) -> Estimate:
    """SciPy's one-sample bootstrap interval of ``statistic`` as an :class:`Estimate`."""
    result = sps.bootstrap(
        (sample,),
        statistic,
        vectorized=vectorized,
        n_resamples=n_resamples,
        confidence_level=level,
        method=method,
        rng=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return Estimate(value, float(ci.low), float(ci.high), level, f"paired-bootstrap-{method}")


def paired_bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y_true: Any,
    current: Any,
    candidate: Any,
    *,
    level: float = 0.95,
    n_resamples: int = 2000,
    method: str = "percentile",
    seed: int | None = 0,
) -> Estimate:
    """A bootstrap interval for ``metric(y_true, candidate) - metric(y_true, current)``.

    Rows are resampled together, so each resample keeps every row's label with both models'
    outputs (``scipy.stats.bootstrap`` over row indices, as its ``paired=True`` does; the
    outputs may be 2-D, one column per class). ``metric`` is any function of
    ``(y_true, scores)``, e.g. ``sklearn.metrics.roc_auc_score``; it is called once per
    resample, so for a metric that is a mean of per-row values use
    :func:`paired_mean_difference_ci`, which is much faster.

    >>> from sklearn.metrics import roc_auc_score
    >>> rng = np.random.default_rng(1)
    >>> y = rng.integers(0, 2, 400)
    >>> cur, cand = y + rng.normal(0, 1.5, 400), y + rng.normal(0, 0.8, 400)
    >>> e = paired_bootstrap_ci(roc_auc_score, y, cur, cand, n_resamples=500)
    >>> bool(e.low > 0), round(e.value, 3)
    (True, 0.149)
    """
    owner = "paired_bootstrap_ci"
    _check_bootstrap(owner, level, n_resamples, method)
    y, a, b = (np.asarray(v) for v in (y_true, current, candidate))
    n = len(y)
    if n == 0 or a.ndim == 0 or b.ndim == 0 or len(a) != n or len(b) != n:
        fail(
            owner,
            "the arrays",
            "non-empty, one row of each per labelled row",
            (n, a.shape, b.shape),
        )

    def difference(rows: np.ndarray) -> float:
        # Rows are resampled together (scores may be one column per class).
        return float(metric(y[rows], b[rows])) - float(metric(y[rows], a[rows]))

    everything = np.arange(n)
    return _bootstrap(
        everything,
        difference,
        difference(everything),
        vectorized=False,
        level=level,
        n_resamples=n_resamples,
        method=method,
        seed=seed,
    )


def paired_mean_difference_ci(
    current_values: Any,
    candidate_values: Any,
    *,
    level: float = 0.95,
    n_resamples: int = 2000,
    method: str = "percentile",
    seed: int | None = 0,
) -> Estimate:
    """A bootstrap interval for ``mean(candidate_values) - mean(current_values)`` over
    paired rows: per-row correctness (accuracy), squared or absolute errors, log losses.

    Resamples the per-row differences (one vectorised array), which draws the very
    resamples that :func:`paired_bootstrap_ci` draws with the same seed. For an error
    (lower is better) a negative difference favours the candidate.

    >>> rng = np.random.default_rng(2)
    >>> cur = (rng.random(1000) < 0.80).astype(float)
    >>> cand = (rng.random(1000) < 0.85).astype(float)
    >>> e = paired_mean_difference_ci(cur, cand)
    >>> round(e.value, 3), round(e.low, 3), round(e.high, 3)
    (0.056, 0.023, 0.091)
    """
    owner = "paired_mean_difference_ci"
    _check_bootstrap(owner, level, n_resamples, method)
    a, b = _paired(owner, current_values, candidate_values)
    d = b.astype(float) - a.astype(float)
    if not np.isfinite(d).all():
        fail(owner, "the values", "finite", "NaN or infinity")
    return _bootstrap(
        d,
        np.mean,
        float(d.mean()),
        vectorized=True,
        level=level,
        n_resamples=n_resamples,
        method=method,
        seed=seed,
    )
