"""What makes ``vigil drift --fail-on ...`` fail: the checks a CI pipeline stops on.

* ``drift``: the dataset drifted by the report's verdict rule;
* ``columns``: any compared column drifted;
* ``quality``: a reference column is missing from the current data, or a column's share
  of missing values (``±inf`` for numbers) grew by more than ``max_missing_increase``.

Each failure is one sentence naming what failed, so the pipeline's log says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from vigil.report.run import DriftRun

Check = Literal["drift", "columns", "quality"]
CHECKS: tuple[Check, ...] = ("drift", "columns", "quality")
MAX_MISSING_INCREASE = 0.05


@dataclass(frozen=True)
class GateFailure:
    check: Check
    message: str


def quality_failures(
    run: DriftRun, max_missing_increase: float = MAX_MISSING_INCREASE
) -> list[GateFailure]:
    """Missing columns and columns whose missing share grew beyond the allowance."""
    out = [
        GateFailure("quality", f"column {name!r} is in the reference data but not the current")
        for name in run.only_in_reference
    ]
    for name, ref in run.reference_summary.items():
        cur = run.current_summary.get(name)
        if cur is None:
            continue
        if cur.missing - ref.missing > max_missing_increase:
            out.append(
                GateFailure(
                    "quality",
                    f"column {name!r} is missing in {cur.missing:.1%} of current rows against "
                    f"{ref.missing:.1%} of reference rows (allowed increase "
                    f"{max_missing_increase:.1%})",
                )
            )
    return out


def gate_failures(
    run: DriftRun, checks: Iterable[Check], *, max_missing_increase: float = MAX_MISSING_INCREASE
) -> list[GateFailure]:
    """Every failure of the ``checks`` asked for, in the order of :data:`CHECKS`."""
    asked = set(checks)
    out: list[GateFailure] = []
    if "drift" in asked and run.report.dataset_drifted:
        out.append(GateFailure("drift", run.report.verdict("columns")))
    if "columns" in asked:
        out += [
            GateFailure("columns", f"column {c.column!r} drifted ({c.method})")
            for c in run.report.columns
            if c.drifted
        ]
    if "quality" in asked:
        out += quality_failures(run, max_missing_increase)
    return out
