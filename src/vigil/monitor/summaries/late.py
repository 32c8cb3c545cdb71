"""Which windows late labels touch, read from the feedback alone.

Feedback submitted for a captured prediction carries that prediction's time and model
(``prediction_time``, ``prediction_model``: :class:`~vigil.feedback.record.FeedbackRecord`),
so the window a label joins is known without reading the inference log. Each window gets
a *mark*: the labels placed in it, plus the labels that could not be placed (no prediction
was found when they arrived: another replica's prediction not compacted yet, an unknown
request id, or feedback stored before vigil kept the prediction's time) that arrived after
the window started, since those may join any earlier prediction. Feedback is append-only,
so a window's mark only grows as labels arrive: a stored window whose mark is the one it
was computed with has nothing new to join, and a window whose mark moved is joined again
from its own span of the log, with only the labels that may join it.

>>> import pandas as pd
>>> from datetime import UTC, datetime
>>> t = pd.Timestamp("2026-01-05 10:30", tz="UTC")
>>> labels = pd.DataFrame({"request_id": ["a", "b"], "row": [0, 0], "label": [1, 0],
...     "time": [t + pd.Timedelta(days=2), t + pd.Timedelta(days=3)],
...     "prediction_time": [t, pd.NaT], "prediction_model": ["churn", None]})
>>> marks = LabelMarks(labels, window_s=3600)
>>> marks.of("churn", datetime(2026, 1, 5, 10, tzinfo=UTC))  # one placed, one not placed
2
>>> marks.of("churn", datetime(2026, 1, 5, 11, tzinfo=UTC))  # only the one not placed
1
>>> len(marks.labels_for("churn", datetime(2026, 1, 5, 11, tzinfo=UTC), datetime(2026, 1, 5, 12, tzinfo=UTC)))
1
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from vigil.feedback.frame_spans import Spans, spans_of

if TYPE_CHECKING:
    import pandas as pd

MARKS_KEY = "label_marks"
"""Where a stored window keeps the mark it was computed with (its summary)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_S = 1_000_000


class LabelMarks:
    """The marks of every window of ``window_s`` seconds (aligned on the epoch), and the
    labels that may join one of them. ``labels`` is the feedback the monitor reads: a
    :class:`~vigil.feedback.spans.FeedbackSpans` (marks from its placements, 8 bytes a
    label; a window's labels read when asked, from its span) or a frame held whole
    (``request_id, row, label, caller, time`` and, when stored, ``prediction_time`` and
    ``prediction_model``); feedback without a label (rewards only) marks nothing."""

    def __init__(self, labels: pd.DataFrame | Spans, window_s: int) -> None:
        self.window_s = window_s
        self.source = spans_of(labels)
        found = self.source.placements
        # A label with a prediction time but no model is placed under the model "None",
        # as the frame's ``astype(str)`` placed it.
        self._placed = dict(found.placed)
        if found.timed.size:
            both = np.concatenate([self._placed.get("None", found.timed[:0]), found.timed])
            self._placed["None"] = np.sort(both)
        self._loose = found.loose
        self._last: tuple[tuple[str, datetime, datetime], pd.DataFrame] | None = None

    def _index(self, start: datetime) -> int:
        return int((start - _EPOCH).total_seconds()) // self.window_s

    def _loose_since(self, start: datetime) -> int:
        s = int((start - _EPOCH).total_seconds())
        return int(self._loose.size - np.searchsorted(self._loose, s * _S, side="left"))

    def of(self, model: str, start: datetime) -> int:
        """The mark of ``model``'s window starting at ``start``."""
        # Whole seconds of prediction time, per window: [i * w, (i + 1) * w) seconds.
        i = self._index(start)
        at = self._placed.get(model, self._loose[:0])
        lo, hi = i * self.window_s * _S, (i + 1) * self.window_s * _S
        placed = int(np.searchsorted(at, hi, side="left") - np.searchsorted(at, lo, side="left"))
        return placed + self._loose_since(start)

    def labels_for(self, model: str, start: datetime, end: datetime) -> pd.DataFrame:
        """The labels that may join predictions of ``model`` in ``[start, end)``: those
        placed there, and those not placed that arrived since ``start`` (the last answer
        is kept: a window asks for its labels up to three times in a row)."""
        where = (model, start, end)
        if self._last is not None and self._last[0] == where:
            return self._last[1]
        # Whole seconds, as the marks count them.
        lo = _EPOCH.fromtimestamp(int((start - _EPOCH).total_seconds()), UTC)
        hi = _EPOCH.fromtimestamp(int((end - _EPOCH).total_seconds()), UTC)
        found = self.source.read(model, lo, hi, arrived_since=lo, untimed_only=True)
        given = found[found["label"].notna()] if "label" in found else found.iloc[0:0]
        self._last = (where, given)
        return given
