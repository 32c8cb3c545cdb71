"""Model performance on a window of labelled predictions, and its change since registration.

Metrics come from scikit-learn (same values as calling it directly) with degenerate
windows handled instead of raising or warning: a metric that is undefined on the window
(ROC AUC with one class present, R² below two rows, anything on an empty window) is
``None``, and the reason is listed in ``notes``.

Classification (``classes`` in ``predict_proba`` column order; by default the sorted
labels seen): accuracy; precision, recall and F1 for the positive class ``classes[1]``
when binary, macro-averaged otherwise (``zero_division=0``); ROC AUC (binary, or
one-vs-rest macro for multiclass, which needs every class present); log loss; and the
expected calibration error: the confidence of each row is its largest predicted
probability, rows go into 10 equal-width confidence bins over [0, 1] (right-closed,
the first also holds 0), and ECE is the row-weighted mean of ``|accuracy - mean
confidence|`` over the non-empty bins.

Regression: MAE, RMSE, MAPE (scikit-learn's, which divides by ``max(|y|, eps)``, so zeros
in ``y_true`` give huge values) and R².

>>> report = evaluate("classification", [0, 1, 1, 0], [0, 1, 0, 0],
...                   y_proba=[0.2, 0.9, 0.4, 0.1], reference_metrics={"accuracy": 0.9})
>>> report.metrics["accuracy"], report.metrics["roc_auc"], round(report.deltas["accuracy"], 2)
(0.75, 1.0, -0.15)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Metrics = dict[str, float | None]
ECE_BINS = 10


@dataclass(frozen=True)
class PerformanceReport:
    """Metrics of one window, and their change against the registration-time metrics."""

    task: Literal["classification", "regression"]
    n: int
    metrics: Metrics
    reference: Metrics = field(default_factory=dict)
    deltas: Metrics = field(default_factory=dict)
    """``current - reference`` per metric present in both."""
    relative_change: Metrics = field(default_factory=dict)
    """``(current - reference) / |reference|``; None when the reference is 0."""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def label_key(value: Any) -> str:
    """A label or prediction as text, so labels that arrive as JSON (``1``, ``1.0``, ``"1"``,
    ``true``) compare equal to predictions as the model returned them.

    >>> label_key(1.0), label_key("1"), label_key(True), label_key(0.5)
    ('1', '1', 'True', '0.5')
    """
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def expected_calibration_error(
    y_true: npt.ArrayLike,
    y_proba: npt.ArrayLike,
    classes: Sequence[Any],
    n_bins: int = ECE_BINS,
) -> float:
    """Top-label expected calibration error over equal-width confidence bins."""
    proba = np.asarray(y_proba, dtype=np.float64)
    truth = np.asarray(y_true)
    labels = np.asarray(classes)
    confidence = proba.max(axis=1)
    correct = labels[proba.argmax(axis=1)] == truth
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        mask = bins == b
        total += mask.sum() * abs(float(correct[mask].mean()) - float(confidence[mask].mean()))
    return float(total / confidence.size)


def _proba_matrix(y_proba: npt.ArrayLike, n_classes: int) -> npt.NDArray[np.float64]:
    proba = np.asarray(y_proba, dtype=np.float64)
    if proba.ndim == 1:
        if n_classes != 2:
            raise ValueError("a 1-D y_proba is the positive-class probability of a binary task")
        proba = np.column_stack([1.0 - proba, proba])
    if proba.shape[1] != n_classes:
        raise ValueError(f"y_proba has {proba.shape[1]} columns for {n_classes} classes")
    return proba


def classification_metrics(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    y_proba: npt.ArrayLike | None = None,
    *,
    classes: Sequence[Any] | None = None,
    notes: list[str] | None = None,
) -> Metrics:
    """Accuracy, precision, recall, F1, ROC AUC, log loss and ECE of one window."""
    from sklearn import metrics as skm  # scikit-learn: only once labels arrived

    notes = notes if notes is not None else []
    truth, pred = np.asarray(y_true), np.asarray(y_pred)
    keys = ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "ece"]
    out: Metrics = dict.fromkeys(keys)
    if truth.size == 0:
        notes.append("empty window: no metric is defined")
        return out
    labels = (
        list(classes) if classes is not None else np.unique(np.concatenate([truth, pred])).tolist()
    )
    binary = len(labels) == 2
    out["accuracy"] = float(skm.accuracy_score(truth, pred))
    if binary:
        avg: dict[str, Any] = {"average": "binary", "pos_label": labels[1]}
    else:
        avg = {"average": "macro", "labels": labels}
    out["precision"] = float(skm.precision_score(truth, pred, zero_division=0, **avg))
    out["recall"] = float(skm.recall_score(truth, pred, zero_division=0, **avg))
    out["f1"] = float(skm.f1_score(truth, pred, zero_division=0, **avg))
    if y_proba is None:
        return out
    if len(labels) < 2:
        notes.append("one class only: ROC AUC, log loss and ECE need at least two classes")
        return out
    proba = _proba_matrix(y_proba, len(labels))
    present = set(np.unique(truth).tolist())
    if binary and len(present) == 2:
        out["roc_auc"] = float(skm.roc_auc_score(truth == labels[1], proba[:, 1]))
    elif not binary and present >= set(labels):
        out["roc_auc"] = float(
            skm.roc_auc_score(truth, proba, multi_class="ovr", average="macro", labels=labels)
        )
    else:
        notes.append("ROC AUC undefined: not every class occurs in this window's labels")
    out["log_loss"] = float(skm.log_loss(truth, proba, labels=labels))
    out["ece"] = expected_calibration_error(truth, proba, labels)
    return out


def regression_metrics(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, notes: list[str] | None = None
) -> Metrics:
    """MAE, RMSE, MAPE and R² of one window."""
    from sklearn import metrics as skm  # scikit-learn: only once labels arrived

    notes = notes if notes is not None else []
    truth = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(y_pred, dtype=np.float64)
    out: Metrics = dict.fromkeys(["mae", "rmse", "mape", "r2"])
    if truth.size == 0:
        notes.append("empty window: no metric is defined")
        return out
    out["mae"] = float(skm.mean_absolute_error(truth, pred))
    out["rmse"] = float(skm.root_mean_squared_error(truth, pred))
    out["mape"] = _finite(float(skm.mean_absolute_percentage_error(truth, pred)))
    if truth.size < 2:
        notes.append("R² needs at least two rows")
    else:
        out["r2"] = float(skm.r2_score(truth, pred))
    return out


def compare_metrics(
    current: Mapping[str, float | None], reference: Mapping[str, float | None]
) -> tuple[Metrics, Metrics]:
    """Deltas and relative changes for the metrics both sides define."""
    deltas: Metrics = {}
    relative: Metrics = {}
    for name, ref in reference.items():
        cur = current.get(name)
        if cur is None or ref is None:
            continue
        deltas[name] = cur - ref
        relative[name] = (cur - ref) / abs(ref) if ref != 0 else None
    return deltas, relative


def evaluate(
    task: Literal["classification", "regression"],
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    y_proba: npt.ArrayLike | None = None,
    classes: Sequence[Any] | None = None,
    reference_metrics: Mapping[str, float | None] | None = None,
) -> PerformanceReport:
    """Metrics of a window, compared with the metrics stored at registration."""
    notes: list[str] = []
    if task == "classification":
        metrics = classification_metrics(y_true, y_pred, y_proba, classes=classes, notes=notes)
    elif task == "regression":
        metrics = regression_metrics(y_true, y_pred, notes=notes)
    else:
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    reference = dict(reference_metrics or {})
    deltas, relative = compare_metrics(metrics, reference)
    return PerformanceReport(
        task=task,
        n=int(np.asarray(y_true).size),
        metrics=metrics,
        reference=reference,
        deltas=deltas,
        relative_change=relative,
        notes=notes,
    )
