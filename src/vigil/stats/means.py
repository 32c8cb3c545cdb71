"""Fixed-horizon comparison of two means (revenue, latency, reward per request).

Same conventions as :mod:`vigil.stats.proportions`: ``control`` first, differences are
``treatment - control``, relative lifts ``treatment / control - 1``.

- :func:`welch_ttest`: Welch's unequal-variance t-test from sufficient statistics (the
  same numbers as ``scipy.stats.ttest_ind(treatment, control, equal_var=False)``);
  :func:`welch_ttest_samples` from raw arrays.
- :func:`mean_ci_t`: Student t interval for one mean.
- :func:`mean_difference_ci_welch`: interval for the difference with Welch–Satterthwaite
  degrees of freedom.
- :func:`relative_lift_ci_delta`: delta-method (first-order Taylor) normal interval for
  the ratio of means minus one. It assumes the control mean is well away from zero
  (coefficient of variation of the control mean below ~0.1); otherwise prefer the
  absolute difference.
"""

from __future__ import annotations

import math

from numpy.typing import ArrayLike
from scipy import stats as sps

from vigil.params import check_choice, check_probability
from vigil.stats.proportions import ALTERNATIVES
from vigil.stats.results import Estimate, TestResult
from vigil.stats.sufficient import MeanStats

__all__ = [
    "mean_ci_t",
    "mean_difference_ci_welch",
    "relative_lift_ci_delta",
    "welch_ttest",
    "welch_ttest_samples",
]


def _welch_parts(control: MeanStats, treatment: MeanStats) -> tuple[float, float, float]:
    """Difference, its standard error and the Welch–Satterthwaite degrees of freedom."""
    if control.n < 2 or treatment.n < 2:
        return math.nan, math.nan, math.nan
    vc, vt = control.variance / control.n, treatment.variance / treatment.n
    se2 = vc + vt
    if se2 <= 0:
        return treatment.mean - control.mean, math.nan, math.nan
    df = se2 * se2 / (vc * vc / (control.n - 1) + vt * vt / (treatment.n - 1))
    return treatment.mean - control.mean, math.sqrt(se2), df


def welch_ttest(
    control: MeanStats, treatment: MeanStats, *, alternative: str = "two-sided"
) -> TestResult:
    """Welch's t-test of ``H0: mean_treatment = mean_control`` from sufficient statistics.

    NaN below two observations per variant or with zero variance in both.

    >>> c = MeanStats.from_moments(400, 10.0, 9.0)
    >>> t = MeanStats.from_moments(380, 10.6, 12.0)
    >>> r = welch_ttest(c, t)
    >>> round(r.statistic, 3), round(r.p_value, 4), round(r.df, 1)
    (2.58, 0.0101, 749.9)
    """
    check_choice("welch_ttest", "alternative", alternative, ALTERNATIVES)
    diff, se, df = _welch_parts(control, treatment)
    if math.isnan(se):
        return TestResult("welch t-test", math.nan, math.nan, alternative, df)
    t = diff / se
    if alternative == "larger":
        p = float(sps.t.sf(t, df))
    elif alternative == "smaller":
        p = float(sps.t.cdf(t, df))
    else:
        p = float(2.0 * sps.t.sf(abs(t), df))
    return TestResult("welch t-test", t, p, alternative, df)


def welch_ttest_samples(
    control: ArrayLike, treatment: ArrayLike, *, alternative: str = "two-sided"
) -> TestResult:
    """Welch's t-test on raw observations (summarised first, then :func:`welch_ttest`)."""
    return welch_ttest(
        MeanStats.from_values(control), MeanStats.from_values(treatment), alternative=alternative
    )


def mean_ci_t(stats: MeanStats, level: float = 0.95) -> Estimate:
    """Student t interval for one mean (NaN below two observations).

    >>> e = mean_ci_t(MeanStats.from_moments(25, 3.0, 4.0))
    >>> round(e.low, 3), round(e.high, 3)
    (2.174, 3.826)
    """
    check_probability("mean_ci_t", "level", level)
    if stats.n < 2:
        return Estimate(stats.mean, math.nan, math.nan, level, "student-t")
    half = float(sps.t.isf((1.0 - level) / 2.0, stats.n - 1)) * math.sqrt(stats.variance / stats.n)
    return Estimate(stats.mean, stats.mean - half, stats.mean + half, level, "student-t")


def mean_difference_ci_welch(
    control: MeanStats, treatment: MeanStats, level: float = 0.95
) -> Estimate:
    """Interval for ``mean_treatment - mean_control`` with Welch–Satterthwaite df."""
    check_probability("mean_difference_ci_welch", "level", level)
    diff, se, df = _welch_parts(control, treatment)
    if math.isnan(se):
        return Estimate(diff, math.nan, math.nan, level, "welch-satterthwaite")
    half = float(sps.t.isf((1.0 - level) / 2.0, df)) * se
    return Estimate(diff, diff - half, diff + half, level, "welch-satterthwaite")


def relative_lift_ci_delta(
    control: MeanStats, treatment: MeanStats, level: float = 0.95
) -> Estimate:
    """Delta-method interval for ``mean_treatment / mean_control - 1``.

    ``Var(m_t / m_c) ≈ Var(m_t) / m_c² + m_t² Var(m_c) / m_c⁴`` (independent variants).

    >>> c = MeanStats.from_moments(400, 10.0, 9.0)
    >>> t = MeanStats.from_moments(380, 10.6, 12.0)
    >>> e = relative_lift_ci_delta(c, t)
    >>> round(e.value, 3), round(e.low, 4), round(e.high, 4)
    (0.06, 0.0133, 0.1067)
    """
    check_probability("relative_lift_ci_delta", "level", level)
    if control.n < 2 or treatment.n < 2 or control.mean == 0:
        return Estimate(math.nan, math.nan, math.nan, level, "delta")
    m_c, m_t = control.mean, treatment.mean
    ratio = m_t / m_c
    var = (treatment.variance / treatment.n) / m_c**2 + (
        m_t**2 * control.variance / control.n
    ) / m_c**4
    half = float(sps.norm.isf((1.0 - level) / 2.0)) * math.sqrt(var)
    return Estimate(ratio - 1.0, ratio - 1.0 - half, ratio - 1.0 + half, level, "delta")
