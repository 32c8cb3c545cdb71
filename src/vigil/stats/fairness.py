"""Group fairness of a binary decision, from per-group confusion counts.

Everything here is computed from :class:`GroupCounts`: how many rows a group has, how many
of them the model *selected* (predicted the positive class), and, on the rows that carry
a label, the four cells of the confusion matrix. Counts add up, so a window's counts are
the sum of its parts' (mergeable), and the values equal Fairlearn's on the same rows
(``MetricFrame`` with ``selection_rate``, ``accuracy_score``, ``true_positive_rate``,
``false_positive_rate``, and ``demographic_parity_difference`` / ``_ratio``,
``equalized_odds_difference`` / ``_ratio`` and ``equal_opportunity_difference`` with
their default ``method="between_groups"`` and ``agg="worst_case"``); the tests check
them against Fairlearn itself.

Per group: ``count`` (rows), ``labelled`` (rows with a label), ``selection_rate``,
``accuracy``, ``tpr`` (true positive rate, recall), ``fpr`` (false positive rate), each
rate with its Wilson score interval.

Between groups, over the groups with at least ``min_group_size`` rows (a smaller group is
reported on its own, flagged ``small``, with its intervals, and left out of the
comparison, because one or two rows would decide it):

* ``demographic_parity_difference``: largest minus smallest selection rate;
* ``demographic_parity_ratio``: smallest over largest selection rate, which is also the
  ``disparate_impact_ratio`` of the four-fifths rule (adverse impact when below 0.8,
  ``four_fifths``: 1 when the rule holds, else 0);
* ``equalized_odds_difference``: the larger of the TPR and FPR differences;
* ``equalized_odds_ratio``: the smaller of the TPR and FPR ratios;
* ``equal_opportunity_difference``: the TPR difference.

A value with nothing to divide (no group large enough, a largest rate of zero, no labels)
is ``None``.

>>> counts = {"a": GroupCounts(n=100, selected=60), "b": GroupCounts(n=100, selected=30)}
>>> report = fairness_report(counts, min_group_size=30)
>>> report.between["demographic_parity_difference"], report.between["disparate_impact_ratio"]
(0.3, 0.5)
>>> report.between["four_fifths"]
0.0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vigil.stats.proportions import rate_ci_wilson
from vigil.stats.sufficient import ProportionStats

__all__ = [
    "FOUR_FIFTHS",
    "FairnessReport",
    "GroupCounts",
    "GroupRates",
    "count_groups",
    "fairness_report",
]

FOUR_FIFTHS = 0.8
"""The four-fifths rule: a group selected at less than 80 % of the most selected group's
rate suffers adverse impact."""


@dataclass(frozen=True)
class GroupCounts:
    """Rows of one group: ``n`` in all, ``selected`` predicted positive; of the labelled
    ones, true/false positives and negatives."""

    n: int = 0
    selected: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: GroupCounts) -> GroupCounts:
        return GroupCounts(
            self.n + other.n,
            self.selected + other.selected,
            self.tp + other.tp,
            self.fp + other.fp,
            self.fn + other.fn,
            self.tn + other.tn,
        )

    @property
    def labelled(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def to_dict(self) -> dict[str, int]:
        return {
            "n": self.n,
            "selected": self.selected,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupCounts:
        return cls(**{k: int(data.get(k, 0)) for k in ("n", "selected", "tp", "fp", "fn", "tn")})


def count_groups(
    groups: Iterable[Any],
    predicted_positive: Iterable[bool],
    label_positive: Iterable[bool | None] | None = None,
) -> dict[str, GroupCounts]:
    """Per-group counts of rows: ``groups`` their group (``None`` rows are skipped),
    ``predicted_positive`` whether the model selected them, ``label_positive`` whether
    their label is the positive class (``None``: no label).

    >>> count_groups(["a", "a", "b"], [True, False, True], [True, None, False])["a"]
    GroupCounts(n=2, selected=1, tp=1, fp=0, fn=0, tn=0)
    """
    g = np.asarray(list(groups), dtype=object)
    pred = np.asarray(list(predicted_positive), dtype=bool)
    if label_positive is None:
        truth = np.full(len(g), None, dtype=object)
    else:
        truth = np.asarray(list(label_positive), dtype=object)
    out: dict[str, GroupCounts] = {}
    keep = np.array([v is not None for v in g], dtype=bool)
    if not keep.any():
        return out
    names = np.array([str(v) for v in g[keep]], dtype=object)
    pred, truth = pred[keep], truth[keep]
    has = np.array([t is not None for t in truth], dtype=bool)
    yes = np.array([bool(t) if t is not None else False for t in truth], dtype=bool)
    for name in sorted(set(names.tolist())):
        m = names == name
        lab = m & has
        out[name] = GroupCounts(
            n=int(m.sum()),
            selected=int(pred[m].sum()),
            tp=int((lab & pred & yes).sum()),
            fp=int((lab & pred & ~yes).sum()),
            fn=int((lab & ~pred & yes).sum()),
            tn=int((lab & ~pred & ~yes).sum()),
        )
    return out


def _rate(k: int, n: int, level: float) -> tuple[float | None, float | None, float | None]:
    if n == 0:
        return None, None, None
    e = rate_ci_wilson(ProportionStats(n, k), level)
    return k / n, e.low, e.high


@dataclass(frozen=True)
class GroupRates:
    """The rates of one group, each with its Wilson interval (``None`` when undefined)."""

    counts: GroupCounts
    small: bool
    values: dict[str, float | None]

    @classmethod
    def of(cls, counts: GroupCounts, *, small: bool, level: float = 0.95) -> GroupRates:
        c = counts
        values: dict[str, float | None] = {
            "count": float(c.n),
            "labelled": float(c.labelled),
            "small": 1.0 if small else 0.0,
        }
        for name, k, n in (
            ("selection_rate", c.selected, c.n),
            ("accuracy", c.tp + c.tn, c.labelled),
            ("tpr", c.tp, c.tp + c.fn),
            ("fpr", c.fp, c.fp + c.tn),
        ):
            value, low, high = _rate(k, n, level)
            values[name], values[f"{name}_low"], values[f"{name}_high"] = value, low, high
        return cls(counts, small, values)


def _spread(values: list[float | None]) -> tuple[float | None, float | None]:
    """Largest minus smallest, and smallest over largest, of the defined values."""
    got = [v for v in values if v is not None]
    if len(got) < 2:
        return None, None
    lo, hi = min(got), max(got)
    return hi - lo, (lo / hi if hi > 0 else None)


@dataclass(frozen=True)
class FairnessReport:
    """Per-group rates and the differences and ratios between the large enough groups."""

    groups: dict[str, GroupRates]
    between: dict[str, float | None]
    min_group_size: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_group_size": self.min_group_size,
            "groups": {
                g: {"counts": r.counts.to_dict(), **r.values} for g, r in self.groups.items()
            },
            "between": dict(self.between),
            "notes": list(self.notes),
        }


def fairness_report(
    counts: Mapping[str, GroupCounts], *, min_group_size: int = 30, level: float = 0.95
) -> FairnessReport:
    """Rates per group and the comparison between the groups of at least
    ``min_group_size`` rows (see the module's definitions)."""
    notes: list[str] = []
    groups = {
        g: GroupRates.of(c, small=c.n < min_group_size, level=level)
        for g, c in sorted(counts.items())
    }
    compared = [r for r in groups.values() if not r.small]
    small = sorted(g for g, r in groups.items() if r.small)
    if small:
        notes.append(f"groups below {min_group_size} rows left out of the comparison: {small[:10]}")
    dpd, dpr = _spread([r.values["selection_rate"] for r in compared])
    tpr_d, tpr_r = _spread([r.values["tpr"] for r in compared])
    fpr_d, fpr_r = _spread([r.values["fpr"] for r in compared])
    eod = None if tpr_d is None or fpr_d is None else max(tpr_d, fpr_d)
    eor = None if tpr_r is None or fpr_r is None else min(tpr_r, fpr_r)
    between: dict[str, float | None] = {
        "groups": float(len(compared)),
        "small_groups": float(len(small)),
        "demographic_parity_difference": dpd,
        "demographic_parity_ratio": dpr,
        "disparate_impact_ratio": dpr,
        "four_fifths": None if dpr is None else float(dpr >= FOUR_FIFTHS),
        "equalized_odds_difference": eod,
        "equalized_odds_ratio": eor,
        "equal_opportunity_difference": tpr_d,
    }
    return FairnessReport(groups, between, min_group_size, notes)
