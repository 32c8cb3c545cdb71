"""ADaptive WINdowing (ADWIN) drift detector."""

from __future__ import annotations

import math
from typing import ClassVar

from vigil.drift.detectors.base import DriftDetector
from vigil.params import Rule


class ADWIN(DriftDetector):
    r"""ADWIN: keep the longest recent window whose two halves agree on the mean.

    The window is stored as an exponential histogram: row :math:`i` holds up to
    ``max_buckets`` buckets summarising :math:`2^i` values each (their total and variance),
    so memory and time are logarithmic in the window length. Every ``clock`` values, once
    the window is longer than ``grace_period``, each split of the window into an older
    part :math:`W_0` and a newer part :math:`W_1` (at bucket boundaries, each part at least
    ``min_window_length`` long) is tested: with :math:`m = 1/(n_0 - l + 1) + 1/(n_1 - l + 1)`,
    :math:`\delta' = \ln(2 \ln(n) / \delta)` and window variance :math:`\sigma^2`,

    .. math::

        |\hat\mu_0 - \hat\mu_1| > \sqrt{2 m \sigma^2 \delta'} + \tfrac{2}{3} \delta' m

    signals drift and the oldest bucket is dropped; the test repeats until no split
    differs.

    Parameters
    ----------
    delta
        Confidence of the cut test (smaller: fewer false alarms, slower detection).
    clock
        Test for cuts every ``clock`` values.
    max_buckets
        Buckets per row of the histogram before two are merged.
    min_window_length
        Smallest size of each part of a split.
    grace_period
        Values to see before any test.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(12345)
    >>> stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
    >>> adwin = ADWIN()
    >>> for i, x in enumerate(stream):
    ...     adwin.update(x)
    ...     if adwin.drift_detected:
    ...         print(f"Drift detected at index {i}")
    Drift detected at index 1023

    References
    ----------
    A. Bifet, R. Gavaldà (2007). Learning from time-changing data with adaptive windowing.
    SIAM International Conference on Data Mining, 443–448.
    """

    _rules: ClassVar[dict[str, Rule]] = {
        "delta": ("range", 0.0, 1.0, "neither"),
        "clock": ("count", 1),
        "max_buckets": ("count", 1),
        "min_window_length": ("count", 1),
        "grace_period": ("count", 0),
    }

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self._validate()
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        # rows[i]: buckets of 2**i values as [total, variance], oldest first.
        self._rows: list[list[tuple[float, float]]] = [[]]
        self._total = 0.0
        self._variance = 0.0  # sum of squared deviations in the window
        self._width = 0.0
        self._tick = 0
        self.n_detections = 0

    @property
    def width(self) -> int:
        """Number of values in the current window."""
        return int(self._width)

    @property
    def estimation(self) -> float:
        """Mean of the current window."""
        return self._total / self._width if self._width else 0.0

    def _update(self, x: float) -> None:
        self._insert(float(x))
        self._drift_detected = self._detect()

    def _insert(self, value: float) -> None:
        self._width += 1.0
        if self._width > 1.0:
            gap = value - self._total / (self._width - 1.0)
            self._variance += (self._width - 1.0) * gap * gap / self._width
        self._total += value
        self._rows[0].append((value, 0.0))
        self._merge()

    def _merge(self) -> None:
        i = 0
        while len(self._rows[i]) == self.max_buckets + 1:
            size = float(2**i)
            (t0, v0), (t1, v1) = self._rows[i][0], self._rows[i][1]
            mu0, mu1 = t0 / size, t1 / size
            merged = (t0 + t1, v0 + v1 + size * 0.5 * (mu0 - mu1) * (mu0 - mu1))
            if i + 1 == len(self._rows):
                self._rows.append([])
            self._rows[i + 1].append(merged)
            del self._rows[i][:2]
            i += 1

    def _drop_oldest(self) -> None:
        last = len(self._rows) - 1
        size = float(2**last)
        total, variance = self._rows[last].pop(0)
        self._width -= size
        self._total -= total
        gap = total / size - self._total / self._width
        self._variance -= variance + size * self._width * gap * gap / (size + self._width)
        if not self._rows[last]:
            self._rows.pop()

    def _detect(self) -> bool:
        self._tick += 1
        if self._tick % self.clock != 0 or self._width <= self.grace_period:
            return False
        detected = False
        while self._find_cut():
            detected = True
            self._drop_oldest()
        if detected:
            self.n_detections += 1
        return detected

    def _find_cut(self) -> bool:
        n0, n1 = 0.0, self._width
        u0, u1 = 0.0, self._total
        for i in range(len(self._rows) - 1, -1, -1):
            size = float(2**i)
            row = self._rows[i]
            for k, (total, _) in enumerate(row):
                n0 += size
                n1 -= size
                u0 += total
                u1 -= total
                if i == 0 and k == len(row) - 1:
                    return False  # the newest bucket cannot be a part on its own
                if (
                    n1 >= self.min_window_length
                    and n0 >= self.min_window_length
                    and self._cut(n0, n1, u0 / n0 - u1 / n1)
                ):
                    return True
        return False

    def _cut(self, n0: float, n1: float, mean_gap: float) -> bool:
        delta_prime = math.log(2.0 * math.log(self._width) / self.delta)
        m = 1.0 / (n0 - self.min_window_length + 1.0) + 1.0 / (n1 - self.min_window_length + 1.0)
        spread = 2.0 * m * (self._variance / self._width) * delta_prime
        if not spread >= 0.0:  # rounding can push a zero variance below zero
            return False
        epsilon = math.sqrt(spread) + 2.0 / 3.0 * delta_prime * m
        return abs(mean_gap) > epsilon
