"""What the report's charts draw: each feature's distribution on both sides, as proportions.

A numeric feature becomes a histogram over bin edges *shared* by both sides (equal-width
bins spanning the finite values of both), so the two sets of bars line up; a categorical
feature becomes the proportions of its ``top_k`` most frequent categories (by their
combined share) plus one ``(other)`` bucket. Proportions are over every row of a side,
so missing values show as their own ``missing`` share and a chart's bars plus that share
add up to one.

>>> import numpy as np
>>> ref, cur = summarise_numeric(np.array([0.0, 1.0, 2.0, 3.0]), np.array([2.0, 3.0, np.nan]), bins=2)
>>> ref.edges, ref.proportions, cur.proportions, cur.missing
((0.0, 1.5, 3.0), (0.5, 0.5), (0.0, 0.6667), 0.3333)
>>> ref, cur = summarise_categorical(np.array(["a", "a", "b"], dtype=object),
...                                  np.array(["b", "c", None], dtype=object), top_k=2)
>>> ref.labels, ref.proportions, cur.proportions
(('a', 'b', '(other)'), (0.6667, 0.3333, 0.0), (0.0, 0.3333, 0.3333))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

NUMERIC_BINS = 30
TOP_K = 12
OTHER = "(other)"
DIGITS = 4
"""Proportions are rounded for a readable embedded JSON; charts cannot show more."""


@dataclass(frozen=True)
class Distribution:
    """One side of one feature's chart.

    Numeric: ``edges`` has one more entry than ``proportions`` and ``labels`` is empty.
    Categorical: ``labels`` names each proportion and ``edges`` is empty.
    """

    kind: Literal["numeric", "categorical"]
    proportions: tuple[float, ...]
    n: int
    missing: float
    """Share of rows that were missing (or ``±inf`` for numeric features)."""
    edges: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _share(count: float, total: int) -> float:
    return round(float(count) / total, DIGITS) if total else 0.0


def summarise_numeric(
    reference: npt.ArrayLike, current: npt.ArrayLike, *, bins: int = NUMERIC_BINS
) -> tuple[Distribution, Distribution]:
    """Histograms of both sides over shared equal-width edges (``numpy.histogram``)."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref_finite, cur_finite = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    pooled = np.concatenate([ref_finite, cur_finite])
    if pooled.size == 0:
        edges = np.array([0.0, 1.0])
    else:
        lo, hi = float(pooled.min()), float(pooled.max())
        # One value everywhere: a unit-wide bin around it rather than a zero-width one.
        edges = np.histogram_bin_edges(
            pooled, bins=bins if hi > lo else 1, range=(lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
        )
    out = []
    for values, finite in ((ref, ref_finite), (cur, cur_finite)):
        counts, _ = np.histogram(finite, bins=edges)
        out.append(
            Distribution(
                kind="numeric",
                proportions=tuple(_share(c, values.size) for c in counts),
                n=int(values.size),
                missing=_share(values.size - finite.size, values.size),
                edges=tuple(float(e) for e in edges),
            )
        )
    return out[0], out[1]


def summarise_categorical(
    reference: npt.ArrayLike, current: npt.ArrayLike, *, top_k: int = TOP_K
) -> tuple[Distribution, Distribution]:
    """Proportions of the ``top_k`` categories by combined share, then ``(other)``.

    Ties in combined share are broken by label, so the order is deterministic.
    """
    ref = pd.Series(np.asarray(reference, dtype=object))
    cur = pd.Series(np.asarray(current, dtype=object))
    ref_counts = ref.dropna().map(str).value_counts()
    cur_counts = cur.dropna().map(str).value_counts()
    share = ref_counts.div(max(len(ref), 1)).add(cur_counts.div(max(len(cur), 1)), fill_value=0)
    ranked = sorted(share.items(), key=lambda kv: (-kv[1], str(kv[0])))
    top = [str(label) for label, _ in ranked[:top_k]]
    has_other = len(ranked) > top_k
    labels = (*top, OTHER) if has_other else tuple(top)
    out = []
    for values, counts in ((ref, ref_counts), (cur, cur_counts)):
        n = len(values)
        props = [_share(counts.get(label, 0), n) for label in top]
        if has_other:
            props.append(_share(counts.sum() - sum(counts.get(label, 0) for label in top), n))
        out.append(
            Distribution(
                kind="categorical",
                proportions=tuple(props),
                n=n,
                missing=_share(n - int(counts.sum()), n),
                labels=labels,
            )
        )
    return out[0], out[1]


def summarise(
    reference: Mapping[str, npt.ArrayLike],
    current: Mapping[str, npt.ArrayLike],
    categorical: set[str],
) -> tuple[dict[str, Distribution], dict[str, Distribution]]:
    """Chart summaries of every column of ``reference`` (also present in ``current``)."""
    ref_out: dict[str, Distribution] = {}
    cur_out: dict[str, Distribution] = {}
    for name in reference:
        pair = (
            summarise_categorical(reference[name], current[name])
            if name in categorical
            else summarise_numeric(reference[name], current[name])
        )
        ref_out[name], cur_out[name] = pair
    return ref_out, cur_out
