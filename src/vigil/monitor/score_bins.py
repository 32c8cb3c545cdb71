"""A binary classifier's rows by predicted class and by bin of a class probability.

Performance estimated before labels (CBPE, :mod:`vigil.monitor.estimated`) needs, of each
row, its predicted class and its probability of the positive class; a window summary's
marginal sketch of each probability loses which class the row was predicted as. A
:class:`ScoreBins` keeps both, for one probability column: per predicted class, the rows
in each of :data:`BINS` equal-width bins over [0, 1] and the sum of their probabilities.
It merges by addition (a window is the sum of its buckets), so a window of any size is
estimated from its summary (:meth:`~vigil.monitor.estimated.CBPE.estimate_binned`) without
reading its rows; the sums keep the expected confusion counts exact.

Summaries keep them for binary classifiers only (two probability columns): ``k`` classes
would cost ``k²`` histograms.

>>> bins = ScoreBins()
>>> bins.update(["1", "0", "1"], np.array([0.9, 0.2, 0.95]))
>>> counts, sums = bins.arrays(["0", "1"])
>>> int(counts.sum()), round(float(sums[1].sum()), 2)
(3, 1.85)
>>> ScoreBins.from_dict(bins.to_dict()).merge(bins).arrays(["0", "1"])[0].sum()
np.float64(6.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BINS", "ScoreBins"]

BINS = 1024
"""Equal-width bins of the probability over [0, 1]."""

FloatArray = npt.NDArray[np.float64]


class ScoreBins:
    """Rows per predicted class (text key) and probability bin: counts and sums."""

    def __init__(self) -> None:
        self.counts: dict[str, FloatArray] = {}
        self.sums: dict[str, FloatArray] = {}

    def update(self, predicted: Sequence[str], proba: FloatArray) -> None:
        """Add rows: their predicted classes and their probabilities of this column's class
        (rows without a finite probability in [0, 1] are left out)."""
        p = np.asarray(proba, dtype=np.float64)
        keys = np.asarray(predicted, dtype=object)
        ok = np.isfinite(p) & (p >= 0) & (p <= 1)
        p, keys = p[ok], keys[ok]
        where = np.minimum((p * BINS).astype(np.int64), BINS - 1)
        for key in sorted(set(keys.tolist())):
            mine = keys == key
            counts = self.counts.setdefault(str(key), np.zeros(BINS))
            counts += np.bincount(where[mine], minlength=BINS)
            sums = self.sums.setdefault(str(key), np.zeros(BINS))
            sums += np.bincount(where[mine], weights=p[mine], minlength=BINS)

    def merge(self, other: ScoreBins) -> ScoreBins:
        for key, counts in other.counts.items():
            self.counts.setdefault(key, np.zeros(BINS))[:] += counts
            self.sums.setdefault(key, np.zeros(BINS))[:] += other.sums[key]
        return self

    def arrays(self, keys: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """Counts and sums, one row per class of ``keys`` (rows predicted as another class
        are left out), one column per bin."""
        zero = np.zeros(BINS)
        counts = np.stack([self.counts.get(k, zero) for k in keys])
        sums = np.stack([self.sums.get(k, zero) for k in keys])
        return counts, sums

    def to_dict(self) -> dict[str, Any]:
        """Only the bins that hold rows (JSON: no pickle)."""
        out = {}
        for key, counts in self.counts.items():
            held = np.flatnonzero(counts)
            out[key] = {
                "bins": held.tolist(),
                "counts": counts[held].astype(np.int64).tolist(),
                "sums": self.sums[key][held].tolist(),
            }
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreBins:
        out = cls()
        for key, d in data.items():
            held = np.asarray(d["bins"], dtype=np.int64)
            out.counts[key] = np.zeros(BINS)
            out.counts[key][held] = d["counts"]
            out.sums[key] = np.zeros(BINS)
            out.sums[key][held] = d["sums"]
        return out
