"""The windows one monitoring run computed, held in bounded memory.

A run over a long span computes many windows (one a thousand rows: ten thousand in ten
million rows). Each is stored as soon as it is measured, so what the run keeps for its
caller is bounded: the last :data:`KEPT` results computed, the newest result of each
series, and counts of all of them. Every window computed, old ones too, is in the store
(:func:`~vigil.monitor.series.stored_windows`, ``vigil monitor show``).

>>> from datetime import datetime, UTC
>>> from vigil.monitor.windows import SeriesKey
>>> computed = Computed(keep=2)
>>> for hour in range(5):
...     at = datetime(2026, 1, 5, hour, tzinfo=UTC)
...     computed.add(WindowResult(SeriesKey("churn", 1, ""), "1h", at, at, False, 10, 10, 0, 0))
>>> computed.count, [r.start.hour for r in computed.recent()]
(5, [3, 4])
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from vigil.monitor.measure import WindowResult
from vigil.monitor.windows import SeriesKey

KEPT = 200
"""Results of the last windows computed that a run keeps for its caller (the others are
in the store)."""


@dataclass
class Computed:
    """Windows computed by one run: the last ``keep`` results, the newest per series, and
    counts of all (memory does not grow with the number of windows)."""

    keep: int = field(default_factory=lambda: KEPT)
    count: int = 0
    """Windows computed and stored."""
    drifted: int = 0
    """Of them, windows whose dataset drifted."""
    labelled: int = 0
    """Rows of them joined to a label."""
    latest: dict[SeriesKey, WindowResult] = field(default_factory=dict)
    """The newest window computed of each series."""
    _recent: deque[WindowResult] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.keep)

    def add(self, result: WindowResult) -> None:
        """Count a stored window; keep it while it is among the last ``keep``."""
        self.count += 1
        self.drifted += bool(result.dataset_drifted)
        self.labelled += result.n_labelled
        self._recent.append(result)
        latest = self.latest.get(result.key)
        if latest is None or result.start >= latest.start:
            self.latest[result.key] = result

    def recent(self) -> list[WindowResult]:
        """The last ``keep`` windows computed, in the order they were computed."""
        return list(self._recent)
