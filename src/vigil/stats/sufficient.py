"""Per-variant sufficient statistics: the only numbers serving has to keep.

A conversion metric needs ``(n, successes)``; a continuous metric ``(n, mean, M2)``,
the count, mean and sum of squared deviations from the mean. Two records merge exactly
(``a + b``: counts add, means and M2 by Chan et al.'s pairwise update), so shards and
time windows combine in any order. Every test in :mod:`vigil.stats` starts from these
records.

A continuous metric is *not* kept as raw sums ``(n, Σx, Σx²)``: the variance
``(Σx² - (Σx)²/n) / (n - 1)`` cancels catastrophically once the mean is large next to the
spread (for 10⁹ + N(0, 1) it comes out 0), and a test would then see a certain effect in
noise. Counters that must be plain sums for atomic increments (SQL rows, Redis hashes)
convert with :meth:`MeanStats.from_sums`, which says what precision they keep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from vigil.params import check_count, check_finite, check_positive, fail
from vigil.stats.results import _Record

__all__ = ["MeanStats", "ProportionStats"]


@dataclass(frozen=True)
class ProportionStats(_Record):
    """Trials and successes of one variant on a binary metric (conversions, clicks).

    >>> a = ProportionStats(n=1000, successes=50)
    >>> b = ProportionStats(n=500, successes=30)
    >>> round((a + b).rate, 4)
    0.0533
    """

    n: int
    successes: float

    def __post_init__(self) -> None:
        check_count("ProportionStats", "n", self.n)
        s = check_finite("ProportionStats", "successes", self.successes)
        if s < 0 or s > self.n:
            fail("ProportionStats", "successes", f"in [0, n={self.n}]", self.successes)

    @property
    def rate(self) -> float:
        """Observed success rate (NaN before the first trial)."""
        return self.successes / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Per-trial Bernoulli variance ``p (1 - p)`` at the observed rate."""
        p = self.rate
        return p * (1.0 - p)

    def __add__(self, other: ProportionStats) -> ProportionStats:
        return ProportionStats(self.n + other.n, self.successes + other.successes)

    @classmethod
    def from_outcomes(cls, outcomes: ArrayLike) -> ProportionStats:
        """Count trials and successes in an array of 0/1 outcomes."""
        x = np.asarray(outcomes, dtype=float).ravel()
        return cls(n=int(x.size), successes=float(x.sum()))


@dataclass(frozen=True)
class MeanStats(_Record):
    """Count, mean and sum of squared deviations of one variant on a continuous metric.

    >>> s = MeanStats.from_values([1.0, 2.0, 4.0])
    >>> s.n, round(s.mean, 4), round(s.variance, 4)
    (3, 2.3333, 2.3333)
    >>> big = MeanStats.from_values(1e9 + np.random.default_rng(0).normal(size=1000))
    >>> round(big.variance, 3)
    0.955
    """

    n: int
    mean: float
    """Sample mean (NaN before the first observation)."""
    m2: float
    """Sum of squared deviations from the mean."""

    def __post_init__(self) -> None:
        check_count("MeanStats", "n", self.n)
        if self.n:
            check_finite("MeanStats", "mean", self.mean)
        m2 = check_finite("MeanStats", "m2", self.m2)
        if m2 < 0:
            fail("MeanStats", "m2", "a sum of squared deviations >= 0", self.m2)

    @property
    def variance(self) -> float:
        """Unbiased sample variance (ddof=1); NaN below two observations."""
        if self.n < 2:
            return math.nan
        return self.m2 / (self.n - 1)

    def __add__(self, other: MeanStats) -> MeanStats:
        if not other.n:
            return self
        if not self.n:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        return MeanStats(n, mean, self.m2 + other.m2 + delta * delta * self.n * other.n / n)

    def __neg__(self) -> MeanStats:
        """The same observations negated (to compare a lower-is-better metric)."""
        return MeanStats(self.n, -self.mean if self.n else self.mean, self.m2)

    @classmethod
    def empty(cls) -> MeanStats:
        """No observation yet."""
        return cls(0, math.nan, 0.0)

    @classmethod
    def from_values(cls, values: ArrayLike) -> MeanStats:
        """Summarise an array of observations (two passes: mean, then deviations)."""
        x = np.asarray(values, dtype=float).ravel()
        if x.size == 0:
            return cls.empty()
        mean = float(x.mean())
        dev = x - mean
        return cls(n=int(x.size), mean=mean, m2=float(np.dot(dev, dev)))

    @classmethod
    def from_moments(cls, n: int, mean: float, variance: float) -> MeanStats:
        """Rebuild from a reported count, mean and sample variance (ddof=1).

        >>> MeanStats.from_moments(10, 2.0, 0.5).variance
        0.5
        """
        n = check_count("MeanStats", "n", n, minimum=1)
        mean = check_finite("MeanStats", "mean", mean)
        if variance != 0:
            variance = check_positive("MeanStats", "variance", variance)
        return cls(n=n, mean=mean, m2=variance * (n - 1))

    @classmethod
    def from_sums(cls, n: int, total: float, total_sq: float) -> MeanStats:
        """From counters of ``Σx`` and ``Σx²`` (atomic increments in SQL or Redis).

        The variance then carries the sums' cancellation error, about
        ``1e-16 · mean² / variance`` relative; fine for rewards, revenue and latency, not
        for a metric whose mean dwarfs its spread (keep such counters shifted).

        >>> round(MeanStats.from_sums(3, 7.0, 21.0).variance, 6)
        2.333333
        """
        n = check_count("MeanStats", "n", n)
        total = check_finite("MeanStats", "total", total)
        total_sq = check_finite("MeanStats", "total_sq", total_sq)
        if n == 0:
            return cls.empty()
        return cls(n=n, mean=total / n, m2=max(total_sq - total * total / n, 0.0))
