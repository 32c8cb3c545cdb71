"""Performance before labels arrive: confidence-based performance estimation (CBPE).

Labels often come days or weeks after the predictions they judge. A classifier's own
probabilities, once calibrated, say how often it should be right: a row predicted ``1``
with calibrated probability 0.8 is a true positive with probability 0.8 and a false positive
with probability 0.2. Summing over a window gives the **expected confusion matrix**, and
from it the expected accuracy, precision, recall and F1; weighting each row as a positive
with its probability and as a negative with the rest gives the expected ROC AUC.

The calibration is fitted on the reference data's labels when the model's probabilities
need it (their expected calibration error on the reference above ``calibration_tolerance``):
isotonic regression per class, one-vs-rest, renormalised, so a model whose scores are not
probabilities is still usable. A model already calibrated is used as it is, since isotonic
steps are overconfident at the extremes (its top block is often exactly 1), which biases
the estimates of windows whose inputs moved there.
The estimate is right when the relation between inputs and labels did not change (covariate
shift), which is what drift alone cannot tell apart from a real loss of accuracy: a window
whose inputs drifted but whose estimated accuracy held is probably fine; one whose
estimate fell is not.

Each estimate comes with an interval for the *realised* metric the labels will show:
labels drawn from the calibrated probabilities (``n_draws`` times) give the spread of the
metric a window of this size would realise, and its ``level`` quantiles are the interval.

References
----------
NannyML (2022). Confidence-based Performance Estimation (CBPE), documentation.
Zadrozny, B. and Elkan, C. (2002). Transforming classifier scores into accurate multiclass
probability estimates. *KDD*.

>>> rng = np.random.default_rng(0)
>>> def window(n, shift):
...     x = rng.normal(shift, 1, n)
...     p = 1 / (1 + np.exp(-2 * x))                  # the true P(y = 1 | x), also the model's
...     return x, p, (rng.random(n) < p).astype(int)
>>> x, p, y = window(5000, 0.0)
>>> est = CBPE(classes=[0, 1]).fit(y, np.column_stack([1 - p, p]))
>>> x, p, y = window(5000, 1.0)                       # the inputs moved; the concept did not
>>> e = est.estimate(np.column_stack([1 - p, p]), (p > 0.5).astype(int))
>>> round(e["accuracy"].value, 3), round(float(np.mean((p > 0.5) == y)), 3)
(0.842, 0.848)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vigil.params import check_count, check_probability, fail

__all__ = ["CBPE", "METRICS", "EstimatedMetric"]

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


@dataclass(frozen=True)
class EstimatedMetric:
    """An estimated metric and the interval of the value the labels will realise."""

    value: float | None
    low: float | None
    high: float | None
    level: float

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "level": self.level}


def _ratio(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    with np.errstate(invalid="ignore", divide="ignore"):
        out: npt.NDArray[np.float64] = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    return out


class CBPE:
    """Confidence-based performance estimation for a classifier.

    Parameters
    ----------
    classes
        The model's classes in ``predict_proba`` column order (binary: the second is the
        positive class for precision, recall and F1; more than two: macro averages).
    level
        Level of the interval of the realised metric.
    n_draws
        Label draws behind that interval.
    seed
        Seed of the draws.
    calibration_tolerance
        Expected calibration error on the reference above which the probabilities are
        recalibrated.
    """

    def __init__(
        self,
        classes: Sequence[Any],
        *,
        level: float = 0.95,
        n_draws: int = 500,
        seed: int = 0,
        calibration_tolerance: float = 0.02,
    ) -> None:
        self.classes = list(classes)
        self.level = level
        self.n_draws = n_draws
        self.seed = seed
        self.calibration_tolerance = calibration_tolerance

    def _check(self) -> None:
        if len(self.classes) < 2:
            fail("CBPE", "classes", "at least two classes", self.classes)
        check_probability("CBPE", "level", self.level)
        check_count("CBPE", "n_draws", self.n_draws, minimum=50)

    def fit(self, y_true: npt.ArrayLike, y_proba: npt.ArrayLike) -> CBPE:
        """Fit the calibration on reference rows: their labels and the model's
        probabilities (one column per class)."""
        from sklearn.isotonic import IsotonicRegression  # scikit-learn: fitted once

        from vigil.monitor.performance import expected_calibration_error

        self._check()
        proba = self._proba(y_proba)
        truth = np.asarray(y_true)
        if len(truth) != len(proba) or len(truth) == 0:
            fail("CBPE.fit", "y_true", f"one label per row ({len(proba)})", len(truth))
        self.reference_ece_ = expected_calibration_error(truth, proba, self.classes)
        self.calibrators_: list[Any] = []
        if self.reference_ece_ <= self.calibration_tolerance:
            return self
        for k, label in enumerate(self.classes):
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            iso.fit(proba[:, k], (truth == label).astype(np.float64))
            self.calibrators_.append(iso)
        return self

    def _proba(self, y_proba: npt.ArrayLike) -> npt.NDArray[np.float64]:
        proba = np.asarray(y_proba, dtype=np.float64)
        if proba.ndim != 2 or proba.shape[1] != len(self.classes):
            fail("CBPE", "y_proba", f"one column per class ({len(self.classes)})", proba.shape)
        if not np.isfinite(proba).all():
            fail("CBPE", "y_proba", "finite", "NaN or infinity")
        return proba

    def calibrated(self, y_proba: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The probabilities after calibration, rows summing to 1."""
        if not hasattr(self, "calibrators_"):
            fail("CBPE", "the estimator", "fitted on reference labels first (fit)", "unfitted")
        proba = self._proba(y_proba)
        if not self.calibrators_ or len(proba) == 0:
            return proba
        out = np.column_stack([iso.predict(proba[:, k]) for k, iso in enumerate(self.calibrators_)])
        total = out.sum(axis=1, keepdims=True)
        # A row every calibrator sends to 0 (never seen in the reference): keep the model's.
        safe: npt.NDArray[np.float64] = np.where(
            total > 0, out / np.where(total > 0, total, 1), proba
        )
        return safe

    def estimate(
        self, y_proba: npt.ArrayLike, y_pred: npt.ArrayLike | None = None
    ) -> dict[str, EstimatedMetric]:
        """Expected metrics of a window from its probabilities (and predictions: by default
        the most probable class), each with the interval of the realised value."""
        scores = self._proba(y_proba)  # the model's ranking, for the ROC AUC
        proba = self.calibrated(scores)
        n = len(proba)
        if y_pred is None:
            predicted = proba.argmax(axis=1)
        else:
            index = {c: k for k, c in enumerate(self.classes)}
            pred = np.asarray(y_pred)
            try:
                predicted = np.array([index[v] for v in pred.tolist()], dtype=np.int64)
            except KeyError as exc:
                fail("CBPE.estimate", "y_pred", f"one of the classes {self.classes}", exc.args[0])
        if n == 0:
            return {m: EstimatedMetric(None, None, None, self.level) for m in METRICS}
        onehot = np.eye(len(self.classes))[predicted]
        expected = self._metrics(proba.T @ onehot)  # confusion[true, predicted]
        expected["roc_auc"] = self._auc(scores, proba)
        draws = self._draws(scores, proba, onehot)
        return self._intervals(expected, draws)

    def estimate_binned(
        self, counts: npt.ArrayLike, sums: npt.ArrayLike
    ) -> tuple[dict[str, EstimatedMetric], float]:
        """The estimate of a binary classifier's window from a histogram of its rows instead
        of the rows: ``counts[j, b]`` rows predicted as class ``j`` whose probability of the
        positive (second) class fell in bin ``b`` of equal-width bins over [0, 1], and
        ``sums[j, b]`` the sum of those probabilities (a window summary keeps both,
        :class:`~vigil.monitor.score_bins.ScoreBins`).

        Returns the estimate and the bound of its difference from :meth:`estimate` on the
        rows. The expected accuracy, precision, recall and F1 are the rows' exactly when the
        probabilities are used as they are (a bin's sum is its rows' sum); recalibrated, a
        bin's rows share the calibration of its mean, which is off only in bins where the
        calibration bends, by at most its rise across the bin. The ROC AUC takes a bin's rows
        as tied, off by at most half the weight of the pairs within one bin. The bound is
        the sum of those, as a share of the expected confusion counts (an error of
        ``e`` rows moves each ratio by at most ``2e / denominator``: see
        ``tests/monitor/test_estimated_binned.py``). The interval draws each bin's positives
        from a binomial at its mean (the rows' Poisson-binomial has a spread at most that).
        """
        if len(self.classes) != 2:
            fail("CBPE.estimate_binned", "classes", "two classes (binary)", self.classes)
        n = np.asarray(counts, dtype=np.float64)
        total = np.asarray(sums, dtype=np.float64)
        if n.ndim != 2 or n.shape[0] != 2 or total.shape != n.shape:
            fail("CBPE.estimate_binned", "counts", "two rows of bins, sums alike", n.shape)
        bins = n.shape[1]
        if n.sum() == 0:
            return {m: EstimatedMetric(None, None, None, self.level) for m in METRICS}, 0.0
        mean = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
        edges = np.linspace(0.0, 1.0, bins + 1)
        if self.calibrators_:
            positive = n * self._calibrated_positive(mean)
            rise = self._calibrated_positive(edges)
            off = float((n * np.diff(rise)[None, :]).sum())
        else:
            positive, off = total, 0.0
        confusion = np.stack([n.sum(axis=1) - positive.sum(axis=1), positive.sum(axis=1)])
        expected = self._metrics(confusion)  # confusion[true, predicted]
        pos_bin, neg_bin = positive.sum(axis=0), (n - positive).sum(axis=0)
        auc, tied = _binned_auc(pos_bin[None, :], neg_bin[None, :])
        expected["roc_auc"] = float(auc[0]) if np.isfinite(auc[0]) else None
        # Both errors can meet in the ROC AUC (weights off and ties): their sum bounds all.
        bound = 2 * off / max(min(confusion.sum(axis=0).min(), confusion.sum(axis=1).min()), 1)
        bound += float(tied[0])
        rng = np.random.default_rng(self.seed)
        p = np.divide(positive, n, out=np.zeros_like(positive), where=n > 0).clip(0, 1)
        drawn = rng.binomial(n.astype(np.int64)[None], p[None], size=(self.n_draws, *n.shape))
        drawn = drawn.astype(np.float64)
        confusions = np.stack([n.sum(axis=1)[None] - drawn.sum(axis=2), drawn.sum(axis=2)], 1)
        draws = self._batch_metrics(confusions)
        draws["roc_auc"], _ = _binned_auc(drawn.sum(axis=1), (n[None] - drawn).sum(axis=1))
        return self._intervals(expected, draws), bound

    def _intervals(
        self, expected: Mapping[str, float | None], draws: Mapping[str, npt.NDArray[np.float64]]
    ) -> dict[str, EstimatedMetric]:
        """Each metric's expected value with the central ``level`` interval of its draws
        (``None`` throughout where either is undefined)."""
        tail = (1 - self.level) / 2
        out = {}
        for name in METRICS:
            values = draws[name][np.isfinite(draws[name])]
            value = expected[name]
            if value is None or not np.isfinite(value) or len(values) == 0:
                out[name] = EstimatedMetric(None, None, None, self.level)
                continue
            low, high = np.quantile(values, [tail, 1 - tail])
            out[name] = EstimatedMetric(float(value), float(low), float(high), self.level)
        return out

    def _calibrated_positive(self, p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The calibrated probability of the positive class of rows whose model gives it
        ``p`` (and the other class ``1 - p``)."""
        flat = p.reshape(-1)
        both = self.calibrated(np.column_stack([1 - flat, flat]))
        out: npt.NDArray[np.float64] = both[:, 1].reshape(p.shape)
        return out

    def _metrics(self, confusion: npt.NDArray[np.float64]) -> dict[str, float | None]:
        """Accuracy, precision, recall, F1 of a (possibly fractional) confusion matrix."""
        batched = confusion[None] if confusion.ndim == 2 else confusion
        out = self._batch_metrics(batched)
        return {k: float(v[0]) for k, v in out.items()}

    def _batch_metrics(self, c: npt.NDArray[np.float64]) -> dict[str, npt.NDArray[np.float64]]:
        n = c.sum(axis=(1, 2))
        diagonal = np.diagonal(c, axis1=1, axis2=2)
        precision = _ratio(diagonal, c.sum(axis=1))  # over predicted
        recall = _ratio(diagonal, c.sum(axis=2))  # over true
        f1 = _ratio(2 * precision * recall, precision + recall)
        if len(self.classes) == 2:
            precision, recall, f1 = precision[:, 1], recall[:, 1], f1[:, 1]
        else:
            precision, recall, f1 = precision.mean(1), recall.mean(1), f1.mean(1)
        return {
            "accuracy": _ratio(diagonal.sum(axis=1), n),
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }

    def _auc(
        self, scores: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]
    ) -> float | None:
        """ROC AUC of ``scores`` with each row a positive of weight ``w`` and a negative of
        ``1 - w`` (one-vs-rest macro average for more than two classes)."""
        from sklearn.metrics import roc_auc_score  # scikit-learn: the weighted AUC

        columns = [1] if len(self.classes) == 2 else range(len(self.classes))
        aucs = []
        for k in columns:
            w = weights[:, k]
            if w.sum() <= 0 or (1 - w).sum() <= 0:
                return None
            both = np.concatenate([scores[:, k], scores[:, k]])
            truth = np.concatenate([np.ones(len(w)), np.zeros(len(w))])
            aucs.append(roc_auc_score(truth, both, sample_weight=np.concatenate([w, 1 - w])))
        return float(np.mean(aucs))

    def _draws(
        self,
        scores: npt.NDArray[np.float64],
        proba: npt.NDArray[np.float64],
        onehot: npt.NDArray[np.float64],
    ) -> dict[str, npt.NDArray[np.float64]]:
        """Realised metrics under labels drawn from the calibrated probabilities."""
        from scipy.stats import rankdata  # SciPy: the ranks behind every drawn ROC AUC

        rng = np.random.default_rng(self.seed)
        k = len(self.classes)
        cumulative = proba.cumsum(axis=1)
        confusions = np.empty((self.n_draws, k, k))
        columns = [1] if k == 2 else list(range(k))
        # Mann-Whitney: a class's AUC is its positives' rank sum, less the least it can be,
        # over the pairs; the scores' ranks (ties averaged) are computed once.
        ranks = [rankdata(scores[:, c]) for c in columns]
        aucs = np.empty((self.n_draws, len(columns)))
        for d in range(self.n_draws):
            u = rng.random(len(proba))[:, None]
            truth = np.minimum((u > cumulative).sum(axis=1), k - 1)
            truth_onehot = np.eye(k)[truth]
            confusions[d] = truth_onehot.T @ onehot
            for j, c in enumerate(columns):
                positive = truth == c
                n1 = int(positive.sum())
                n0 = len(truth) - n1
                if n1 == 0 or n0 == 0:
                    aucs[d, j] = np.nan
                else:
                    aucs[d, j] = (ranks[j][positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
        out = self._batch_metrics(confusions)
        out["roc_auc"] = aucs.mean(axis=1)
        return out


def _binned_auc(
    positive: npt.NDArray[np.float64], negative: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """ROC AUC of rows binned by score (one row per draw: positive and negative weight per
    bin, bins in score order; a bin's rows tied), and half the share of the pairs within a
    bin (how far untying them could move it)."""
    below = np.cumsum(negative, axis=1) - negative  # negatives in lower bins
    pairs = positive.sum(axis=1) * negative.sum(axis=1)
    wins = (positive * (below + 0.5 * negative)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1), np.nan)
        tied = np.where(
            pairs > 0, 0.5 * (positive * negative).sum(axis=1) / np.where(pairs > 0, pairs, 1), 0.0
        )
    return auc, tied
