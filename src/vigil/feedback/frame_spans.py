"""The monitor's feedback from a frame held whole: :class:`FrameSpans` answers as
:class:`~vigil.feedback.spans.FeedbackSpans` does, for callers (tests, doctests, the Python
API) that pass the frame :meth:`FeedbackStore.read <vigil.feedback.store.FeedbackStore.read>`
returns instead of the store; :data:`Spans` is either."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from vigil.feedback.spans import FeedbackSpans, LabelStats, Micros, Placements, micro

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FrameSpans", "Spans", "spans_of"]

_EMPTY = np.zeros(0, np.int64)


def _frame_micros(values: pd.Series) -> Micros:
    import pandas as pd  # pandas: the frame's times

    since = pd.to_datetime(values, utc=True) - pd.Timestamp(0, tz="UTC")
    return np.asarray(since // pd.Timedelta(microseconds=1), dtype=np.int64)


class FrameSpans:
    """:class:`FeedbackSpans`' answers from a feedback frame held whole
    (:meth:`FeedbackStore.read <vigil.feedback.store.FeedbackStore.read>`'s, first arrivals
    already chosen): what the monitor did before it read feedback span by span.

    >>> import pandas as pd
    >>> t = pd.Timestamp("2026-01-05 10:30", tz="UTC")
    >>> labels = pd.DataFrame({"request_id": ["a", "b"], "row": [0, 0], "label": [1, 0],
    ...     "time": [t + pd.Timedelta(days=2), t + pd.Timedelta(days=3)],
    ...     "prediction_time": [t, pd.NaT], "prediction_model": ["churn", None]})
    >>> spans = FrameSpans(labels)
    >>> spans.placements.placed["churn"].tolist(), spans.placements.loose.size
    ([1767609000000000], 1)
    >>> spans.read("churn", t, t + pd.Timedelta(hours=1), ids=["b"])["request_id"].tolist()
    ['a', 'b']
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.stats = LabelStats()
        given = frame[frame["label"].notna()] if "label" in frame else frame.iloc[0:0]
        if "prediction_time" in given:
            timed = given["prediction_time"].notna().to_numpy()
        else:
            timed = np.zeros(len(given), dtype=bool)
        if "prediction_model" in given:
            named = given["prediction_model"].notna().to_numpy()
        else:
            named = np.zeros(len(given), dtype=bool)
        placed: dict[str, Micros] = {}
        both = timed & named
        if both.any():
            at = _frame_micros(given["prediction_time"][both])
            models = given["prediction_model"][both].astype(str).to_numpy(object)
            for name in np.unique(models):
                placed[str(name)] = np.sort(at[models == name])
        only_time = timed & ~named
        self.placements = Placements(
            placed=placed,
            timed=np.sort(_frame_micros(given["prediction_time"][only_time]))
            if only_time.any()
            else _EMPTY,
            timed_arrived=np.sort(_frame_micros(given["time"][only_time]))
            if only_time.any()
            else _EMPTY,
            loose=np.sort(_frame_micros(given["time"][~timed])) if (~timed).any() else _EMPTY,
        )

    def read(
        self,
        model: str,
        since: datetime,
        until: datetime,
        *,
        ids: Iterable[str] | None = None,
        arrived_since: datetime | None = None,
        untimed_only: bool = False,
    ) -> pd.DataFrame:
        """As :meth:`FeedbackSpans.read`, from the frame."""
        frame = self.frame
        if frame.empty or "time" not in frame:
            return frame
        n = len(frame)
        if "prediction_time" in frame:
            timed = frame["prediction_time"].notna().to_numpy()
            at = np.where(timed, 0, 0)
            if timed.any():
                at[timed] = _frame_micros(frame["prediction_time"][timed])
        else:
            timed, at = np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64)
        models = frame.get("prediction_model")
        named = models.notna().to_numpy() if models is not None else np.zeros(n, dtype=bool)
        same = (models == model).to_numpy() if models is not None else np.zeros(n, dtype=bool)
        lo, hi = micro(since), micro(until)
        placed = timed & same & (at >= lo) & (at < hi)
        loose = ~timed if untimed_only else ~(timed & named)
        if arrived_since is not None:
            loose &= _frame_micros(frame["time"]) >= micro(arrived_since)
        if ids is not None:
            loose &= frame["request_id"].astype(str).isin(set(ids)).to_numpy()
        out = frame[placed | loose]
        self.stats.reads += 1
        self.stats.labels_read += len(out)
        self.stats.peak_labels = max(self.stats.peak_labels, len(out))
        return out


Spans = FeedbackSpans | FrameSpans
"""Feedback the monitor reads span by span: from the store, or from a frame held whole."""


def spans_of(labels: pd.DataFrame | Spans) -> Spans:
    """``labels`` as :data:`Spans` (a frame is held whole: :class:`FrameSpans`)."""
    if isinstance(labels, FeedbackSpans | FrameSpans):
        return labels
    return FrameSpans(labels)
