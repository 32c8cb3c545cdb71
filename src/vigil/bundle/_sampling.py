"""Seeded uniform row sampling that does not depend on how the rows were chunked.

Each row gets a pseudo-random 64-bit key from its position and the seed (SplitMix64);
keeping the ``k`` rows with the smallest keys is a uniform sample without replacement
(bottom-k sampling). Because a row's key depends only on its position, reading a file in
chunks of any size gives the same sample, and the rows of a smaller sample are always
among those of a larger one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

_GOLDEN = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


def row_keys(start: int, n: int, seed: int) -> npt.NDArray[np.uint64]:
    """SplitMix64 keys of rows ``start .. start + n - 1`` (array arithmetic wraps mod 2**64).

    >>> row_keys(0, 3, seed=0).tolist() == row_keys(0, 3, seed=0).tolist()
    True
    >>> bool((row_keys(0, 3, seed=0) != row_keys(0, 3, seed=1)).all())
    True
    """
    z = np.arange(start, start + n, dtype=np.uint64)
    z += np.uint64((seed * _GOLDEN + _GOLDEN) & _MASK)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


class BottomK:
    """The rows with the ``k`` smallest keys seen so far (all rows when ``k`` is None).

    Call :meth:`select` with a chunk's keys to learn which of its rows may enter (None for
    all of them), then :meth:`add` those rows' keys and column values.

    >>> s = BottomK(2)
    >>> keys = np.array([5, 1, 9, 3], dtype=np.uint64)
    >>> idx = s.select(keys)
    >>> s.add(keys[idx], {"x": np.array([50, 10, 90, 30])[idx]})
    >>> sorted(s.columns()["x"].tolist()), s.complete
    ([10, 30], False)
    """

    def __init__(self, k: int | None) -> None:
        if k is not None and k < 0:
            raise ValueError(f"sample size must be at least 0, got {k}")
        self.k = k
        self.complete = True
        """Whether every row offered so far was kept."""
        self._keys: list[npt.NDArray[np.uint64]] = []
        self._cols: dict[str, list[npt.NDArray[Any]]] = {}
        self._size = 0
        self._threshold: np.uint64 | None = None

    def select(self, keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp] | None:
        """Positions of the rows of this chunk that may enter (None: every row)."""
        if self.k is None:
            return None
        idx: npt.NDArray[np.intp] | None = None
        if self._threshold is not None:
            idx = np.flatnonzero(keys < self._threshold)
        candidates = len(keys) if idx is None else len(idx)
        if candidates > self.k:
            sub = keys if idx is None else keys[idx]
            part = np.argpartition(sub, self.k - 1)[: self.k] if self.k else sub[:0].astype(np.intp)
            idx = part if idx is None else idx[part]
        if idx is not None and len(idx) < len(keys):
            self.complete = False
        return idx

    def add(self, keys: npt.NDArray[np.uint64], columns: dict[str, npt.NDArray[Any]]) -> None:
        """Offer rows (their keys and column values, aligned)."""
        if self.k == 0 or len(keys) == 0:
            return
        self._keys.append(keys)
        for name, values in columns.items():
            self._cols.setdefault(name, []).append(values)
        self._size += len(keys)
        if self.k is not None and self._size > self.k:
            self._prune(self.k)

    def _prune(self, k: int) -> None:
        keys = np.concatenate(self._keys)
        keep = np.argpartition(keys, k - 1)[:k]
        self._keys = [keys[keep]]
        self._cols = {n: [np.concatenate(parts)[keep]] for n, parts in self._cols.items()}
        self._size = k
        self._threshold = self._keys[0].max()
        self.complete = False

    def __len__(self) -> int:
        return self._size

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """Each column's kept values, rows in the same (unspecified) order."""
        return {
            n: parts[0] if len(parts) == 1 else np.concatenate(parts)
            for n, parts in self._cols.items()
        }
