"""Prediction drift and label drift: the column machinery applied to one array.

A model's outputs (or the labels that arrive later) drift like any feature; these thin
wrappers name the column and pick numeric or categorical treatment (class labels are
categorical, scores and regression outputs numeric).

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> res = prediction_drift(rng.choice([0, 1], 400, p=[0.7, 0.3]), rng.choice([0, 1], 400, p=[0.4, 0.6]),
...                        categorical=True)
>>> res.method, res.drifted
('chi2', True)
"""

from __future__ import annotations

from typing import Any

from vigil.drift.column_drift import ColumnDrift
from vigil.drift.report import compare, profile_column_drift
from vigil.drift.select import ALPHA
from vigil.profile_schema import CategoricalProfile, NumericProfile


def _one(
    name: str,
    reference: Any,
    current: Any,
    categorical: bool | None,
    method: str | None,
    alpha: float,
) -> ColumnDrift:
    report = compare(
        {name: reference},
        {name: current},
        categorical=None if categorical is None else ([name] if categorical else []),
        methods={name: method} if method else None,
        alpha=alpha,
    )
    return report.columns[0]


def prediction_drift(
    reference: Any,
    current: Any,
    *,
    categorical: bool | None = None,
    method: str | None = None,
    alpha: float = ALPHA,
) -> ColumnDrift:
    """Drift of the model's predictions (class labels: ``categorical=True``)."""
    return _one("prediction", reference, current, categorical, method, alpha)


def label_drift(
    reference: Any,
    current: Any,
    *,
    categorical: bool | None = None,
    method: str | None = None,
    alpha: float = ALPHA,
) -> ColumnDrift:
    """Drift of the labels (ground truth) between reference and current."""
    return _one("label", reference, current, categorical, method, alpha)


def prediction_drift_to_profile(
    profile: NumericProfile | CategoricalProfile,
    current: Any,
    *,
    sample: list[Any] | None = None,
    method: str | None = None,
    alpha: float = ALPHA,
) -> ColumnDrift:
    """Prediction drift against the stored ``BaselineProfile.prediction`` (and its sample)."""
    return profile_column_drift(
        "prediction", profile, current, sample=sample, method=method, alpha=alpha
    )
