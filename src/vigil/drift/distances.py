"""Distances between two binned distributions (histogram counts over the same bins).

Every function takes the reference counts and the current counts over the *same* bins
(numeric bins, or categories) and returns a float. Counts are normalised to proportions
here, so callers pass raw counts straight from ``np.bincount`` or from a stored baseline
profile. Each function also accepts a stack of count vectors (shape ``(..., bins)``) and
then returns one distance per vector: :mod:`vigil.drift.binned` uses that to compute a
distance on thousands of permuted tables at once.

Smoothing: the population stability index and the KL divergence are undefined when a
bin is empty on one side. An empty bin gets half an observation of its side, the
proportion ``0.5 / n`` (the Jeffreys prior's pseudo-count), so the penalty for an empty
bin shrinks as the side it is empty on grows: a bin empty in 30 rows is weak evidence, in
a million rows strong evidence. Non-empty bins keep their proportions (no
renormalisation), so identical distributions are at distance 0; a bin empty on both
sides is left out. Jensen–Shannon,
Hellinger and total variation are finite without smoothing and use the raw proportions.

>>> ref, cur = [50, 30, 20], [20, 30, 50]
>>> round(psi(ref, cur), 4), round(js_distance(ref, cur), 4)
(0.5498, 0.3095)
>>> round(hellinger(ref, cur), 4), round(total_variation(ref, cur), 4)
(0.2599, 0.3)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from vigil.errors import ValidationError

PSEUDO_COUNT = 0.5
"""Observations given to an empty bin by :func:`psi` and :func:`kl_divergence`."""

Counts = npt.ArrayLike | Sequence[float]
FloatArray = npt.NDArray[np.float64]


def proportions(counts: Counts) -> FloatArray:
    """Counts divided by their total (along the last axis); all zeros for a zero total."""
    arr = np.asarray(counts, dtype=np.float64)
    total = arr.sum(axis=-1, keepdims=True)
    safe = np.where(total > 0, total, 1.0)
    return np.asarray(arr / safe, dtype=np.float64)


def _pair(reference: Counts, current: Counts) -> tuple[FloatArray, FloatArray]:
    r, c = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    if r.shape[-1:] != c.shape[-1:]:
        raise ValidationError(
            f"reference has {r.shape[-1]} bins and current {c.shape[-1]}; "
            "bin both over the same edges"
        )
    return r, c


def _smoothed(counts: FloatArray) -> FloatArray:
    total = counts.sum(axis=-1, keepdims=True)
    safe = np.where(total > 0, total, 1.0)
    p = counts / safe
    return np.asarray(np.where(counts > 0, p, PSEUDO_COUNT / np.maximum(safe, 1.0)))


def _used(r: FloatArray, c: FloatArray) -> npt.NDArray[np.bool_]:
    """Bins with a count on either side; a bin empty on both carries nothing."""
    return np.asarray((r > 0) | (c > 0))


def _result(values: Any) -> Any:
    return float(values) if np.ndim(values) == 0 else values


def psi(reference: Counts, current: Counts) -> Any:
    """Population stability index, ``sum((c - r) * ln(c / r))`` over the bins.

    Symmetric in its arguments; empty bins are smoothed (see the module docstring).
    Rules of thumb: below 0.1 stable, 0.1–0.2 moderate shift, above 0.2 significant
    shift; :mod:`vigil.drift.binned` judges it against chance at the data's size too.
    """
    r, c = _pair(reference, current)
    rs, cs = _smoothed(r), _smoothed(c)
    terms = np.where(_used(r, c), (cs - rs) * np.log(cs / rs), 0.0)
    return _result(np.sum(terms, axis=-1))


def kl_divergence(reference: Counts, current: Counts) -> Any:
    """Kullback–Leibler divergence ``KL(current || reference)`` in nats, bins smoothed."""
    r, c = _pair(reference, current)
    rs, cs = _smoothed(r), _smoothed(c)
    return _result(np.sum(np.where(_used(r, c), cs * np.log(cs / rs), 0.0), axis=-1))


def js_distance(reference: Counts, current: Counts) -> Any:
    """Jensen–Shannon *distance* (square root of the divergence), base 2, in [0, 1].

    Equals ``scipy.spatial.distance.jensenshannon(reference, current, base=2)``; 1 when
    exactly one side is empty, 0 when both are.
    """
    r, c = _pair(reference, current)
    p, q = proportions(r), proportions(c)
    m = 0.5 * (p + q)
    divergence = 0.5 * (_relative_entropy_bits(p, m) + _relative_entropy_bits(q, m))
    distance = np.sqrt(np.maximum(divergence, 0.0))
    p_empty, q_empty = ~p.any(axis=-1), ~q.any(axis=-1)
    distance = np.where(p_empty & q_empty, 0.0, np.where(p_empty | q_empty, 1.0, distance))
    return _result(distance)


def _relative_entropy_bits(p: FloatArray, m: FloatArray) -> FloatArray:
    # 0 * log(0 / m) is 0 by continuity; masked so that log never sees a zero.
    safe_m = np.where(p > 0, m, 1.0)
    ratio = np.where(p > 0, p / safe_m, 1.0)
    return np.asarray(np.sum(p * np.log2(ratio), axis=-1))


def hellinger(reference: Counts, current: Counts) -> Any:
    """Hellinger distance ``sqrt(1 - sum(sqrt(r * c)))``, in [0, 1]."""
    r, c = _pair(reference, current)
    bc = np.sum(np.sqrt(proportions(r) * proportions(c)), axis=-1)
    return _result(np.sqrt(np.maximum(1.0 - bc, 0.0)))


def total_variation(reference: Counts, current: Counts) -> Any:
    """Total variation distance ``0.5 * sum(|r - c|)``, in [0, 1]."""
    r, c = _pair(reference, current)
    return _result(0.5 * np.abs(proportions(r) - proportions(c)).sum(axis=-1))


DISTANCES = {
    "psi": psi,
    "js": js_distance,
    "kl": kl_divergence,
    "hellinger": hellinger,
    "tvd": total_variation,
}
"""The binned distances by method name."""
