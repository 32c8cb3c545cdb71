"""Fairness by group from summaries: per-group counts that merge.

Every fairness metric of :mod:`vigil.stats.fairness` is a function of a few counts per
group (rows, rows predicted positive, and of the labelled rows the true and false
positives and negatives), so a window's fairness is the sum of its parts' counts, exactly.
:class:`GroupSummary` keeps them per sensitive attribute and group; the builder
(:mod:`vigil.monitor.summaries.build`) fills it from the window's rows the way
:func:`~vigil.monitor.group_fairness.measure_fairness` reads them (the same grouping, the
same join of labels and feedback fields), and :meth:`GroupSummary.reports` gives the
reports the raw path gives.

An attribute keeps at most :data:`GROUP_CAP` groups: the first by name. The rows of any
other group are added to the attribute's ``other`` counts, and a report says how many rows
it left out of the comparison. Keeping the first names (not the largest groups) is what
makes merging exact in any order: a group folded into ``other`` in one part is folded in
every merge holding it, since the groups kept before it are in that merge too.

>>> a, b = GroupSummary(), GroupSummary()
>>> a.update_rows("sex", ["f", "m", "f"], [True, False, False])
>>> b.update_rows("sex", ["m"], [True])
>>> b.update_labelled("sex", ["m"], [True], [True])
>>> a.merge(b).counts["sex"]["m"]
GroupCounts(n=2, selected=1, tp=1, fp=0, fn=0, tn=0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vigil.stats.fairness import FairnessReport, GroupCounts, count_groups, fairness_report

__all__ = ["GROUP_CAP", "GroupSummary"]

GROUP_CAP = 256
"""Groups counted apart per attribute (more than any ``max_groups`` of the settings)."""

_FIELDS = ("n", "selected", "tp", "fp", "fn", "tn")


def _counts(values: Sequence[int]) -> GroupCounts:
    return GroupCounts(*(int(v) for v in values))


def _values(c: GroupCounts) -> list[int]:
    return [c.n, c.selected, c.tp, c.fp, c.fn, c.tn]


@dataclass
class GroupSummary:
    """Per sensitive attribute and group, the counts of :class:`GroupCounts`."""

    counts: dict[str, dict[str, GroupCounts]] = field(default_factory=dict)
    other: dict[str, GroupCounts] = field(default_factory=dict)
    """Per attribute, the rows of the groups past :data:`GROUP_CAP`."""
    missing: dict[str, int] = field(default_factory=dict)
    """Per attribute, the predicted rows without a value of it (in no group)."""

    def _add(self, attribute: str, found: dict[str, GroupCounts]) -> None:
        groups = self.counts.setdefault(attribute, {})
        for group, counts in found.items():
            groups[group] = groups.get(group, GroupCounts()) + counts
        if len(groups) > GROUP_CAP:
            past = sorted(groups)[GROUP_CAP:]
            folded = self.other.get(attribute, GroupCounts())
            for group in past:
                folded = folded + groups.pop(group)
            self.other[attribute] = folded

    def _fold(self, attribute: str, found: dict[str, GroupCounts]) -> dict[str, GroupCounts]:
        """Counts of groups this summary folded already go to ``other`` straight away."""
        folded = self.other.get(attribute)
        if folded is None:
            return found
        last = max(self.counts.get(attribute, {}), default=None)
        kept = {g: c for g, c in found.items() if last is None or g <= last}
        for group, counts in found.items():
            if group not in kept:
                folded = folded + counts
        self.other[attribute] = folded
        return kept

    def update_rows(self, attribute: str, groups: Sequence[Any], selected: Sequence[bool]) -> None:
        """Add predicted rows: each row's group (``None``: in no group) and whether it was
        predicted the positive class."""
        absent = sum(g is None for g in groups)
        if absent:
            self.missing[attribute] = self.missing.get(attribute, 0) + absent
        self._add(attribute, self._fold(attribute, count_groups(groups, selected)))

    def update_labelled(
        self,
        attribute: str,
        groups: Sequence[Any],
        chosen: Sequence[bool],
        truth: Sequence[bool],
    ) -> None:
        """Add the confusion counts of labelled rows (already counted by
        :meth:`update_rows`): predicted and true positive or not."""
        judged = count_groups(groups, chosen, truth)
        confusion = {g: GroupCounts(0, 0, c.tp, c.fp, c.fn, c.tn) for g, c in judged.items()}
        self._add(attribute, self._fold(attribute, confusion))

    def merge(self, other: GroupSummary) -> GroupSummary:
        """Add ``other``'s counts into this summary; returns it. The groups ``other``
        folded are past its first :data:`GROUP_CAP` names, so past the merge's too: its
        kept groups are added (folding what falls past the cap), then its ``other``."""
        for attribute, groups in other.counts.items():
            self._add(attribute, self._fold(attribute, groups))
        for attribute, folded in other.other.items():
            self.other[attribute] = self.other.get(attribute, GroupCounts()) + folded
        for attribute, absent in other.missing.items():
            self.missing[attribute] = self.missing.get(attribute, 0) + absent
        return self

    def reports(
        self, attributes: Sequence[str], min_group_size: int, notes: list[str]
    ) -> dict[str, FairnessReport]:
        """The report of each attribute with rows (see
        :func:`~vigil.stats.fairness.fairness_report`), as the raw path measures it."""
        out: dict[str, FairnessReport] = {}
        for attribute in attributes:
            groups = self.counts.get(attribute)
            absent = self.missing.get(attribute, 0)
            if absent:
                notes.append(f"{absent} rows without a {attribute} left out of its groups")
            if not groups:
                continue
            folded = self.other.get(attribute)
            if folded is not None and folded.n:
                notes.append(
                    f"fairness by {attribute}: {folded.n} rows of groups past the first "
                    f"{GROUP_CAP} (by name) counted together and left out of the comparison"
                )
            out[attribute] = fairness_report(dict(groups), min_group_size=min_group_size)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "fields": list(_FIELDS),
            "counts": {
                a: [[g, *_values(c)] for g, c in sorted(groups.items())]
                for a, groups in self.counts.items()
            },
            "other": {a: _values(c) for a, c in self.other.items()},
            "missing": dict(self.missing),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupSummary:
        return cls(
            counts={
                a: {str(row[0]): _counts(row[1:]) for row in rows}
                for a, rows in data["counts"].items()
            },
            other={a: _counts(v) for a, v in data["other"].items()},
            missing={a: int(v) for a, v in data.get("missing", {}).items()},
        )
