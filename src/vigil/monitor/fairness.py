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
            - {name: band, source: feedback}       # a field of the feedback on the row
          positive_label: 1                         # default: the second of two classes
          min_group_size: 30

An attribute is either a **feature** of the model's signature (captured as every feature
is) or a **passthrough** field: sent with the request beside the features
(``{"instances": [...], "passthrough": {"sex": ["f", "m"]}}`` in the native protocol,
``parameters.passthrough`` in a v2 JSON request), kept
in the inference log, never given to the model; or a **feedback** field: sent with the
row's feedback (``{"request_id": ..., "label": 1, "fields": {"band": "b"}}``), joined to
the row by request id as its label is. Each window then measures, per group of
each attribute (:mod:`vigil.monitor.group_fairness`), from the counts of
:mod:`vigil.stats.fairness` (so the values equal
Fairlearn's): selection rate over every predicted row, and accuracy, true and false
positive rates over the labelled rows, each with a Wilson interval; and between the groups
of at least ``min_group_size`` rows, the demographic parity difference and ratio, the
disparate impact ratio with the four-fifths rule, the equalized odds difference and ratio
and the equal opportunity difference.

The series are named ``fairness.<attribute>.<metric>`` (between groups) and
``fairness.<attribute>.<group>.<metric>`` (per group; ``<metric>`` one of
:data:`~vigil.monitor.points.GROUP_METRICS`). The largest ``max_groups`` groups of an
attribute get series; the rest are counted in a note.

>>> cfg = ModelFairness.model_validate({"attributes": ["region"], "positive_label": 1})
>>> cfg.attributes[0].source, cfg.attributes[0].column
('feature', 'feature.region')
>>> group_metric("sex", "f", "selection_rate"), between_metric("sex", "disparate_impact_ratio")
('fairness.sex.f.selection_rate', 'fairness.sex.disparate_impact_ratio')
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vigil.monitor.points import ATTRIBUTE_NAME, FAIRNESS_PREFIX

FEATURE_COLUMN = "feature."
PASSTHROUGH_COLUMN = "passthrough."
"""The inference log's column prefixes (:data:`vigil.capture.table.FEATURE_PREFIX` and
``PASSTHROUGH_PREFIX``, spelt here so that settings load without PyArrow; a test keeps
them equal)."""
FEEDBACK_COLUMN = "feedback."
"""The column a feedback field is joined into, beside the window's rows."""

__all__ = [
    "ModelFairness",
    "SensitiveAttribute",
    "between_metric",
    "group_metric",
]


def between_metric(attribute: str, metric: str) -> str:
    return f"{FAIRNESS_PREFIX}{attribute}.{metric}"


def group_metric(attribute: str, group: str, metric: str) -> str:
    return f"{FAIRNESS_PREFIX}{attribute}.{group}.{metric}"


class SensitiveAttribute(BaseModel):
    """One sensitive attribute of a model: a feature, a passthrough field or a field of
    feedback."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """The attribute's name in the series (``fairness.<name>...``): letters, digits, ``_``
    and ``-``, at most 24 characters, starting with a letter."""
    source: Literal["feature", "passthrough", "feedback"] = "feature"
    """``feature``: a feature of the model's signature; ``passthrough``: a field sent
    beside the features and kept in the log, never given to the model; ``feedback``: a
    field of the feedback on the row (its ``fields``), joined by request id."""
    field: str | None = None
    """The feature, passthrough or feedback field holding it (default: ``name``)."""

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
        prefix = {
            "feature": FEATURE_COLUMN,
            "passthrough": PASSTHROUGH_COLUMN,
            "feedback": FEEDBACK_COLUMN,
        }[self.source]
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
