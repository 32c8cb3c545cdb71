"""Fairness by group in each monitoring window: which attributes, where they come from,
and the series they give.

A model's sensitive attributes are declared in the monitoring settings (``monitor:
fairness:`` in ``vigil.yaml``, or ``VIGIL_MONITOR_FAIRNESS`` as JSON), per model name::

    monitor:
      fairness:
        churn:
          attributes:
            - region                               # a feature the model reads
            - {name: sex, source: passthrough}     # sent beside the features, never to the model
          positive_label: 1                         # default: the second of two classes
          min_group_size: 30

An attribute is either a **feature** of the model's signature (captured as every feature
is) or a **passthrough** field: sent with the request beside the features
(``{"instances": [...], "passthrough": {"sex": ["f", "m"]}}`` in the native protocol), kept
in the inference log, never given to the model. Each window then measures, per group of
each attribute, from the counts of :mod:`vigil.stats.fairness` (so the values equal
Fairlearn's): selection rate over every predicted row, and accuracy, true and false
positive rates over the labelled rows, each with a Wilson interval; and between the groups
of at least ``min_group_size`` rows, the demographic parity difference and ratio, the
disparate impact ratio with the four-fifths rule, the equalized odds difference and ratio
and the equal opportunity difference.

The series are named ``fairness.<attribute>.<metric>`` (between groups) and
``fairness.<attribute>.<group>.<metric>`` (per group; ``<metric>`` one of
:data:`~vigil.stats.fairness.GROUP_METRICS`). The largest ``max_groups`` groups of an
attribute get series; the rest are counted in a note.

>>> cfg = ModelFairness.model_validate({"attributes": ["region"], "positive_label": 1})
>>> cfg.attributes[0].source, cfg.attributes[0].column
('feature', 'feature.region')
>>> group_metric("sex", "f", "selection_rate"), between_metric("sex", "disparate_impact_ratio")
('fairness.sex.f.selection_rate', 'fairness.sex.disparate_impact_ratio')
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vigil.capture.table import FEATURE_PREFIX, PASSTHROUGH_PREFIX
from vigil.monitor.performance import label_key
from vigil.monitor.points import (
    ATTRIBUTE_NAME,
    FAIRNESS_PREFIX,
    METRIC_LENGTH,
    Point,
    is_fairness_metric,
    point,
)
from vigil.stats.fairness import (
    BETWEEN_METRICS,
    GROUP_METRICS,
    FairnessReport,
    GroupCounts,
    count_groups,
    fairness_report,
)

__all__ = [
    "FAIRNESS_PREFIX",
    "ModelFairness",
    "SensitiveAttribute",
    "between_metric",
    "fairness_points",
    "group_metric",
    "is_fairness_metric",
    "measure_fairness",
]

_LONGEST = max(len(m) for m in GROUP_METRICS)


def between_metric(attribute: str, metric: str) -> str:
    return f"{FAIRNESS_PREFIX}{attribute}.{metric}"


def group_metric(attribute: str, group: str, metric: str) -> str:
    return f"{FAIRNESS_PREFIX}{attribute}.{group}.{metric}"


class SensitiveAttribute(BaseModel):
    """One sensitive attribute of a model: a feature, or a passthrough field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """The attribute's name in the series (``fairness.<name>...``): letters, digits, ``_``
    and ``-``, at most 24 characters, starting with a letter."""
    source: Literal["feature", "passthrough"] = "feature"
    """``feature``: a feature of the model's signature; ``passthrough``: a field sent
    beside the features and kept in the log, never given to the model."""
    field: str | None = None
    """The feature or passthrough field holding it (default: ``name``)."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not ATTRIBUTE_NAME.fullmatch(value):
            raise ValueError(
                f"invalid sensitive attribute name {value!r}: use 1-24 letters, digits, '_' "
                "or '-', starting with a letter (it names the fairness.<name>.* series)"
            )
        return value

    @property
    def column(self) -> str:
        """The inference log's column holding it."""
        prefix = FEATURE_PREFIX if self.source == "feature" else PASSTHROUGH_PREFIX
        return prefix + (self.field or self.name)


class ModelFairness(BaseModel):
    """The fairness monitoring of one model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attributes: list[SensitiveAttribute] = Field(min_length=1)
    """Its sensitive attributes: names of features, or ``{name, source, field}`` objects."""
    positive_label: str | int | float | bool | None = None
    """The favourable outcome whose rate is compared (a class the model predicts).
    Default: the second class of a binary classifier (``classes[1]``)."""
    min_group_size: int = Field(default=30, ge=1)
    """Groups with fewer rows in a window are reported, flagged ``small``, with their
    intervals, and left out of the comparison between groups."""
    max_groups: int = Field(default=20, ge=2, le=200)
    """Series are kept for at most this many groups of an attribute (the largest)."""

    @field_validator("attributes", mode="before")
    @classmethod
    def _names_as_attributes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _unique(self) -> ModelFairness:
        names = [a.name for a in self.attributes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"sensitive attribute(s) {twice} declared twice")
        return self


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


def measure_fairness(
    rows: pd.DataFrame,
    labelled: pd.DataFrame,
    config: ModelFairness,
    classes: list[Any] | None,
    notes: list[str],
) -> dict[str, FairnessReport]:
    """The fairness report of each attribute on one window: ``rows`` are its predicted
    rows, ``labelled`` those with a ``label`` column (see
    :func:`~vigil.monitor.measure.labelled_rows`)."""
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
