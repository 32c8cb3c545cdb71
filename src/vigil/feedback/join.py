"""Predictions joined with their feedback, windowed by the time of the *prediction*.

A label that arrives a week later still counts in the window of the prediction it judges:
the window filters capture rows first, then feedback is joined on ``(request_id, row)``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from vigil.capture.reader import read_capture

if TYPE_CHECKING:
    import pandas as pd

    from vigil.feedback.store import FeedbackStore
    from vigil.storage.artifacts import ArtifactStore


def labelled_predictions(
    model: str,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    feedback: FeedbackStore,
    store: ArtifactStore | None = None,
    capture_dir: str | Path | None = None,
    version: int | None = None,
) -> pd.DataFrame:
    """Captured rows of ``model`` predicted in ``[since, until)`` that have feedback.

    Columns: every capture column (see :func:`~vigil.capture.reader.read_capture`) plus
    ``label``, ``reward`` and ``feedback_time``; one row per labelled predicted row.
    """
    captured = read_capture(model, since, until, version, store=store, log_dir=capture_dir)
    given = feedback.read()[["request_id", "row", "label", "reward", "time"]]
    given = given.rename(columns={"time": "feedback_time"})
    if captured.empty or given.empty:
        return captured.iloc[0:0].assign(label=None, reward=None, feedback_time=None)
    # Only successful predictions can be judged; rejected requests carry no prediction.
    captured = captured[captured["status"] < 400]
    joined: pd.DataFrame = captured.merge(
        given.astype({"row": captured["row"].dtype}), on=["request_id", "row"], how="inner"
    )
    return joined.reset_index(drop=True)
