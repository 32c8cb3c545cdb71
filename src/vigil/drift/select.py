"""Which statistic judges which column: the automatic choice, in one table.

=============  ======================================  ==========================  ==============================  ==========================
kind           condition                               method                      drifted when                    effect size reported
=============  ======================================  ==========================  ==============================  ==========================
numeric        values on both sides, effective         ``ks`` (Kolmogorov–         BH-adjusted p < 0.05            ``wasserstein_normalised``
               n ≤ 1000                                Smirnov)
numeric        values on both sides, effective         ``wasserstein_normalised``  statistic > 0.1                 ``wasserstein_normalised``
               n > 1000
numeric        *binned*, effective n ≤ 1000            ``chi2`` on the bins        BH-adjusted p < 0.05            ``psi``
numeric        *binned*, effective n > 1000            ``psi`` on the bins         statistic > max(0.2, chance)    ``psi``
categorical    effective n ≤ 1000                      ``chi2`` (chi-squared)      BH-adjusted p < 0.05            ``js`` (Jensen–Shannon)
categorical    effective n > 1000                      ``js`` (Jensen–Shannon      statistic > max(0.1, chance)    ``js``
                                                       distance, base 2)
any            empty current window                    ``none``                    never                           none
=============  ======================================  ==========================  ==============================  ==========================

A numeric column is judged on its *bins* (:mod:`vigil.drift.binning`) when the values
cannot be compared directly: the reference is constant (a band around its value), has
no finite value, or is a profile without a raw sample; or the current window has no
finite value. The bins carry the missing (and infinite) share, so those moves are seen.

*Effective n* is ``n_ref * n_cur / (n_ref + n_cur)``, the quantity a two-sample test's
power grows with (it is the ``en`` of SciPy's KS asymptotics); it is about the current
window size when the reference is much larger.

Why 1000: at effective n = 1000 a 5% KS test already flags a gap of 0.06 between the two
CDFs (about a tenth of a standard deviation of mean shift). Beyond that every p-value
heads to zero for shifts nobody would act on, so large windows are judged by *how far*
the distributions moved, with thresholds on scales that mean the same for every column:
a tenth of a reference standard deviation of earth-mover distance (the threshold
Evidently uses too), a JS distance of 0.1, a PSI of 0.2 (the credit-scoring rule of thumb
for a significant shift). A binned distance is also held to its *chance bound*
(:func:`vigil.drift.binned.chance_bound`): the value it exceeds by chance one time in a
thousand at this window size and number of buckets, so a column with hundreds of levels
is not flagged for its sampling noise. Chi-squared p-values come from SciPy where every
expected count is large enough and from permutations otherwise, so a sparse table of a
high-cardinality column in a small window is tested correctly too.

Every result carries the effect size beside the p-value, so a "significant" but tiny
shift is visible as such. Any method can be forced per column.

>>> choose_method("numeric", n_reference=100_000, n_current=500).method
'ks'
>>> choose_method("numeric", n_reference=100_000, n_current=50_000).method
'wasserstein_normalised'
>>> choose_method("numeric", n_reference=100_000, n_current=500, binned=True).method
'chi2'
>>> choose_method("categorical", n_reference=5000, n_current=300).method
'chi2'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["numeric", "categorical"]
Method = Literal[
    "ks", "wasserstein_normalised", "psi", "chi2", "js", "kl", "hellinger", "tvd", "cvm", "none"
]

P_VALUE_METHODS: frozenset[str] = frozenset({"ks", "chi2", "cvm"})
NUMERIC_METHODS: frozenset[str] = frozenset(
    {"ks", "wasserstein_normalised", "psi", "chi2", "js", "kl", "hellinger", "tvd", "cvm"}
)
BINNED_METHODS: frozenset[str] = frozenset({"chi2", "psi", "js", "kl", "hellinger", "tvd"})
"""Methods that compare bin (or category) counts rather than values."""
CATEGORICAL_METHODS: frozenset[str] = frozenset({"chi2", "psi", "js", "kl", "hellinger", "tvd"})

SMALL_SAMPLE = 1000
"""Largest effective sample size judged by a p-value."""
ALPHA = 0.05

DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": ALPHA,
    "chi2": ALPHA,
    "cvm": ALPHA,
    "wasserstein_normalised": 0.1,
    "psi": 0.2,
    "js": 0.1,
    "kl": 0.1,
    "hellinger": 0.1,
    "tvd": 0.1,
    "none": 0.0,
}
"""Drift threshold per method: the significance level for tests, the distance otherwise."""


@dataclass(frozen=True)
class MethodChoice:
    """The statistic chosen for one column, its threshold and why it was chosen."""

    method: str
    """One of :data:`Method`."""
    threshold: float
    reason: str

    @property
    def uses_p_value(self) -> bool:
        return self.method in P_VALUE_METHODS


def effective_n(n_reference: int, n_current: int) -> float:
    """``n_ref * n_cur / (n_ref + n_cur)``; 0 when either side is empty."""
    if n_reference <= 0 or n_current <= 0:
        return 0.0
    return n_reference * n_current / (n_reference + n_current)


def choose_method(
    kind: Kind,
    *,
    n_reference: int,
    n_current: int,
    binned: bool = False,
    small_sample: int = SMALL_SAMPLE,
    alpha: float = ALPHA,
    thresholds: dict[str, float] | None = None,
) -> MethodChoice:
    """Pick the statistic for one column following the module table.

    ``n_reference``/``n_current`` count the values the statistic sees: finite values for
    a numeric column compared by value, rows for a binned or categorical one. ``binned``
    says a numeric column must be compared on its bins (see the module docstring).
    """
    limits = {**DEFAULT_THRESHOLDS, "ks": alpha, "chi2": alpha, "cvm": alpha, **(thresholds or {})}
    en = effective_n(n_reference, n_current)
    if n_current == 0:
        return MethodChoice("none", limits["none"], "empty current window")
    small = en <= small_sample
    size = f"effective n {en:.0f} {'≤' if small else '>'} {small_sample}"
    if kind == "categorical" or binned:
        if small:
            return MethodChoice("chi2", limits["chi2"], size)
        method = "js" if kind == "categorical" else "psi"
        return MethodChoice(method, limits[method], f"{size}: effect size, p-values saturate")
    if small:
        return MethodChoice("ks", limits["ks"], size)
    return MethodChoice(
        "wasserstein_normalised",
        limits["wasserstein_normalised"],
        f"{size}: effect size, p-values saturate",
    )
