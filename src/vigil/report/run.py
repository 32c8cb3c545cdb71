"""One drift run over two files: read them, compare every column, summarise the distributions for charts.

This is what ``vigil drift`` does below its arguments and output: the columns compared
are those named, or else every column the two files share (minus the target); their
kinds come from the reference file's types unless ``categorical`` names them; the
``target`` (label) column is compared on its own and reported beside the dataset verdict,
not counted in it, since a moved label is a different alarm from moved inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.drift import ColumnDrift, DriftReport, compare
from vigil.errors import ValidationError
from vigil.report.distributions import Distribution, chart_distributions
from vigil.report.tables import (
    Progress,
    check_columns,
    is_categorical_type,
    open_table,
    read_columns,
)

ProgressFactory = Callable[[str, int | None], Progress]
"""Given a label and the rows expected (None when unknown), a per-chunk callback."""


@dataclass(frozen=True)
class DriftRun:
    """Everything a drift report shows."""

    report: DriftReport
    reference_summary: dict[str, Distribution]
    current_summary: dict[str, Distribution]
    reference_rows: int
    current_rows: int
    target: ColumnDrift | None = None
    only_in_reference: list[str] = field(default_factory=list)
    only_in_current: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report's numbers (``DriftReport.to_dict``) plus rows, target and charts."""
        return {
            **self.report.to_dict(),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "target": self.target.to_dict() if self.target is not None else None,
            "only_in_reference": self.only_in_reference,
            "only_in_current": self.only_in_current,
            "charts": {
                name: {
                    "reference": ref.to_dict(),
                    "current": self.current_summary[name].to_dict(),
                }
                for name, ref in self.reference_summary.items()
            },
        }


def run_drift(
    reference: str | Path,
    current: str | Path,
    *,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    target: str | None = None,
    progress: ProgressFactory | None = None,
) -> DriftRun:
    """Compare two CSV / Parquet files column by column, reading every row of both."""
    ref_table = open_table(reference, "reference")
    cur_table = open_table(current, "current")
    named = [*(columns or []), *(categorical or []), *([target] if target else [])]
    for table, side in ((ref_table, "reference"), (cur_table, "current")):
        check_columns(table, named, side)
    shared = [c for c in ref_table.columns if c in set(cur_table.columns)]
    features = list(columns) if columns else [c for c in shared if c != target]
    if target is not None and target in features:
        raise ValidationError(
            f"column {target!r} is both the target and a compared column; drop it from --columns"
        )
    if not features:
        raise ValidationError(
            f"the reference ({ref_table.columns}) and current ({cur_table.columns}) data have "
            "no columns in common to compare; check that they hold the same features"
        )
    wanted = [*features, *([target] if target else [])]
    types = {f.name: f.type for f in ref_table.schema}
    cats = set(categorical or []) | {c for c in wanted if is_categorical_type(types[c])}
    sides = []
    for table, side in ((ref_table, "reference"), (cur_table, "current")):
        callback = progress(f"reading {side} {table.name}", table.n_rows) if progress else None
        sides.append(read_columns(table, wanted, cats, side=side, progress=callback))
    ref_data, cur_data = sides
    target_drift = None
    if target is not None:
        target_drift = compare(
            {target: ref_data.columns.pop(target)},
            {target: cur_data.columns.pop(target)},
            categorical=[target] if target in cats else [],
        ).columns[0]
    report = compare(ref_data.columns, cur_data.columns, columns=features, categorical=cats)
    ref_summary, cur_summary = chart_distributions(ref_data.columns, cur_data.columns, cats)
    return DriftRun(
        report=report,
        reference_summary=ref_summary,
        current_summary=cur_summary,
        reference_rows=ref_data.n_rows,
        current_rows=cur_data.n_rows,
        target=target_drift,
        only_in_reference=[c for c in ref_table.columns if c not in set(cur_table.columns)],
        only_in_current=[c for c in cur_table.columns if c not in set(ref_table.columns)],
    )
