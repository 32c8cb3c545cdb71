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

from collections.abc import Iterable

from vigil.drift import ColumnDrift


def drifted_first(columns: Iterable[ColumnDrift]) -> list[ColumnDrift]:
    """Drifted columns first, then by effect size (largest first), then by name."""

    def key(c: ColumnDrift) -> tuple[bool, float, str]:
        effect = c.effect_size if c.effect_size is not None else float("-inf")
        return (not c.drifted, -effect, c.column)

    return sorted(columns, key=key)
