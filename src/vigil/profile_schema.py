"""The baseline profile's shape: a compact summary of a version's reference data.

Computed once at registration (see :mod:`vigil.bundle.profile`), stored with the version
(kilobytes, not the data), and used later to compute drift and data quality without the
original reference data.

Conventions every consumer may rely on:

* ``bin_edges`` are the reference quantiles at ``0, 1/B, ..., 1`` (deduplicated) and
  ``bin_counts`` the exact number of non-missing reference values in each bin, bins closed
  on the left, the last also on the right; consumers treat the first and last bins as open
  (``-inf``/``+inf``) tails.
* ``hist_edges`` / ``hist_counts``: an equal-width histogram between min and max, for
  charts and distances.
* ``quantiles``: the values at ``0, 0.01, ..., 1`` (101 points), an approximation of the
  reference distribution for Wasserstein/KS-style comparisons.
* Categorical ``frequencies`` hold the most frequent categories (up to a cap) and, when
  capped, the rest summed under ``other_count``.
* ``sample`` is a bounded, seeded uniform sample of reference rows (raw values) for the
  tests that need them (KS, Anderson–Darling, domain classifier).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PREDICTION = "__prediction__"
"""Name of the model's predictions among the columns of the stored reference sample."""
PROBA_COLUMN = "__proba__"
"""Prefix of the sample's probability columns (``__proba__0``...: class index)."""


class NumericProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["numeric"] = "numeric"
    count: int
    """Non-missing values."""
    missing: int
    """Missing values (null / NaN)."""
    infinite: int = 0
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    """Sample standard deviation (ddof=1)."""
    quantiles: list[float] = Field(default_factory=list)
    bin_edges: list[float] = Field(default_factory=list)
    bin_counts: list[int] = Field(default_factory=list)
    hist_edges: list[float] = Field(default_factory=list)
    hist_counts: list[int] = Field(default_factory=list)

    @property
    def missing_rate(self) -> float:
        total = self.count + self.missing
        return self.missing / total if total else 0.0


class CategoricalProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["categorical"] = "categorical"
    count: int
    missing: int
    frequencies: dict[str, int]
    """Counts of the most frequent categories, keyed by ``str(category)``."""
    other_count: int = 0
    """Count of the categories left out of ``frequencies`` by the cap."""
    n_unique: int

    @property
    def missing_rate(self) -> float:
        total = self.count + self.missing
        return self.missing / total if total else 0.0


FeatureProfile = NumericProfile | CategoricalProfile


class BaselineProfile(BaseModel):
    """Per-feature profiles of the reference data, the model's predictions on it, and a sample."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    n_rows: int
    features: dict[str, NumericProfile | CategoricalProfile]
    prediction: NumericProfile | CategoricalProfile | None = None
    """Distribution of the model's predictions on the reference data."""
    target: NumericProfile | CategoricalProfile | None = None
    """Distribution of the label column, when the reference data has one."""
    sample: dict[str, list[Any]] = Field(default_factory=dict)
    """Column -> raw values of a seeded uniform sample of reference rows (bounded size)."""
    sample_predictions: list[Any] = Field(default_factory=list)
    target_name: str | None = None
    """Name of the label column in ``sample`` (``None``: the reference had no labels)."""
    sample_probabilities: list[list[float]] = Field(default_factory=list)
    """A classifier's ``predict_proba`` on the sample's rows (one list per row, one value per
    class in ``signature.outputs.classes`` order), for performance estimated before labels
    arrive (:mod:`vigil.monitor.estimated`); empty for older bundles and other models."""
    seed: int = 0
    source_sha256: str | None = None
