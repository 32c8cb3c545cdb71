"""scikit-learn's own arithmetic for linear models, without its per-call input checks.

A served model's rows were already validated by vigil (its signature: names, order,
types, what may be missing) and arrive as one float64 matrix. scikit-learn checks them
again on every call (``validate_data``: namespace and dtype dispatch, finiteness, feature
names), a fixed cost in Python per call whatever its size, many times the arithmetic
of a linear model on a micro-batch. For the linear models whose prediction is one matrix
product, :func:`linear_fast_path` does that product exactly as scikit-learn does
(``X @ coef_.T + intercept_``, then the same ``expit``/``softmax``/``argmax``), so the
answers are the same bits (``tests/bundle/test_sklearn_fast.py`` checks them against
``predict`` and ``predict_proba`` on the same rows). Anything else goes the estimator's
own way: another type or a subclass, sparse or non-float64 coefficients, an input that is
not a float64 matrix of the fitted width, and any row whose scores are not finite (a
missing value, an infinity), so that scikit-learn raises what it raises.

>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
>>> model = LogisticRegression().fit(X, [0, 0, 1, 1])
>>> fast = linear_fast_path(model)
>>> bool((fast.predict(X) == model.predict(X)).all())
True
>>> bool((fast.predict_proba(X) == model.predict_proba(X)).all())
True
>>> fast.predict(np.array([[np.nan, 1.0]])) is None  # scikit-learn's way: it raises
True
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


class LinearFastPath:
    """Predictions of a fitted linear model from a validated float64 matrix, or ``None``
    when the input must go through the estimator (see the module docstring)."""

    __slots__ = ("_classes", "_coef_t", "_intercept", "_proba", "_width")

    def __init__(self, estimator: Any, *, classifier: bool, proba: bool) -> None:
        coef = estimator.coef_
        self._coef_t = coef.T if coef.ndim == 2 else coef
        self._intercept = estimator.intercept_
        self._width = int(estimator.n_features_in_)
        self._classes = estimator.classes_ if classifier else None
        self._proba = proba

    def _scores(self, X: Any) -> np.ndarray[Any, Any] | None:
        if (
            type(X) is not np.ndarray
            or X.dtype != np.float64
            or X.ndim != 2
            or X.shape[1] != self._width
        ):
            return None
        scores: np.ndarray[Any, Any] = X @ self._coef_t + self._intercept
        # A NaN or an infinity in X makes its row's scores non-finite: the estimator
        # raises on such input, so it gets to.
        if not np.isfinite(scores).all():
            return None
        if self._classes is not None and scores.ndim > 1 and scores.shape[1] == 1:
            scores = scores.reshape(-1)  # a binary classifier's one column
        return scores

    def predict(self, X: Any) -> np.ndarray[Any, Any] | None:
        scores = self._scores(X)
        if scores is None or self._classes is None:
            return scores
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        return self._classes.take(indices, axis=0)  # type: ignore[no-any-return]

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any] | None:
        if not self._proba:
            return None
        scores = self._scores(X)
        if scores is None:
            return None
        from scipy.special import expit  # loaded with scikit-learn already

        if scores.ndim == 1:  # binary: LinearClassifierMixin._predict_proba_lr
            positive = expit(scores, out=scores)
            return np.stack([1 - positive, positive], axis=1)
        # multinomial: sklearn.utils.extmath.softmax
        scores -= scores.max(axis=1).reshape((-1, 1))
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1).reshape((-1, 1))
        return scores


def linear_fast_path(estimator: Any) -> LinearFastPath | None:
    """The fast path of a fitted ``LogisticRegression``, ``LinearRegression`` or ``Ridge``
    (exactly these types: a subclass may predict otherwise), else ``None``."""
    # Never imported here: a model of these types has loaded the module already, and
    # importing it for a tree would cost a cold start a good part of a second.
    linear = sys.modules.get("sklearn.linear_model")
    kind = type(estimator)
    if linear is None or kind not in (
        linear.LogisticRegression,
        linear.LinearRegression,
        linear.Ridge,
    ):
        return None
    coef = getattr(estimator, "coef_", None)
    intercept = getattr(estimator, "intercept_", None)
    if (
        type(coef) is not np.ndarray
        or coef.dtype != np.float64
        or getattr(estimator, "n_features_in_", None) is None
        or not isinstance(intercept, np.ndarray | float)
    ):
        return None  # unfitted, sparse (sparsify()) or another dtype
    if kind is linear.LogisticRegression:
        return LinearFastPath(estimator, classifier=True, proba=True)
    return LinearFastPath(estimator, classifier=False, proba=False)
