"""Sufficient statistics of the performance metrics, built on labelled rows and merged.

Everything :mod:`vigil.monitor.performance` reports, from sums instead of rows:

* **Classification** — the confusion counts (any label, even one outside the model's
  classes) give accuracy, precision, recall and F1 exactly; the sum of
  ``-log(clip(p_true))`` gives log loss and the ten confidence bins (count, correct, sum
  of confidence) give the expected calibration error, both exact up to rounding. ROC AUC
  comes from per-class score histograms over :data:`SCORE_BINS` equal-width bins of
  [0, 1]: scores in one bin count as ties, so the value is off from scikit-learn's by at
  most half the share of (positive, negative) pairs that share a bin, which
  :meth:`ClassificationSummary.auc_error` reports from the summary itself (about
  ``1 / (2 * SCORE_BINS)`` for scores spread over [0, 1]).
* **Regression** — the sums of ``|e|``, ``e²`` and ``|e| / max(|y|, eps)`` and the
  moments of ``y`` give MAE, RMSE, MAPE and R², exact up to rounding.

>>> s = ClassificationSummary(["0", "1"])
>>> s.update(["0", "1", "1", "0"], ["0", "1", "0", "0"], np.array([[.8, .2], [.1, .9], [.6, .4], [.9, .1]]))
>>> m = s.metrics(); m["accuracy"], m["roc_auc"]
(0.75, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from vigil.bundle.accumulators import Moments
from vigil.monitor.performance import ECE_BINS, Metrics
from vigil.monitor.summaries.columns import _moments_dict, _moments_from, ints

SCORE_BINS = 4096
"""Equal-width bins of a class probability behind ROC AUC (see the module docstring)."""

FloatArray = npt.NDArray[np.float64]
_EPS = float(np.finfo(np.float64).eps)


def _score_bins(p: FloatArray) -> npt.NDArray[np.intp]:
    return np.clip((p * SCORE_BINS).astype(np.intp), 0, SCORE_BINS - 1)


def _binary_auc(pos: npt.NDArray[np.int64], neg: npt.NDArray[np.int64]) -> tuple[float, float]:
    """AUC with ties inside a bin counted as half, and the most that can be off by."""
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    below = np.concatenate([[0], np.cumsum(neg)[:-1]]).astype(np.float64)
    pairs = n_pos * n_neg
    auc = float(np.einsum("i,i->", pos.astype(np.float64), below + 0.5 * neg)) / pairs
    error = 0.5 * float(np.einsum("i,i->", pos.astype(np.float64), neg.astype(np.float64))) / pairs
    return auc, error


class ClassificationSummary:
    """Confusion counts, log-loss and calibration sums, score histograms per class."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = [str(c) for c in classes]
        k = len(self.classes)
        self.confusion: dict[tuple[str, str], int] = {}
        self.n_proba = 0
        """Labelled rows with a full set of finite probabilities (log loss, AUC, ECE)."""
        self.log_loss_sum = 0.0
        self.ece_count = np.zeros(ECE_BINS, dtype=np.int64)
        self.ece_correct = np.zeros(ECE_BINS, dtype=np.int64)
        self.ece_confidence = np.zeros(ECE_BINS, dtype=np.float64)
        self.positives = np.zeros((k, SCORE_BINS), dtype=np.int64)
        self.negatives = np.zeros((k, SCORE_BINS), dtype=np.int64)

    @property
    def n(self) -> int:
        return sum(self.confusion.values())

    def update(
        self, y_true: Sequence[str], y_pred: Sequence[str], proba: FloatArray | None = None
    ) -> None:
        """Add labelled rows (labels and predictions as text keys; ``proba`` in
        ``classes`` order, or None). Rows whose label is not a class take no part in
        the probability statistics, as in :mod:`vigil.monitor.performance`."""
        truth = np.asarray(y_true, dtype=object)
        pred = np.asarray(y_pred, dtype=object)
        import pandas as pd  # pandas: factorising the labels

        t_codes, t_labels = pd.factorize(truth)
        p_codes, p_labels = pd.factorize(pred)
        width = max(len(p_labels), 1)
        counts = np.bincount(t_codes * width + p_codes, minlength=len(t_labels) * width)
        for cell in np.flatnonzero(counts):
            key = (str(t_labels[cell // width]), str(p_labels[cell % width]))
            self.confusion[key] = self.confusion.get(key, 0) + int(counts[cell])
        if proba is None or len(self.classes) < 2:
            return
        p = np.asarray(proba, dtype=np.float64).reshape(len(truth), len(self.classes))
        index = {c: i for i, c in enumerate(self.classes)}
        code = np.asarray([index.get(t, -1) for t in truth.tolist()], dtype=np.intp)
        ok = np.isfinite(p).all(axis=1) & (code >= 0)
        p, code = p[ok], code[ok]
        rows = np.arange(code.size)
        self.n_proba += code.size
        self.log_loss_sum += float(-np.log(np.clip(p[rows, code], _EPS, 1.0 - _EPS)).sum())
        confidence = p.max(axis=1)
        correct = p.argmax(axis=1) == code
        bins = np.clip(np.ceil(confidence * ECE_BINS).astype(np.int64) - 1, 0, ECE_BINS - 1)
        self.ece_count += np.bincount(bins, minlength=ECE_BINS)
        self.ece_correct += np.bincount(bins, weights=correct, minlength=ECE_BINS).astype(np.int64)
        self.ece_confidence += np.bincount(bins, weights=confidence, minlength=ECE_BINS)
        for k in range(len(self.classes)):
            b = _score_bins(p[:, k])
            is_k = code == k
            self.positives[k] += np.bincount(b[is_k], minlength=SCORE_BINS)
            self.negatives[k] += np.bincount(b[~is_k], minlength=SCORE_BINS)

    def merge(self, other: ClassificationSummary) -> None:
        if self.classes != other.classes:
            raise ValueError("classification summaries over different classes do not merge")
        for key, count in other.confusion.items():
            self.confusion[key] = self.confusion.get(key, 0) + count
        self.n_proba += other.n_proba
        self.log_loss_sum += other.log_loss_sum
        self.ece_count += other.ece_count
        self.ece_correct += other.ece_correct
        self.ece_confidence += other.ece_confidence
        self.positives += other.positives
        self.negatives += other.negatives

    def _auc(self) -> tuple[float | None, float]:
        k = len(self.classes)
        present = self.positives.sum(axis=1) > 0
        if k < 2 or self.n_proba == 0 or not present.all():
            return None, 0.0
        if k == 2:
            return _binary_auc(self.positives[1], self.negatives[1])
        pairs = [_binary_auc(self.positives[i], self.negatives[i]) for i in range(k)]
        return float(np.mean([a for a, _ in pairs])), float(np.mean([e for _, e in pairs]))

    def auc_error(self) -> float:
        """The most the ROC AUC of :meth:`metrics` can differ from the exact one."""
        return self._auc()[1]

    def metrics(self) -> Metrics:
        """The metrics of :func:`~vigil.monitor.performance.classification_metrics`."""
        out: Metrics = dict.fromkeys(
            ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "ece"]
        )
        n = self.n
        if n == 0:
            return out
        out["accuracy"] = sum(c for (t, p), c in self.confusion.items() if t == p) / n
        labels = self.classes
        scores = [self._prf(label) for label in labels]
        if len(labels) == 2:
            out["precision"], out["recall"], out["f1"] = scores[1]
        elif labels:
            out["precision"], out["recall"], out["f1"] = (
                float(np.mean([s[i] for s in scores])) for i in range(3)
            )
        if self.n_proba and len(labels) >= 2:
            out["roc_auc"] = self._auc()[0]
            out["log_loss"] = self.log_loss_sum / self.n_proba
            gap = np.abs(self.ece_correct - self.ece_confidence)
            out["ece"] = float(gap.sum() / self.n_proba)
        return out

    def _prf(self, label: str) -> tuple[float, float, float]:
        tp = self.confusion.get((label, label), 0)
        predicted = sum(c for (_t, p), c in self.confusion.items() if p == label)
        actual = sum(c for (t, _p), c in self.confusion.items() if t == label)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * tp / (predicted + actual) if predicted + actual else 0.0
        return precision, recall, f1

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": "classification",
            "classes": self.classes,
            "confusion": [[t, p, c] for (t, p), c in sorted(self.confusion.items())],
            "n_proba": self.n_proba,
            "log_loss_sum": self.log_loss_sum,
            "ece_count": self.ece_count.tolist(),
            "ece_correct": self.ece_correct.tolist(),
            "ece_confidence": self.ece_confidence.tolist(),
            "positives": _sparse(self.positives),
            "negatives": _sparse(self.negatives),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassificationSummary:
        out = cls(data["classes"])
        out.confusion = {(str(t), str(p)): int(c) for t, p, c in data["confusion"]}
        out.n_proba = int(data["n_proba"])
        out.log_loss_sum = float(data["log_loss_sum"])
        out.ece_count = ints(data["ece_count"])
        out.ece_correct = ints(data["ece_correct"])
        out.ece_confidence = np.asarray(data["ece_confidence"], dtype=np.float64)
        out.positives = _dense(data["positives"], out.positives.shape)
        out.negatives = _dense(data["negatives"], out.negatives.shape)
        return out


def _sparse(matrix: npt.NDArray[np.int64]) -> list[list[int]]:
    rows, cols = np.nonzero(matrix)
    return [[int(r), int(c), int(matrix[r, c])] for r, c in zip(rows, cols, strict=True)]


def _dense(cells: list[list[int]], shape: tuple[int, ...]) -> npt.NDArray[np.int64]:
    out = np.zeros(shape, dtype=np.int64)
    for r, c, v in cells:
        out[r, c] = v
    return out


class RegressionSummary:
    """Sums of the errors and the moments of the labels."""

    def __init__(self) -> None:
        self.abs_error = 0.0
        self.squared_error = 0.0
        self.abs_percentage_error = 0.0
        self.truth = Moments()

    @property
    def n(self) -> int:
        return self.truth.n

    def update(self, y_true: FloatArray, y_pred: FloatArray) -> None:
        """Add rows whose label and prediction are both finite."""
        truth = np.asarray(y_true, dtype=np.float64)
        pred = np.asarray(y_pred, dtype=np.float64)
        ok = np.isfinite(truth) & np.isfinite(pred)
        truth, pred = truth[ok], pred[ok]
        error = np.abs(truth - pred)
        self.abs_error += float(error.sum())
        self.squared_error += float(np.einsum("i,i->", error, error))
        self.abs_percentage_error += float((error / np.maximum(np.abs(truth), _EPS)).sum())
        self.truth.update(truth)

    def merge(self, other: RegressionSummary) -> None:
        self.abs_error += other.abs_error
        self.squared_error += other.squared_error
        self.abs_percentage_error += other.abs_percentage_error
        self.truth.merge(other.truth)

    def metrics(self) -> Metrics:
        """The metrics of :func:`~vigil.monitor.performance.regression_metrics`."""
        out: Metrics = dict.fromkeys(["mae", "rmse", "mape", "r2"])
        n = self.n
        if n == 0:
            return out
        out["mae"] = self.abs_error / n
        out["rmse"] = math.sqrt(self.squared_error / n)
        mape = self.abs_percentage_error / n
        out["mape"] = mape if math.isfinite(mape) else None
        if n >= 2:
            total = self.truth.m2
            if total > 0:
                out["r2"] = 1.0 - self.squared_error / total
            else:  # scikit-learn's force_finite convention for a constant label
                out["r2"] = 1.0 if self.squared_error == 0 else 0.0
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": "regression",
            "abs_error": self.abs_error,
            "squared_error": self.squared_error,
            "abs_percentage_error": self.abs_percentage_error,
            "truth": _moments_dict(self.truth),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegressionSummary:
        out = cls()
        out.abs_error = float(data["abs_error"])
        out.squared_error = float(data["squared_error"])
        out.abs_percentage_error = float(data["abs_percentage_error"])
        out.truth = _moments_from(data["truth"])
        return out


PerformanceSummary = ClassificationSummary | RegressionSummary


def performance_from_dict(data: dict[str, Any]) -> PerformanceSummary:
    if data["task"] == "classification":
        return ClassificationSummary.from_dict(data)
    return RegressionSummary.from_dict(data)
