"""The model signature: what goes in and what comes out.

Serving validates every request against it; monitoring knows from it which features are
numeric and which categorical; the registry stores it with each version.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FeatureType = Literal["float64", "float32", "int64", "int32", "bool", "string", "category"]
"""Logical feature types. ``string``/``category`` are categorical; the rest numeric."""

NUMERIC_TYPES: frozenset[str] = frozenset({"float64", "float32", "int64", "int32", "bool"})

Task = Literal["classification", "regression", "other"]


class FeatureSpec(BaseModel):
    """One input feature."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    dtype: FeatureType
    required: bool = True
    nullable: bool = True
    """Whether a missing value (null / NaN) is acceptable for this feature."""
    categories: list[str | int | bool] | None = None
    """Known categories of a categorical feature (from the reference or the model)."""

    @property
    def is_numeric(self) -> bool:
        return self.dtype in NUMERIC_TYPES


class OutputSpec(BaseModel):
    """What ``predict`` (and ``predict_proba``) return."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Task = "other"
    dtype: str = "float64"
    """dtype of ``predict``'s output (``int64``, ``float64``, ``string``...)."""
    classes: list[str | int | float | bool] | None = None
    """Class labels of a classifier, in the column order of ``predict_proba``."""
    has_proba: bool = False

    @property
    def proba_columns(self) -> list[str]:
        return [f"proba_{c}" for c in (self.classes or [])]


class Signature(BaseModel):
    """Inputs (ordered, as the model expects them) and outputs of a model.

    >>> sig = Signature(inputs=[FeatureSpec(name="age", dtype="float64"),
    ...                         FeatureSpec(name="city", dtype="string")])
    >>> sig.feature_names, sig.numeric_names, sig.categorical_names
    (['age', 'city'], ['age'], ['city'])
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: list[FeatureSpec]
    outputs: OutputSpec = Field(default_factory=OutputSpec)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.inputs]

    @property
    def numeric_names(self) -> list[str]:
        return [f.name for f in self.inputs if f.is_numeric]

    @property
    def categorical_names(self) -> list[str]:
        return [f.name for f in self.inputs if not f.is_numeric]

    @property
    def all_numeric(self) -> bool:
        return all(f.is_numeric for f in self.inputs)

    def feature(self, name: str) -> FeatureSpec:
        for f in self.inputs:
            if f.name == name:
                return f
        raise KeyError(name)
