"""Sequential testing with always-valid p-values: the mixture SPRT (mSPRT).

Peeking at a fixed-horizon p-value after every batch and stopping at the first
``p < alpha`` inflates the false-positive rate far beyond ``alpha``. The mSPRT of
Johari et al. gives a p-value that stays valid however often and whenever you look.

Theory. Let ``θ̂`` be the observed difference ``treatment - control`` and ``V`` its
variance. Under ``H0: θ = 0`` and a normal mixing distribution ``θ ~ Normal(0, τ_raw²)``
over the alternatives, the mixture likelihood ratio is

    Λ = sqrt(V / (V + τ_raw²)) · exp(θ̂² τ_raw² / (2 V (V + τ_raw²)))

which is a non-negative martingale under ``H0``; by Ville's inequality
``P(sup_n Λ_n ≥ 1/α) ≤ α``. The always-valid p-value is the running minimum
``p_n = min(p_{n-1}, 1/Λ_n)`` with ``p_0 = 1``; it never increases, and stopping the
first time ``p_n ≤ α`` keeps the false-positive rate at most ``α``.

Choice of tau. ``tau`` is the standard deviation of the mixing distribution in
*standardised* units (effect divided by the per-observation standard deviation, like
Cohen's d), so ``τ_raw² = τ² σ²`` with ``σ²`` the pooled per-observation variance (the
pooled ``p (1 - p)`` for rates). The test has most power for effects of about ``tau``
standard deviations; power falls off slowly either side, so within a factor of two or
three of the true effect costs little. The default ``0.05`` fits typical product changes
(a 5.0% → 6.1% conversion change is 0.05 standard deviations); set it to your minimum
detectable effect in standardised units. Choose it before looking at the data: validity
holds for any ``tau`` fixed in advance.

Variances are plug-in estimates (pooled under ``H0`` for rates, Welch's for means), so
validity is asymptotic in the sample size, as in Johari et al.; looks before both
variants have any variance are skipped.

References
----------
Johari, R., Pekelis, L., Walsh, D. (2017). Always valid inference: bringing sequential
analysis to A/B testing. arXiv:1512.04922.
Johari, R., Koomen, P., Pekelis, L., Walsh, D. (2022). Always valid inference:
continuous monitoring of A/B tests. *Operations Research* 70(3), 1806-1821.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from vigil.params import (
    check_count,
    check_in_range,
    check_positive,
    check_probability,
    fail,
)
from vigil.stats.sufficient import MeanStats, ProportionStats

__all__ = [
    "DEFAULT_TAU",
    "SequentialTest",
    "always_valid_p_values",
    "msprt_log_likelihood_ratio",
    "msprt_p_value",
]

DEFAULT_TAU = 0.05

Stats = ProportionStats | MeanStats


def _z_and_h(control: Stats, treatment: Stats) -> tuple[float, float] | None:
    """The z statistic ``θ̂ / sqrt(V)`` and ``h = V / σ²``; ``None`` when there is no variance."""
    if isinstance(control, ProportionStats) and isinstance(treatment, ProportionStats):
        if control.n == 0 or treatment.n == 0:
            return None
        pooled = (control.successes + treatment.successes) / (control.n + treatment.n)
        sigma2 = pooled * (1.0 - pooled)
        h = 1.0 / control.n + 1.0 / treatment.n
        v = sigma2 * h
        diff = treatment.rate - control.rate
    elif isinstance(control, MeanStats) and isinstance(treatment, MeanStats):
        if control.n < 2 or treatment.n < 2:
            return None
        sigma2 = ((control.n - 1) * control.variance + (treatment.n - 1) * treatment.variance) / (
            control.n + treatment.n - 2
        )
        v = control.variance / control.n + treatment.variance / treatment.n
        h = v / sigma2 if sigma2 > 0 else math.nan
        diff = treatment.mean - control.mean
    else:
        fail("msprt", "control and treatment", "both ProportionStats or both MeanStats", control)
    if not v > 0:
        return None
    return diff / math.sqrt(v), h


def msprt_log_likelihood_ratio(z: float, h: float, tau: float = DEFAULT_TAU) -> float:
    """``log Λ`` of the normal-mixture SPRT from the z statistic and ``h = V / σ²``.

    For equal groups of ``n``, ``h = 2 / n``.

    >>> round(msprt_log_likelihood_ratio(z=3.0, h=2 / 5000, tau=0.05), 3)
    2.889
    """
    tau = check_positive("msprt_log_likelihood_ratio", "tau", tau)
    t2 = tau * tau
    return 0.5 * math.log(h / (h + t2)) + z * z * t2 / (2.0 * (h + t2))


def msprt_p_value(control: Stats, treatment: Stats, *, tau: float = DEFAULT_TAU) -> float:
    """The one-look mSPRT p-value ``min(1, 1/Λ)``.

    Valid on its own at any single look; :class:`SequentialTest` and
    :func:`always_valid_p_values` take the running minimum over looks, which is smaller.

    >>> p = msprt_p_value(ProportionStats(5000, 250), ProportionStats(5000, 320), tau=0.05)
    >>> round(p, 4)
    0.0529
    """
    zh = _z_and_h(control, treatment)
    if zh is None:
        return 1.0
    return min(1.0, math.exp(-msprt_log_likelihood_ratio(zh[0], zh[1], tau)))


def always_valid_p_values(
    looks: Iterable[tuple[Stats, Stats]], *, tau: float = DEFAULT_TAU
) -> list[float]:
    """Always-valid p-values over a sequence of looks at cumulative ``(control, treatment)``.

    >>> looks = [(ProportionStats(n, n // 20), ProportionStats(n, n // 16)) for n in
    ...          (1000, 2000, 4000, 8000)]
    >>> [round(p, 3) for p in always_valid_p_values(looks)]
    [1.0, 0.654, 0.211, 0.016]
    """
    test = SequentialTest(tau=tau)
    return [test.update(c, t).p_value for c, t in looks]


class SequentialTest:
    """Always-valid two-sided test of ``treatment = control``, updated look by look.

    Each :meth:`update` receives the *cumulative* sufficient statistics of both variants
    (what serving keeps), computes the mSPRT likelihood ratio and lowers the running
    p-value if the evidence grew. Its whole state is two numbers (``p_value``, ``looks``),
    so it can be stored next to the counters; :meth:`state_dict` / :meth:`from_state`.

    Parameters
    ----------
    tau
        Mixing standard deviation in standardised units (see the module docstring).
    alpha
        Significance level for :attr:`rejected`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> test = SequentialTest(tau=0.05, alpha=0.05)
    >>> c = t = ProportionStats(0, 0)
    >>> for look in range(40):
    ...     c = c + ProportionStats.from_outcomes(rng.random(500) < 0.10)
    ...     t = t + ProportionStats.from_outcomes(rng.random(500) < 0.12)
    ...     if test.update(c, t).rejected:
    ...         break
    >>> test.looks, c.n, round(test.p_value, 4)
    (4, 2000, 0.0427)
    """

    def __init__(self, *, tau: float = DEFAULT_TAU, alpha: float = 0.05) -> None:
        self.tau = check_positive("SequentialTest", "tau", tau)
        self.alpha = check_probability("SequentialTest", "alpha", alpha)
        self._p_value = 1.0
        self._looks = 0

    def __repr__(self) -> str:
        return f"SequentialTest(tau={self.tau!r}, alpha={self.alpha!r})"

    @property
    def p_value(self) -> float:
        """The always-valid p-value so far (1.0 before any evidence; never increases)."""
        return self._p_value

    @property
    def looks(self) -> int:
        """How many looks have been taken."""
        return self._looks

    @property
    def rejected(self) -> bool:
        """True once the always-valid p-value is at or below ``alpha``."""
        return self._p_value <= self.alpha

    def update(self, control: Stats, treatment: Stats) -> SequentialTest:
        """Take one look at the cumulative statistics of both variants."""
        self._looks += 1
        self._p_value = min(self._p_value, msprt_p_value(control, treatment, tau=self.tau))
        return self

    def state_dict(self) -> dict[str, Any]:
        """Parameters and state as a JSON-ready dict."""
        return {
            "tau": self.tau,
            "alpha": self.alpha,
            "p_value": self._p_value,
            "looks": self._looks,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SequentialTest:
        """Rebuild a test saved by :meth:`state_dict`."""
        test = cls(tau=state["tau"], alpha=state["alpha"])
        test._p_value = check_in_range(
            "SequentialTest", "p_value", state["p_value"], 0.0, 1.0, closed="both"
        )
        test._looks = check_count("SequentialTest", "looks", state["looks"])
        return test
