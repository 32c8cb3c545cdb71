"""Fixed-horizon comparison of two conversion rates.

Conventions for every function here: ``control`` first, ``treatment`` second; a
difference is ``treatment - control`` and a relative lift ``treatment / control - 1``.

- :func:`two_proportion_ztest`: the pooled two-proportion z-test (the same statistic as
  ``statsmodels.stats.proportion.proportions_ztest``).
- :func:`rate_ci_wilson`: Wilson score interval for one rate.
- :func:`difference_ci_newcombe`: Newcombe's hybrid score interval for the absolute
  difference (method 10 of Newcombe 1998), built from the two Wilson intervals. It keeps
  its coverage near the nominal level for small rates, where the Wald interval does not.
- :func:`relative_lift_ci_katz`: Katz log interval for the rate ratio (the delta method on
  ``log(p_t / p_c)``), shifted by -1 to read as a relative lift.

References
----------
Newcombe, R. G. (1998). Interval estimation for the difference between independent
proportions: comparison of eleven methods. *Statistics in Medicine* 17, 873-890.
Katz, D. et al. (1978). Obtaining confidence intervals for the risk ratio in cohort
studies. *Biometrics* 34, 469-474.
"""

from __future__ import annotations

import math

from scipy import stats as sps

from vigil.params import check_choice, check_probability
from vigil.stats.results import Estimate, TestResult
from vigil.stats.sufficient import ProportionStats

__all__ = [
    "ALTERNATIVES",
    "difference_ci_newcombe",
    "p_value_from_z",
    "rate_ci_wilson",
    "relative_lift_ci_katz",
    "two_proportion_ztest",
]

ALTERNATIVES = ("two-sided", "larger", "smaller")


def p_value_from_z(z: float, alternative: str = "two-sided") -> float:
    """Normal p-value; ``"larger"`` tests treatment > control, ``"smaller"`` the reverse."""
    check_choice("p_value_from_z", "alternative", alternative, ALTERNATIVES)
    if math.isnan(z):
        return math.nan
    if alternative == "larger":
        return float(sps.norm.sf(z))
    if alternative == "smaller":
        return float(sps.norm.cdf(z))
    return float(2.0 * sps.norm.sf(abs(z)))


def two_proportion_ztest(
    control: ProportionStats, treatment: ProportionStats, *, alternative: str = "two-sided"
) -> TestResult:
    """Pooled two-proportion z-test of ``H0: p_treatment = p_control``.

    The statistic and p-value are NaN when the pooled rate is 0 or 1 (no variance yet).

    >>> r = two_proportion_ztest(ProportionStats(1000, 50), ProportionStats(1000, 72))
    >>> round(r.statistic, 3), round(r.p_value, 4)
    (2.055, 0.0398)
    """
    check_choice("two_proportion_ztest", "alternative", alternative, ALTERNATIVES)
    n_c, n_t = control.n, treatment.n
    if n_c == 0 or n_t == 0:
        return TestResult("two-proportion z-test", math.nan, math.nan, alternative)
    pooled = (control.successes + treatment.successes) / (n_c + n_t)
    var = pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_t)
    if var <= 0:
        return TestResult("two-proportion z-test", math.nan, math.nan, alternative)
    z = (treatment.rate - control.rate) / math.sqrt(var)
    return TestResult("two-proportion z-test", z, p_value_from_z(z, alternative), alternative)


def _z(level: float, owner: str) -> float:
    check_probability(owner, "level", level)
    return float(sps.norm.isf((1.0 - level) / 2.0))


def rate_ci_wilson(stats: ProportionStats, level: float = 0.95) -> Estimate:
    """Wilson score interval for one success rate.

    >>> e = rate_ci_wilson(ProportionStats(200, 10))
    >>> round(e.low, 4), round(e.high, 4)
    (0.0274, 0.0896)
    """
    z = _z(level, "rate_ci_wilson")
    n, p = stats.n, stats.rate
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, level, "wilson")
    denom = 1.0 + z * z / n
    center = (p + z * z / (2.0 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    return Estimate(p, center - half, center + half, level, "wilson")


def difference_ci_newcombe(
    control: ProportionStats, treatment: ProportionStats, level: float = 0.95
) -> Estimate:
    """Newcombe hybrid score interval for ``p_treatment - p_control``.

    >>> e = difference_ci_newcombe(ProportionStats(1000, 50), ProportionStats(1000, 72))
    >>> round(e.value, 3), round(e.low, 4), round(e.high, 4)
    (0.022, 0.001, 0.0433)
    """
    check_probability("difference_ci_newcombe", "level", level)
    wc = rate_ci_wilson(control, level)
    wt = rate_ci_wilson(treatment, level)
    diff = treatment.rate - control.rate
    low = diff - math.sqrt((treatment.rate - wt.low) ** 2 + (wc.high - control.rate) ** 2)
    high = diff + math.sqrt((wt.high - treatment.rate) ** 2 + (control.rate - wc.low) ** 2)
    return Estimate(diff, low, high, level, "newcombe")


def relative_lift_ci_katz(
    control: ProportionStats, treatment: ProportionStats, level: float = 0.95
) -> Estimate:
    """Katz log interval for the relative lift ``p_treatment / p_control - 1``.

    NaN until both variants have at least one success (the log ratio is undefined).

    >>> e = relative_lift_ci_katz(ProportionStats(1000, 50), ProportionStats(1000, 72))
    >>> round(e.value, 2), round(e.low, 3), round(e.high, 3)
    (0.44, 0.015, 1.043)
    """
    z = _z(level, "relative_lift_ci_katz")
    x_c, x_t = control.successes, treatment.successes
    if x_c <= 0 or x_t <= 0:
        return Estimate(math.nan, math.nan, math.nan, level, "katz-log")
    ratio = treatment.rate / control.rate
    se = math.sqrt(1.0 / x_t - 1.0 / treatment.n + 1.0 / x_c - 1.0 / control.n)
    log_ratio = math.log(ratio)
    return Estimate(
        ratio - 1.0,
        math.exp(log_ratio - z * se) - 1.0,
        math.exp(log_ratio + z * se) - 1.0,
        level,
        "katz-log",
    )
