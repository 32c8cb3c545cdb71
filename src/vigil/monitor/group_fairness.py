"""Fairness by group measured on one window's rows, and the points it stores.

Pure computation over the window's rows (no I/O): the attributes and naming are in
:mod:`vigil.monitor.fairness`, the arithmetic on counts in :mod:`vigil.stats.fairness`.
Selection rates count every predicted row; accuracy and the true and false positive rates
count the labelled ones. Rows without a value of the attribute belong to no group: for an
attribute sent with feedback, the rows whose feedback did not carry it
(:func:`with_feedback_fields` joins it to the rows by request id, as labels join).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vigil.feedback.join import join_feedback
from vigil.feedback.record import FIELD_PREFIX
from vigil.monitor.fairness import ModelFairness, SensitiveAttribute, between_metric, group_metric
from vigil.monitor.performance import label_key
from vigil.monitor.points import (
    BETWEEN_METRICS,
    FAIRNESS_PREFIX,
    GROUP_METRICS,
    METRIC_LENGTH,
    Point,
    point,
)
from vigil.stats.fairness import FairnessReport, GroupCounts, count_groups, fairness_report

__all__ = [
    "fairness_points",
    "group_values",
    "measure_fairness",
    "positive_class",
    "with_feedback_fields",
]

_LONGEST = max(len(m) for m in GROUP_METRICS)


def positive_class(config: ModelFairness, classes: list[Any] | None) -> str | None:
    """The favourable outcome as a label key, or ``None`` when it cannot be told."""
    if config.positive_label is not None:
        return label_key(config.positive_label)
    if classes is not None and len(classes) == 2:
        return label_key(classes[1])
    return None


def _groups(rows: pd.DataFrame, column: str) -> list[Any]:
    values = rows[column].to_numpy(dtype=object)
    return [
        None if v is None or (isinstance(v, float) and v != v) else label_key(v) for v in values
    ]


def with_feedback_fields(
    rows: pd.DataFrame, feedback: pd.DataFrame | None, config: ModelFairness
) -> pd.DataFrame:
    """``rows`` with a column ``feedback.<field>`` for each attribute of ``config`` sent
    with feedback: the value the row's feedback carried (joined as its label is, by
    :func:`~vigil.feedback.join.join_feedback`: the first feedback of the row's request
    id, row and caller that carries the field), missing where none did. ``feedback`` is
    :meth:`~vigil.feedback.store.FeedbackStore.read`'s frame, fields as ``field.<name>``.

    >>> rows = pd.DataFrame({"request_id": ["a", "a", "b"], "row": [0, 1, 0]})
    >>> given = pd.DataFrame({"request_id": ["a", "b"], "row": [1, 0], "caller": [None, None],
    ...     "label": [1, 0], "field.band": ["x", None],
    ...     "time": pd.to_datetime(["2025-01-01", "2025-01-02"], utc=True)})
    >>> cfg = ModelFairness.model_validate({"attributes": [{"name": "band", "source": "feedback"}]})
    >>> with_feedback_fields(rows, given, cfg)["feedback.band"].tolist()
    [None, 'x', None]
    """
    wanted = [a for a in config.attributes if a.source == "feedback" and a.column not in rows]
    if not wanted:
        return rows
    out = rows.copy()
    for attribute in wanted:
        stored = FIELD_PREFIX + (attribute.field or attribute.name)
        values = np.full(len(rows), None, dtype=object)
        if feedback is not None and not rows.empty and stored in feedback:
            carried = feedback[feedback[stored].notna()]
            # The field's value travels in the join's label column.
            given = carried.assign(label=carried[stored], reward=None)
            at = rows.assign(_at=np.arange(len(rows)))
            joined = join_feedback(at, given)
            values[joined["_at"].to_numpy(dtype=np.int64)] = joined["label"].to_numpy(dtype=object)
        out[attribute.column] = pd.Series(values, index=out.index, dtype=object)
    return out


def measure_fairness(
    rows: pd.DataFrame,
    labelled: pd.DataFrame,
    config: ModelFairness,
    classes: list[Any] | None,
    notes: list[str],
    feedback: pd.DataFrame | None = None,
) -> dict[str, FairnessReport]:
    """The fairness report of each attribute on one window: ``rows`` are its predicted
    rows, ``labelled`` those with a ``label`` column (see
    :func:`~vigil.monitor.measure.labelled_rows`), ``feedback`` the feedback frame they
    were labelled from (for attributes sent with feedback: :func:`with_feedback_fields`)."""
    rows = with_feedback_fields(rows, feedback, config)
    labelled = with_feedback_fields(labelled, feedback, config)
    positive = positive_class(config, classes)
    if positive is None:
        notes.append(
            "no fairness metrics: set monitor.fairness.<model>.positive_label (the model "
            "is not a binary classifier)"
        )
        return {}
    out: dict[str, FairnessReport] = {}
    for attribute in config.attributes:
        column = attribute.column
        if rows.empty:
            continue
        if column not in rows:
            notes.append(f"no fairness by {attribute.name}: the log has no column {column}")
            continue
        selected = [label_key(v) == positive for v in rows["prediction"]]
        counts = count_groups(_groups(rows, column), selected)
        if not labelled.empty and column in labelled:
            truth = [label_key(v) == positive for v in labelled["label"]]
            chosen = [label_key(v) == positive for v in labelled["prediction"]]
            judged = count_groups(_groups(labelled, column), chosen, truth)
            counts = {
                g: GroupCounts(c.n, c.selected) + _confusion(judged.get(g))
                for g, c in counts.items()
            }
        missing = int(rows[column].isna().sum())
        if missing:
            notes.append(f"{missing} rows without a {attribute.name} left out of its groups")
        out[attribute.name] = fairness_report(counts, min_group_size=config.min_group_size)
    return out


def _confusion(c: GroupCounts | None) -> GroupCounts:
    return GroupCounts() if c is None else GroupCounts(0, 0, c.tp, c.fp, c.fn, c.tn)


def fairness_points(
    reports: dict[str, FairnessReport], config: ModelFairness, notes: list[str]
) -> list[Point]:
    """The series points of each attribute's report (see the module's naming)."""
    out: list[Point] = []
    for attribute, report in reports.items():
        for metric in BETWEEN_METRICS:
            out += point(between_metric(attribute, metric), report.between.get(metric))
        ranked = sorted(report.groups.items(), key=lambda kv: (-kv[1].counts.n, kv[0]))
        room = METRIC_LENGTH - len(FAIRNESS_PREFIX) - len(attribute) - 2 - _LONGEST
        kept = [(g, r) for g, r in ranked if len(g) <= room][: config.max_groups]
        if len(kept) < len(ranked):
            notes.append(
                f"fairness by {attribute}: series for {len(kept)} of {len(ranked)} groups "
                f"(the largest {config.max_groups}, names of at most {room} characters)"
            )
        for group, rates in kept:
            for metric in GROUP_METRICS:
                value = rates.values.get(metric)
                out += point(group_metric(attribute, group, metric), value)
    return out


def group_values(frame: pd.DataFrame, attribute: SensitiveAttribute) -> np.ndarray:
    """The group of each row of ``frame`` (``None`` where missing), as label keys."""
    if attribute.column not in frame:
        return np.full(len(frame), None, dtype=object)
    return np.asarray(_groups(frame, attribute.column), dtype=object)
