"""Per-variant sufficient statistics: the only numbers serving has to keep.

A conversion metric needs ``(n, successes)``; a continuous metric ``(n, sum, sum of
squares)``. Both are plain sums, so they are updated with atomic increments in a SQL row
or a Redis hash and two shards merge by adding them (``a + b``). Every test in
:mod:`vigil.stats` starts from these records.

Keeping raw sums rather than a running mean and M2 (Welford) trades a little numerical
accuracy on metrics with a huge mean and a tiny spread for increments that need no
read-modify-write; for rewards, revenue and latencies the loss is far below the noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from vigil.stats._checks import check_count, check_finite, check_positive, fail
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
    """Count, sum and sum of squares of one variant on a continuous metric.

    >>> s = MeanStats.from_values([1.0, 2.0, 4.0])
    >>> s.n, round(s.mean, 4), round(s.variance, 4)
    (3, 2.3333, 2.3333)
    """

    n: int
    total: float
    total_sq: float

    def __post_init__(self) -> None:
        check_count("MeanStats", "n", self.n)
        check_finite("MeanStats", "total", self.total)
        sq = check_finite("MeanStats", "total_sq", self.total_sq)
        if sq < 0:
            fail("MeanStats", "total_sq", "a sum of squares >= 0", self.total_sq)

    @property
    def mean(self) -> float:
        """Sample mean (NaN before the first observation)."""
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Unbiased sample variance (ddof=1); NaN below two observations."""
        if self.n < 2:
            return math.nan
        # Clipped at 0: the sum-of-squares form can go a hair negative by rounding.
        return max(self.total_sq - self.total * self.total / self.n, 0.0) / (self.n - 1)

    def __add__(self, other: MeanStats) -> MeanStats:
        return MeanStats(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    @classmethod
    def from_values(cls, values: ArrayLike) -> MeanStats:
        """Summarise an array of observations."""
        x = np.asarray(values, dtype=float).ravel()
        return cls(n=int(x.size), total=float(x.sum()), total_sq=float(np.dot(x, x)))

    @classmethod
    def from_moments(cls, n: int, mean: float, variance: float) -> MeanStats:
        """Rebuild the sums from a reported count, mean and sample variance (ddof=1).

        >>> MeanStats.from_moments(10, 2.0, 0.5).variance
        0.5
        """
        n = check_count("MeanStats", "n", n, minimum=1)
        mean = check_finite("MeanStats", "mean", mean)
        if variance != 0:
            variance = check_positive("MeanStats", "variance", variance)
        total = n * mean
        return cls(n=n, total=total, total_sq=variance * (n - 1) + total * mean)
