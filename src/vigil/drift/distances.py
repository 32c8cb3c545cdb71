"""Distances between two binned distributions (histogram counts over the same bins).

Every function takes the reference counts and the current counts over the *same* bins
(numeric quantile bins, or categories) and returns a float. Counts are normalised to
proportions here, so callers pass raw counts straight from ``np.bincount`` or from a
stored baseline profile.

Smoothing: the population stability index and the KL divergence are undefined when a
bin is empty on one side. Empty bins get the proportion ``EPSILON = 1e-4`` (no
renormalisation), the convention used by most monitoring tools. Jensen–Shannon,
Hellinger and total variation are finite without smoothing and use the raw proportions.

>>> ref, cur = [50, 30, 20], [20, 30, 50]
>>> round(psi(ref, cur), 4), round(js_distance(ref, cur), 4)
(0.5498, 0.3095)
>>> round(hellinger(ref, cur), 4), round(total_variation(ref, cur), 4)
(0.2599, 0.3)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

EPSILON = 1e-4
"""Proportion given to an empty bin by :func:`psi` and :func:`kl_divergence`."""

Counts = npt.ArrayLike | Sequence[float]


def proportions(counts: Counts) -> npt.NDArray[np.float64]:
    """Counts divided by their total; all zeros when the total is zero."""
    arr = np.asarray(counts, dtype=np.float64)
    total = float(arr.sum())
    if total <= 0:
        return np.zeros(arr.shape, dtype=np.float64)
    return np.asarray(arr / total, dtype=np.float64)


def _pair(reference: Counts, current: Counts) -> tuple[npt.NDArray[np.float64], ...]:
    p, q = proportions(reference), proportions(current)
    if p.shape != q.shape:
        raise ValueError(
            f"reference has {p.size} bins and current {q.size}; bin both over the same edges"
        )
    return p, q


def _smoothed(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.where(p > 0, p, EPSILON)


def psi(reference: Counts, current: Counts) -> float:
    """Population stability index, ``sum((c - r) * ln(c / r))`` over the bins.

    Symmetric in its arguments; empty bins are smoothed to ``EPSILON``. Rules of thumb:
    below 0.1 stable, 0.1–0.2 moderate shift, above 0.2 significant shift.
    """
    r, c = _pair(reference, current)
    r, c = _smoothed(r), _smoothed(c)
    return float(np.sum((c - r) * np.log(c / r)))


def kl_divergence(reference: Counts, current: Counts) -> float:
    """Kullback–Leibler divergence ``KL(current || reference)`` in nats, bins smoothed."""
    r, c = _pair(reference, current)
    r, c = _smoothed(r), _smoothed(c)
    return float(np.sum(c * np.log(c / r)))


def js_distance(reference: Counts, current: Counts) -> float:
    """Jensen–Shannon *distance* (square root of the divergence), base 2, in [0, 1].

    Equals ``scipy.spatial.distance.jensenshannon(reference, current, base=2)``.
    """
    p, q = _pair(reference, current)
    if not p.any() or not q.any():
        return 0.0 if not p.any() and not q.any() else 1.0
    m = 0.5 * (p + q)
    divergence = max(0.5 * (_relative_entropy_bits(p, m) + _relative_entropy_bits(q, m)), 0.0)
    return float(np.sqrt(divergence))


def _relative_entropy_bits(p: npt.NDArray[np.float64], m: npt.NDArray[np.float64]) -> float:
    # 0 * log(0 / m) is 0 by continuity; masked so that log never sees a zero.
    mask = p > 0
    return float(np.sum(p[mask] * np.log2(p[mask] / m[mask])))


def hellinger(reference: Counts, current: Counts) -> float:
    """Hellinger distance ``sqrt(1 - sum(sqrt(r * c)))``, in [0, 1]."""
    r, c = _pair(reference, current)
    bc = float(np.sum(np.sqrt(r * c)))
    return float(np.sqrt(max(1.0 - bc, 0.0)))


def total_variation(reference: Counts, current: Counts) -> float:
    """Total variation distance ``0.5 * sum(|r - c|)``, in [0, 1]."""
    r, c = _pair(reference, current)
    return float(0.5 * np.abs(r - c).sum())
