"""Mergeable summaries of one column: numbers, categories and a fixed-bucket histogram.

Each summary takes one batch at a time (bounded memory, one pass) and merges with another
of its kind; what each part promises after any grouping of merges:

* **Exact** (any grouping, same value): counts of values, missing, ``±inf``; counts in
  fixed buckets (the reference's bins, the latency histogram); category counts of the
  labels counted exactly (see :class:`CategoricalSummary`).
* **Exact up to floating-point rounding**: moments (count, mean, sum of squared
  deviations, min, max) by Chan et al.'s pairwise update
  (:class:`~vigil.bundle.accumulators.Moments`).
* **Within the sketch's bound**: quantiles, from Apache DataSketches' KLL sketch
  (``kll_doubles_sketch``, :data:`KLL_K` = 2000): the rank of a returned quantile is off
  by at most :func:`rank_error` (0.14 % at 99 % confidence) whatever the grouping; and
  the frequencies of labels past the exact cap, from its frequent-items sketch (an
  estimate off by at most ``epsilon * weight`` of the items it saw, ``epsilon`` = 3.5 /
  4096, under 0.09 %).

Serialised as plain JSON values (sketches as base64 of DataSketches' own binary form);
nothing is pickled.

>>> import numpy as np, pyarrow as pa
>>> a, b = NumericSummary(), NumericSummary()
>>> a.update(np.arange(1000.0)); b.update(np.array([np.nan, np.inf, 5.0]))
>>> a.merge(b); a.moments.n, a.moments.missing, a.moments.pos_inf
(1001, 1, 1)
>>> c = CategoricalSummary(cap=2)
>>> c.update(pa.array(["a", "b", "a", None, "z"]))
>>> c.counts, c.missing, c.overflow_weight, c.estimate("z")
({'a': 2, 'b': 1}, 1, 1, 1)
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from vigil.bundle.accumulators import Moments

KLL_K = 2000
"""KLL accuracy parameter: about 42 kB a column when full, rank error 0.14 %."""
FREQUENT_LG_MAP = 12
"""log2 of the frequent-items sketch's map size (4096 counters, about 35 kB)."""
CATEGORY_CAP = 10_000
"""Distinct labels a summary counts exactly; later ones go to the frequent-items sketch."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _datasketches() -> Any:
    try:
        import datasketches  # DataSketches: only where summaries are built or read
    except ImportError as exc:  # pragma: no cover - the extra is part of vigil[monitor]
        raise ImportError(
            "window summaries need Apache DataSketches: pip install 'vigil[monitor]'"
        ) from exc
    return datasketches


def available() -> bool:
    """Whether Apache DataSketches is installed (``vigil[monitor]``), without importing it."""
    import importlib.util

    return importlib.util.find_spec("datasketches") is not None


def rank_error(k: int = KLL_K) -> float:
    """The KLL sketch's normalised rank error (99 % confidence) for accuracy ``k``.

    >>> round(rank_error(), 4)
    0.0014
    """
    return float(_datasketches().kll_doubles_sketch.get_normalized_rank_error(k, False))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def ints(values: Iterable[Any]) -> IntArray:
    return np.asarray(list(values), dtype=np.int64)


def _moments_dict(m: Moments) -> dict[str, Any]:
    finite = m.n > 0
    return {
        "n": m.n,
        "missing": m.missing,
        "pos_inf": m.pos_inf,
        "neg_inf": m.neg_inf,
        "min": m.min if finite else None,
        "max": m.max if finite else None,
        "mean": m.mean,
        "m2": m.m2,
    }


def _moments_from(data: dict[str, Any]) -> Moments:
    m = Moments()
    m.n, m.missing = int(data["n"]), int(data["missing"])
    m.pos_inf, m.neg_inf = int(data["pos_inf"]), int(data["neg_inf"])
    m.min = np.inf if data["min"] is None else float(data["min"])
    m.max = -np.inf if data["max"] is None else float(data["max"])
    m.mean, m.m2 = float(data["mean"]), float(data["m2"])
    return m


class NumericSummary:
    """Moments, a KLL quantile sketch of the finite values, and exact counts between
    fixed ``cuts``: bucket ``j`` holds the finite values ``x`` with ``cuts[j-1] <= x <
    cuts[j]`` (the first and last buckets open), so counts in any bins whose inner edges
    are among the cuts are exact.
    """

    def __init__(self, cuts: Sequence[float] = (), *, k: int = KLL_K) -> None:
        self.k = k
        self.cuts = np.unique(np.asarray(cuts, dtype=np.float64))
        self.moments = Moments()
        self.buckets = np.zeros(self.cuts.size + 1, dtype=np.int64)
        self.sketch = _datasketches().kll_doubles_sketch(k)

    def update(self, x: FloatArray) -> None:
        """Add values (NaN is missing, ``±inf`` counted apart)."""
        x = np.asarray(x, dtype=np.float64)
        self.moments.update(x)
        finite = x[np.isfinite(x)]
        if finite.size:
            self.sketch.update(finite)
            if self.cuts.size:
                where = np.searchsorted(self.cuts, finite, side="right")
                self.buckets += np.bincount(where, minlength=self.buckets.size)
            else:
                self.buckets[0] += finite.size

    def merge(self, other: NumericSummary) -> None:
        if not np.array_equal(self.cuts, other.cuts):
            raise ValueError("numeric summaries over different cuts do not merge")
        self.moments.merge(other.moments)
        self.buckets += other.buckets
        self.sketch.merge(other.sketch)

    def quantiles(self, ranks: FloatArray) -> FloatArray:
        """Approximate quantiles of the finite values at ``ranks`` in [0, 1]."""
        if self.sketch.is_empty():
            return np.full(np.shape(ranks), np.nan)
        return np.asarray(self.sketch.get_quantiles(np.asarray(ranks, np.float64)), np.float64)

    def quantile_grid(self, size: int) -> FloatArray:
        """The finite values at ranks ``(i + 1/2) / size``, sorted: a stand-in for them."""
        return np.sort(self.quantiles((np.arange(size) + 0.5) / size))

    def counts_between(self, cuts: FloatArray) -> IntArray:
        """Exact counts of finite values between ``cuts`` (each must be one of ours)."""
        cuts = np.asarray(cuts, dtype=np.float64)
        index = np.searchsorted(self.cuts, cuts)
        if cuts.size and (
            np.any(index >= self.cuts.size) or not np.array_equal(self.cuts[index], cuts)
        ):
            raise ValueError("counts between cuts the summary was not built with")
        bounds = np.concatenate([[0], index + 1, [self.buckets.size]])
        cumulative = np.concatenate([[0], np.cumsum(self.buckets)])
        return np.asarray(np.diff(cumulative[bounds]), dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "cuts": self.cuts.tolist(),
            "moments": _moments_dict(self.moments),
            "buckets": self.buckets.tolist(),
            "sketch": b64(self.sketch.serialize()),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumericSummary:
        out = cls(data["cuts"], k=int(data["k"]))
        out.moments = _moments_from(data["moments"])
        out.buckets = ints(data["buckets"])
        out.sketch = _datasketches().kll_doubles_sketch.deserialize(unb64(data["sketch"]))
        return out


class CategoricalSummary:
    """Category counts keyed by ``str(value)`` (the baseline profile's convention).

    The labels in ``known`` (the reference's categories) and the first ``cap`` other
    distinct labels are counted exactly; once ``cap`` is reached, further labels go to a
    frequent-items sketch whose total (``overflow_weight``) stays exact. Which labels are
    exact can depend on the order of merges; their estimates never leave the sketch's
    bound, and counts of ``known`` labels are always exact.
    """

    def __init__(self, known: Iterable[str] = (), *, cap: int = CATEGORY_CAP) -> None:
        self.known = frozenset(known)
        self.cap = cap
        self.counts: dict[str, int] = {}
        self.missing = 0
        self.overflow_weight = 0
        self._overflow: Any = None

    @property
    def overflow(self) -> Any:
        if self._overflow is None:
            self._overflow = _datasketches().frequent_strings_sketch(FREQUENT_LG_MAP)
        return self._overflow

    @property
    def n(self) -> int:
        """Present (non-missing) values."""
        return sum(self.counts.values()) + self.overflow_weight

    def _add(self, label: str, count: int) -> None:
        counts = self.counts
        if label in counts:
            counts[label] += count
        elif len(counts) < self.cap or label in self.known:
            counts[label] = count
        else:
            self.overflow.update(label, count)
            self.overflow_weight += count

    def update(self, values: Any) -> None:
        """Add an Arrow array of values (null, and NaN in a float column, are missing)."""
        import pyarrow as pa  # PyArrow: only where summaries are built
        import pyarrow.compute as pc

        if not isinstance(values, pa.Array | pa.ChunkedArray):
            values = pa.array(values, from_pandas=True)
        if pa.types.is_dictionary(values.type):
            values = pc.dictionary_decode(values)
        if pa.types.is_floating(values.type):
            values = pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values)
        self.missing += values.null_count
        vc = pc.value_counts(values)
        for value, count in zip(
            vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True
        ):
            if value is not None:
                self._add(str(value), int(count))

    def merge(self, other: CategoricalSummary) -> None:
        if self.known != other.known:
            raise ValueError("categorical summaries over different known labels do not merge")
        self.missing += other.missing
        for label, count in other.counts.items():
            self._add(label, count)
        if other.overflow_weight:
            self.overflow.merge(other.overflow)
            self.overflow_weight += other.overflow_weight

    def estimate(self, label: str) -> int:
        """Count of ``label``: exact when counted exactly, else the sketch's estimate."""
        exact = self.counts.get(label, 0)
        if not self.overflow_weight:
            return exact
        return exact + int(self.overflow.get_estimate(label))

    def overflow_error(self) -> int:
        """The most any :meth:`estimate` can be off by (0 while nothing overflowed)."""
        if not self.overflow_weight:
            return 0
        epsilon = self.overflow.get_epsilon_for_lg_size(FREQUENT_LG_MAP)
        return int(np.ceil(epsilon * self.overflow_weight))

    def overflow_items(self) -> dict[str, int]:
        """The sketch's frequent labels with their estimates (empty without overflow)."""
        if not self.overflow_weight:
            return {}
        ds = _datasketches()
        items = self.overflow.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES)
        return {str(item): int(estimate) for item, estimate, *_bounds in items}

    def to_dict(self) -> dict[str, Any]:
        return {
            "known": sorted(self.known),
            "cap": self.cap,
            "counts": self.counts,
            "missing": self.missing,
            "overflow_weight": self.overflow_weight,
            "overflow": b64(self.overflow.serialize()) if self.overflow_weight else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoricalSummary:
        out = cls(data["known"], cap=int(data["cap"]))
        out.counts = {str(k): int(v) for k, v in data["counts"].items()}
        out.missing = int(data["missing"])
        out.overflow_weight = int(data["overflow_weight"])
        if data.get("overflow"):
            out._overflow = _datasketches().frequent_strings_sketch.deserialize(
                unb64(data["overflow"])
            )
        return out


LATENCY_EDGES_MS = np.concatenate([[0.0], 0.05 * 2.0 ** (np.arange(0, 84) / 4)])
"""Latency bucket edges: 0, then 0.05 ms growing by 2^(1/4) (19 % a bucket) to about 100 s."""


class Histogram:
    """Exact counts in fixed buckets ``[e_i, e_i+1)`` (the last open), with the moments.

    >>> h = Histogram(np.array([0.0, 1.0, 10.0]))
    >>> h.update(np.array([0.5, 3.0, 50.0, np.nan])); h.counts.tolist(), h.quantile(0.5)
    ([1, 1, 1], 10.0)
    """

    def __init__(self, edges: FloatArray = LATENCY_EDGES_MS) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        self.counts = np.zeros(self.edges.size, dtype=np.int64)
        self.moments = Moments()

    def update(self, x: FloatArray) -> None:
        x = np.asarray(x, dtype=np.float64)
        self.moments.update(x)
        finite = x[np.isfinite(x)]
        where = np.clip(np.searchsorted(self.edges, finite, side="right") - 1, 0, None)
        self.counts += np.bincount(where, minlength=self.counts.size)

    def merge(self, other: Histogram) -> None:
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("histograms over different edges do not merge")
        self.counts += other.counts
        self.moments.merge(other.moments)

    def quantile(self, q: float) -> float | None:
        """The upper edge of the bucket holding quantile ``q`` (an upper bound; the
        largest value for the last bucket); None when empty."""
        total = int(self.counts.sum())
        if total == 0:
            return None
        i = int(np.searchsorted(np.cumsum(self.counts), q * total, side="left"))
        return float(self.edges[i + 1]) if i + 1 < self.edges.size else float(self.moments.max)

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "moments": _moments_dict(self.moments),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        out = cls(np.asarray(data["edges"], dtype=np.float64))
        out.counts = ints(data["counts"])
        out.moments = _moments_from(data["moments"])
        return out
