"""Drift weighted by importance: which moved features matter to the model's output.

A feature that drifted a lot but that the model hardly uses moves its predictions less
than one that drifted a little but carries the model. A column's **impact** is its drift
effect size (the one each column reports beside its verdict: normalised Wasserstein, PSI or
Jensen–Shannon, see :mod:`vigil.drift.select`) times its **share of the global importance**
(its mean absolute attribution over the sum of those of the compared columns, see
:mod:`vigil.explain.importance`). Shares sum to 1, so impacts are on the effect sizes'
scale and comparable between windows. A column without a known importance gets share 0.

>>> from vigil.drift import compare
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = {"a": rng.normal(0, 1, 500), "b": rng.normal(0, 1, 500)}
>>> cur = {"a": rng.normal(1, 1, 500), "b": rng.normal(0.5, 1, 500)}
>>> ranked = rank_by_impact(compare(ref, cur).columns, {"a": 0.1, "b": 0.9})
>>> [(r.column, r.drifted, round(r.importance_share, 2)) for r in ranked]
[('b', True, 0.9), ('a', True, 0.1)]
>>> ranked[0].impact == ranked[0].effect_size * 0.9
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vigil.drift.column_drift import ColumnDrift


@dataclass(frozen=True)
class FeatureImpact:
    """One column's drift effect size, its importance share and their product."""

    column: str
    drifted: bool
    effect_size: float
    importance_share: float
    impact: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.column,
            "drifted": self.drifted,
            "effect_size": self.effect_size,
            "importance_share": self.importance_share,
            "impact": self.impact,
        }


def _finite(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(value) else 0.0


def rank_by_impact(
    columns: Iterable[ColumnDrift], importance: Mapping[str, float]
) -> list[FeatureImpact]:
    """Every compared column with its impact, largest first (ties: drifted first, then by
    name); empty when ``importance`` knows none of the columns."""
    compared = [c for c in columns if c.method != "none"]
    weights = {c.column: max(_finite(importance.get(c.column)), 0.0) for c in compared}
    total = sum(weights.values())
    if total <= 0:
        return []
    ranked = [
        FeatureImpact(
            column=c.column,
            drifted=c.drifted,
            effect_size=_finite(c.effect_size),
            importance_share=weights[c.column] / total,
            impact=_finite(c.effect_size) * weights[c.column] / total,
        )
        for c in compared
    ]
    return sorted(ranked, key=lambda r: (-r.impact, not r.drifted, r.column))
