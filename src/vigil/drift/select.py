"""Which statistic judges which column: the automatic choice, in one table.

=============  =====================================  ========================  ===========================  ==========================
kind           condition                              method                    drifted when                 effect size reported
=============  =====================================  ========================  ===========================  ==========================
numeric        effective n ≤ 1000                     ``ks`` (Kolmogorov–       BH-adjusted p < 0.05         ``wasserstein_normalised``
                                                      Smirnov)
numeric        effective n > 1000                     ``wasserstein_normalised``  statistic > 0.1            ``wasserstein_normalised``
numeric        no finite values on one side           ``psi`` (with missing     statistic > 0.2              ``psi``
               (all missing / all ``±inf``)           bin)
categorical    effective n ≤ 1000 and ≤ 50 buckets    ``chi2`` (chi-squared)    BH-adjusted p < 0.05         ``js`` (Jensen–Shannon)
categorical    effective n > 1000 or > 50 buckets     ``js`` (Jensen–Shannon    statistic > 0.1              ``js``
                                                      distance, base 2)
any            empty current window                   ``none``                  never                        none
=============  =====================================  ========================  ===========================  ==========================

*Effective n* is ``n_ref * n_cur / (n_ref + n_cur)``, the quantity a two-sample test's
power grows with (it is the ``en`` of SciPy's KS asymptotics); it is about the current
window size when the reference is much larger.

Why 1000: at effective n = 1000 a 5% KS test already flags a gap of 0.06 between the two
CDFs (about a tenth of a standard deviation of mean shift). Beyond that every p-value
heads to zero for shifts nobody would act on, so large windows are judged by *how far*
the distributions moved, with thresholds on scales that mean the same for every column:
a tenth of a reference standard deviation of earth-mover distance (the threshold
Evidently uses too), a JS distance of 0.1, a PSI of 0.2 (the credit-scoring rule of thumb
for a significant shift). Chi-squared needs expected counts of about five per bucket,
which more than 50 buckets in a small window rarely give, hence the cardinality cap.

Every result carries the effect size beside the p-value, so a "significant" but tiny
shift is visible as such. Any method can be forced per column.

>>> choose_method("numeric", n_reference=100_000, n_current=500).method
'ks'
>>> choose_method("numeric", n_reference=100_000, n_current=50_000).method
'wasserstein_normalised'
>>> choose_method("categorical", n_reference=5000, n_current=300, n_buckets=4).method
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
    {"ks", "wasserstein_normalised", "psi", "js", "kl", "hellinger", "tvd", "cvm"}
)
CATEGORICAL_METHODS: frozenset[str] = frozenset({"chi2", "psi", "js", "kl", "hellinger", "tvd"})

SMALL_SAMPLE = 1000
"""Largest effective sample size judged by a p-value."""
ALPHA = 0.05
MAX_CHI2_BUCKETS = 50

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
    n_buckets: int | None = None,
    small_sample: int = SMALL_SAMPLE,
    alpha: float = ALPHA,
    thresholds: dict[str, float] | None = None,
) -> MethodChoice:
    """Pick the statistic for one column following the module table.

    ``n_reference``/``n_current`` count the values the test would see (finite values for
    numeric columns, rows for categorical ones); ``n_buckets`` is the number of
    categorical buckets (categories, unseen and missing) with a count on either side.
    """
    limits = {**DEFAULT_THRESHOLDS, "ks": alpha, "chi2": alpha, "cvm": alpha, **(thresholds or {})}
    en = effective_n(n_reference, n_current)
    if n_current == 0 and kind == "categorical":
        return MethodChoice("none", limits["none"], "empty current window")
    if kind == "numeric":
        if n_reference == 0 or n_current == 0:
            return MethodChoice(
                "psi", limits["psi"], "no finite values on one side: compare missing shares"
            )
        if en <= small_sample:
            return MethodChoice("ks", limits["ks"], f"effective n {en:.0f} ≤ {small_sample}")
        return MethodChoice(
            "wasserstein_normalised",
            limits["wasserstein_normalised"],
            f"effective n {en:.0f} > {small_sample}: effect size, p-values saturate",
        )
    if n_buckets is not None and n_buckets > MAX_CHI2_BUCKETS:
        return MethodChoice("js", limits["js"], f"{n_buckets} buckets > {MAX_CHI2_BUCKETS}")
    if en <= small_sample:
        return MethodChoice("chi2", limits["chi2"], f"effective n {en:.0f} ≤ {small_sample}")
    return MethodChoice(
        "js", limits["js"], f"effective n {en:.0f} > {small_sample}: effect size, p-values saturate"
    )
