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
from typing import TYPE_CHECKING, cast

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

MARKS_KEY = "label_marks"
"""Where a stored window keeps the mark it was computed with (its summary)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _seconds(values: pd.Series) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
    import pandas as pd  # pandas: the labels are a frame

    since_epoch = pd.to_datetime(values, utc=True) - pd.Timestamp(0, tz="UTC")
    return np.asarray(since_epoch // pd.Timedelta(seconds=1), dtype=np.int64)


class LabelMarks:
    """The marks of every window of ``window_s`` seconds (aligned on the epoch), and the
    labels that may join one of them. ``labels`` is the feedback frame the monitor reads
    (``request_id, row, label, caller, time`` and, when stored, ``prediction_time`` and
    ``prediction_model``); feedback without a label (rewards only) marks nothing."""

    def __init__(self, labels: pd.DataFrame, window_s: int) -> None:
        self.window_s = window_s
        given = labels[labels["label"].notna()] if "label" in labels else labels.iloc[0:0]
        if "prediction_time" in given:
            placed = given["prediction_time"].notna().to_numpy()
        else:
            placed = np.zeros(len(given), dtype=bool)
        self._labels = given
        self._placed = placed
        at = _seconds(given["prediction_time"][placed]) if placed.any() else np.zeros(0, np.int64)
        models = (
            given["prediction_model"][placed].astype(str).to_numpy(object)
            if placed.any()
            else np.zeros(0, dtype=object)
        )
        self._at = at
        self._models = models
        import pandas as pd  # pandas: counting labels per model and window

        counts = pd.DataFrame({"m": models, "i": at // window_s}).value_counts()
        self._per_window: dict[tuple[str, int], int] = {}
        for where, n in counts.items():
            m, i = cast("tuple[object, int]", where)
            self._per_window[(str(m), int(i))] = int(n)
        loose = given["time"][~placed] if len(given) else given["time"]
        self._loose = np.sort(_seconds(loose)) if len(loose) else np.zeros(0, np.int64)

    def _index(self, start: datetime) -> int:
        return int((start - _EPOCH).total_seconds()) // self.window_s

    def _loose_since(self, start: datetime) -> int:
        s = int((start - _EPOCH).total_seconds())
        return int(self._loose.size - np.searchsorted(self._loose, s, side="left"))

    def of(self, model: str, start: datetime) -> int:
        """The mark of ``model``'s window starting at ``start``."""
        return self._per_window.get((model, self._index(start)), 0) + self._loose_since(start)

    def labels_for(self, model: str, start: datetime, end: datetime) -> pd.DataFrame:
        """The labels that may join predictions of ``model`` in ``[start, end)``: those
        placed there, and those not placed that arrived since ``start``."""
        lo = int((start - _EPOCH).total_seconds())
        hi = int((end - _EPOCH).total_seconds())
        here = np.zeros(len(self._labels), dtype=bool)
        where = np.flatnonzero(self._placed)
        inside = (self._at >= lo) & (self._at < hi) & (self._models == model)
        here[where[inside]] = True
        if self._loose.size:
            loose = ~self._placed
            arrived = _seconds(self._labels["time"]) >= lo
            here |= loose & arrived
        return self._labels[here]
