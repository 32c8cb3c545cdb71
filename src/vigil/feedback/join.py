"""Predictions joined with their feedback, windowed by the time of the *prediction*.

A label that arrives a week later still counts in the window of the prediction it judges:
the window filters capture rows first, then feedback is joined on ``(request_id, row)`` by
:func:`join_feedback`, the one join every reader uses (monitoring, experiment status,
:func:`labelled_predictions`): feedback judges a captured row when it is bound to that
row's caller or to no caller (see :mod:`vigil.feedback.owner`); of several, the first to
arrive wins.
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
    if captured.empty:
        return captured.iloc[0:0].assign(label=None, reward=None, feedback_time=None)
    # Only successful predictions can be judged; rejected requests carry no prediction.
    return join_feedback(captured[captured["status"] < 400], feedback.read())


def join_feedback(rows: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Captured ``rows`` that have feedback, with its ``label``, ``reward`` and
    ``feedback_time``, in their order.

    ``rows`` need ``request_id`` and ``row`` (and ``caller`` when authentication was on);
    ``feedback`` is :meth:`FeedbackStore.read`'s frame. A captured row takes the first
    feedback with its ``(request_id, row)`` whose caller is the row's or none.

    >>> import pandas as pd
    >>> rows = pd.DataFrame({"request_id": ["a", "a"], "row": [0, 0], "caller": ["k1", "k2"]})
    >>> given = pd.DataFrame({"request_id": ["a", "a"], "row": [0, 0], "caller": ["k2", None],
    ...     "label": [1, 0], "reward": [None, None],
    ...     "time": pd.to_datetime(["2025-01-01", "2025-01-02"], utc=True)})
    >>> join_feedback(rows, given)[["caller", "label"]].to_dict("records")
    [{'caller': 'k1', 'label': 0}, {'caller': 'k2', 'label': 1}]
    """
    # pandas: only when a frame is built
    import pandas as pd

    empty = {"label": pd.Series(dtype=object), "reward": pd.Series(dtype="float64")}
    if rows.empty or feedback.empty:
        return rows.iloc[0:0].assign(**empty, feedback_time=pd.Series(dtype=object))
    left = rows.astype({"request_id": str, "row": "int64"}).reset_index(drop=True)
    ours = pd.DataFrame(
        {
            "request_id": left["request_id"],
            "row": left["row"],
            "owner": left.get("caller"),
            "at": range(len(left)),
        }
    )
    given = pd.DataFrame(
        {
            "request_id": feedback["request_id"].astype(str),
            "row": feedback["row"].astype("int64"),
            "judged": feedback.get("caller"),
            "label": feedback.get("label"),
            "reward": feedback.get("reward"),
            "feedback_time": feedback.get("time"),
        }
    )
    pairs = ours.merge(given, on=["request_id", "row"], how="inner")
    fits = pairs["judged"].isna() | (pairs["judged"] == pairs["owner"])
    pairs = (
        pairs[fits.to_numpy()]
        .sort_values("feedback_time", kind="stable")
        .drop_duplicates("at")
        .sort_values("at")
        .reset_index(drop=True)
    )
    joined: pd.DataFrame = left.iloc[pairs["at"].to_numpy()].reset_index(drop=True)
    return joined.assign(
        label=pairs["label"], reward=pairs["reward"], feedback_time=pairs["feedback_time"]
    )
