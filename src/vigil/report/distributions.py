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


def label_counts(values: Any) -> tuple[pd.Series, int]:
    """Rows per label (``str`` of the value, the baseline profile's key) and the row count.

    Missing values are left out of the counts but not of the row count. A pandas
    ``Categorical`` (or categorical Series) is counted from its codes without building a
    Python object per row.

    >>> counts, n = label_counts(pd.Categorical(["b", "a", "b", None]))
    >>> counts.to_dict(), n
    ({'b': 2, 'a': 1}, 4)
    """
    if isinstance(values, pd.Categorical) or (
        isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype)
    ):
        series = pd.Series(values)
        counts = series.value_counts(sort=False)
        counts = counts[counts > 0]
        counts.index = pd.Index([str(v) for v in counts.index])
        # Two categories may print alike (1 and "1"): one label, as the profile keys them.
        counts = counts.groupby(level=0, sort=False).sum().sort_values(ascending=False)
        return counts, len(series)
    series = pd.Series(np.asarray(values, dtype=object))
    return series.dropna().map(str).value_counts(), len(series)


def categorical_from_counts(
    reference: Mapping[str, int],
    reference_rows: int,
    current: Mapping[str, int],
    current_rows: int,
    *,
    reference_other: int = 0,
    current_other: int = 0,
    top_k: int = TOP_K,
) -> tuple[Distribution, Distribution]:
    """Proportions of the ``top_k`` labels by combined share, then ``(other)``, from counts.

    ``reference_other``/``current_other`` count values outside the labels given (a
    baseline profile's capped categories); they join ``(other)``. Ties in combined share are broken
    by label, so the order is deterministic.

    >>> ref, cur = categorical_from_counts({"a": 6, "b": 2}, 10, {"b": 3, "c": 1}, 4,
    ...                                    reference_other=1, top_k=2)
    >>> ref.labels, ref.proportions, ref.missing, cur.proportions
    (('b', 'a', '(other)'), (0.2, 0.6, 0.1), 0.1, (0.75, 0.0, 0.25))
    """
    share: dict[str, float] = {}
    for counts, rows in ((reference, reference_rows), (current, current_rows)):
        for label, count in counts.items():
            share[label] = share.get(label, 0.0) + (count / rows if rows else 0.0)
    ranked = sorted(share.items(), key=lambda kv: (-kv[1], kv[0]))
    top = [label for label, _ in ranked[:top_k]]
    has_other = len(ranked) > top_k or reference_other > 0 or current_other > 0
    labels = (*top, OTHER) if has_other else tuple(top)
    out = []
    for counts, rows, other in (
        (reference, reference_rows, reference_other),
        (current, current_rows, current_other),
    ):
        counted = sum(counts.values()) + other
        props = [_share(counts.get(label, 0), rows) for label in top]
        if has_other:
            props.append(_share(counted - sum(counts.get(label, 0) for label in top), rows))
        out.append(
            Distribution(
                kind="categorical",
                proportions=tuple(props),
                n=rows,
                missing=_share(rows - counted, rows),
                labels=labels,
            )
        )
    return out[0], out[1]


def summarise_categorical(
    reference: Any, current: Any, *, top_k: int = TOP_K
) -> tuple[Distribution, Distribution]:
    """Proportions of the ``top_k`` categories by combined share, then ``(other)``.

    Ties in combined share are broken by label, so the order is deterministic.
    """
    ref_counts, ref_rows = label_counts(reference)
    cur_counts, cur_rows = label_counts(current)
    return categorical_from_counts(
        {str(k): int(v) for k, v in ref_counts.items()},
        ref_rows,
        {str(k): int(v) for k, v in cur_counts.items()},
        cur_rows,
        top_k=top_k,
    )


def chart_distributions(
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
