"""The order people read drift results in: drifted columns first, biggest shift first.

>>> from vigil.drift import compare
>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> ref = {"a": rng.normal(0, 1, 300), "b": rng.normal(0, 1, 300)}
>>> cur = {"a": rng.normal(0, 1, 300), "b": rng.normal(1, 1, 300)}
>>> [c.column for c in drifted_first(compare(ref, cur).columns)]
['b', 'a']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from vigil.drift import ColumnDrift


def drifted_first(columns: Iterable[ColumnDrift]) -> list[ColumnDrift]:
    """Drifted columns first, then by effect size (largest first), then by name."""

    def key(c: ColumnDrift) -> tuple[bool, float, str]:
        effect = c.effect_size if c.effect_size is not None else float("-inf")
        return (not c.drifted, -effect, c.column)

    return sorted(columns, key=key)


def drifted_by_impact(
    columns: Iterable[ColumnDrift], impact: Mapping[str, float]
) -> list[ColumnDrift]:
    """Drifted columns first, then by ``impact`` (drift weighted by importance, largest
    first), then by effect size and name; :func:`drifted_first` when ``impact`` is empty."""
    if not impact:
        return drifted_first(columns)

    def key(c: ColumnDrift) -> tuple[bool, float, float, str]:
        effect = c.effect_size if c.effect_size is not None else float("-inf")
        return (not c.drifted, -impact.get(c.column, 0.0), -effect, c.column)

    return sorted(columns, key=key)
