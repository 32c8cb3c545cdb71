"""Sample size and power for comparing two rates or two means.

Rates use the arcsine effect size (Cohen's h, ``2 asin √p_t − 2 asin √p_c``) with a normal
test, the same model as ``statsmodels``' ``NormalIndPower`` with ``proportion_effectsize``;
means use Cohen's d (``difference / sd``) with the two-sample t test and its noncentral t
power, as ``TTestIndPower``. Sample sizes solve ``power(n) = target`` exactly (both tails
counted for two-sided tests) and are then rounded up to whole units.

``ratio`` is ``n_treatment / n_control`` (1.0 for an even split).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from scipy import optimize
from scipy import stats as sps

from vigil.params import (
    check_choice,
    check_in_range,
    check_positive,
    check_probability,
    fail,
)
from vigil.stats.proportions import ALTERNATIVES
from vigil.stats.results import _Record

__all__ = [
    "SampleSize",
    "cohens_h",
    "power_two_means",
    "power_two_proportions",
    "sample_size_two_means",
    "sample_size_two_proportions",
]


@dataclass(frozen=True)
class SampleSize(_Record):
    """Units needed per variant; ``exact_n_control`` is the unrounded solution."""

    n_control: int
    n_treatment: int
    n_total: int
    exact_n_control: float
    effect_size: float
    alpha: float
    power: float
    ratio: float
    method: str


def cohens_h(p_control: float, p_treatment: float) -> float:
    """Arcsine effect size of a change of rate from ``p_control`` to ``p_treatment``.

    >>> round(cohens_h(0.05, 0.055), 5)
    0.02242
    """
    pc = check_in_range("cohens_h", "p_control", p_control, 0.0, 1.0)
    pt = check_in_range("cohens_h", "p_treatment", p_treatment, 0.0, 1.0)
    return 2.0 * math.asin(math.sqrt(pt)) - 2.0 * math.asin(math.sqrt(pc))


def _effective_n(n_control: float, ratio: float) -> float:
    return 1.0 / (1.0 / n_control + 1.0 / (n_control * ratio))


def _normal_power(effect: float, n_control: float, ratio: float, alpha: float, alt: str) -> float:
    shift = effect * math.sqrt(_effective_n(n_control, ratio))
    crit = float(sps.norm.isf(alpha / 2.0 if alt == "two-sided" else alpha))
    power = 0.0
    if alt in ("two-sided", "larger"):
        power += float(sps.norm.sf(crit - shift))
    if alt in ("two-sided", "smaller"):
        power += float(sps.norm.cdf(-crit - shift))
    return power


def _t_power(effect: float, n_control: float, ratio: float, alpha: float, alt: str) -> float:
    df = n_control * (1.0 + ratio) - 2.0
    if df > 1e7:
        # The noncentral t is numerically unstable this far out and equals the normal.
        return _normal_power(effect, n_control, ratio, alpha, alt)
    nc = effect * math.sqrt(_effective_n(n_control, ratio))
    tail = alpha / 2.0 if alt == "two-sided" else alpha
    power = 0.0
    if alt in ("two-sided", "larger"):
        power += float(sps.nct.sf(sps.t.isf(tail, df), df, nc))
    if alt in ("two-sided", "smaller"):
        power += float(sps.nct.cdf(sps.t.ppf(tail, df), df, nc))
    return power


def _check_common(owner: str, alpha: float, ratio: float, alternative: str) -> None:
    check_probability(owner, "alpha", alpha)
    check_positive(owner, "ratio", ratio)
    check_choice(owner, "alternative", alternative, ALTERNATIVES)


def _solve(
    owner: str,
    power_of: Callable[[float], float],
    target: float,
    lowest: float,
) -> float:
    """Smallest ``n`` with ``power_of(n) = target``: bracket by doubling, then Brent."""
    if power_of(lowest) >= target:
        return lowest
    low, high = lowest, max(2.0 * lowest, 64.0)
    while power_of(high) < target:
        low, high = high, high * 2.0
        if high > 1e13:
            fail(
                owner,
                "the effect",
                "large enough (and in the tested direction) to reach the power",
                target,
            )
    return float(optimize.brentq(lambda n: power_of(n) - target, low, high, xtol=1e-10, rtol=1e-12))


def _result(
    exact: float, effect: float, alpha: float, power: float, ratio: float, method: str
) -> SampleSize:
    n_c = math.ceil(exact - 1e-9)
    n_t = math.ceil(exact * ratio - 1e-9)
    return SampleSize(n_c, n_t, n_c + n_t, exact, effect, alpha, power, ratio, method)


def power_two_proportions(
    p_control: float,
    p_treatment: float,
    n_control: float,
    *,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> float:
    """Power of the two-rate test with ``n_control`` units in control.

    >>> round(power_two_proportions(0.05, 0.06, 8000), 4)
    0.793
    """
    _check_common("power_two_proportions", alpha, ratio, alternative)
    check_positive("power_two_proportions", "n_control", n_control)
    return _normal_power(cohens_h(p_control, p_treatment), n_control, ratio, alpha, alternative)


def sample_size_two_proportions(
    p_control: float,
    p_treatment: float,
    *,
    power: float = 0.8,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> SampleSize:
    """Units per variant to detect a change of rate from ``p_control`` to ``p_treatment``.

    >>> s = sample_size_two_proportions(0.05, 0.055)
    >>> s.n_control, s.n_treatment
    (31218, 31218)
    """
    owner = "sample_size_two_proportions"
    _check_common(owner, alpha, ratio, alternative)
    check_probability(owner, "power", power)
    h = cohens_h(p_control, p_treatment)
    exact = _solve(owner, lambda n: _normal_power(h, n, ratio, alpha, alternative), power, 1e-6)
    return _result(exact, h, alpha, power, ratio, "normal, arcsine effect size")


def power_two_means(
    difference: float,
    sd: float,
    n_control: float,
    *,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> float:
    """Power of the two-sample t test for a true ``difference`` in means with common ``sd``.

    >>> round(power_two_means(0.5, 2.0, 200), 4)
    0.7033
    """
    owner = "power_two_means"
    _check_common(owner, alpha, ratio, alternative)
    d = difference / check_positive(owner, "sd", sd)
    n_control = check_positive(owner, "n_control", n_control)
    if n_control * (1.0 + ratio) <= 2.0:
        fail(
            owner,
            "n_control",
            f"large enough that n_control * (1 + ratio) > 2 (ratio={ratio})",
            n_control,
        )
    return _t_power(d, n_control, ratio, alpha, alternative)


def sample_size_two_means(
    difference: float,
    sd: float,
    *,
    power: float = 0.8,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> SampleSize:
    """Units per variant to detect a ``difference`` in means with common ``sd``.

    >>> s = sample_size_two_means(0.5, 2.0)
    >>> s.n_control, round(s.exact_n_control, 2)
    (253, 252.13)
    """
    owner = "sample_size_two_means"
    _check_common(owner, alpha, ratio, alternative)
    check_probability(owner, "power", power)
    d = difference / check_positive(owner, "sd", sd)
    lowest = 3.0 / (1.0 + ratio)  # one degree of freedom: the smallest sensible t test
    exact = _solve(owner, lambda n: _t_power(d, n, ratio, alpha, alternative), power, lowest)
    return _result(exact, d, alpha, power, ratio, "two-sample t, noncentral t power")
