"""Mergeable window summaries: monitoring in memory that does not grow with traffic.

Each capture segment (or compacted part) is summarised once, in one pass over its Arrow
record batches, per series and time bucket (:mod:`~vigil.monitor.summaries.window`); a
window of any length is the merge of its buckets' summaries, and a large window is judged
from that merge (:mod:`~vigil.monitor.summaries.judge`). The parts: column summaries with
moments, a KLL quantile sketch and exact or sketched category counts
(:mod:`~vigil.monitor.summaries.columns`), and the performance metrics' sufficient
statistics (:mod:`~vigil.monitor.summaries.labels`).
"""

from __future__ import annotations

from vigil.monitor.summaries.build import summarise
from vigil.monitor.summaries.window import (
    Anchors,
    WindowSummary,
    anchors_for,
    dumps,
    loads,
    merge_all,
)

__all__ = ["Anchors", "WindowSummary", "anchors_for", "dumps", "loads", "merge_all", "summarise"]
