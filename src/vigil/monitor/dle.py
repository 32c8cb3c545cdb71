"""A regressor's error before labels arrive: direct loss estimation (DLE).

A regressor says nothing of its own error, so a second model learns it: on labelled
reference rows, gradient-boosted trees are fitted to predict each row's absolute error
``|y - ŷ|`` and its squared error ``(y - ŷ)²`` from the row's features and the model's
prediction ``ŷ``. A window's estimated MAE is the mean of the predicted absolute errors of
its rows, its estimated RMSE the square root of the mean of their predicted squared errors
(NannyML's direct loss estimation). Like CBPE it is right when the relation between
inputs and labels held (covariate shift): the loss model knows where in the input space
the regressor errs, and a window that moved there gets a higher estimate.

Each estimate comes with an interval for the *realised* value the labels will show. The
realised MAE differs from the estimate by the mean, over the window's rows, of the loss
model's residual ``|y - ŷ| - l̂(x)``; its spread is measured on the reference out of fold
(``folds``-fold cross-fitting, so on rows the loss model did not see), ``s``. The interval
is ``estimate ± z · s · sqrt(1/n + 1/n_ref)``: the first term is the window's own noise,
the second the loss model's error, which does not average out over a window since one
model judges every row (of the order of its error on the ``n_ref`` reference rows). For
the RMSE the same is done for the mean squared error and the bounds are square-rooted.

The learner is scikit-learn's ``HistGradientBoostingRegressor`` with LightGBM's default
shape (100 trees of at most 31 leaves, learning rate 0.1, at least 20 rows per leaf, 255
bins), which NannyML fits through LightGBM itself; any scikit-learn regressor can be
passed instead (``regressor``). Text features are categories (the reference's 254 most
frequent; others, and values never seen, count as missing).

References
----------
NannyML (2023). Direct Loss Estimation (DLE), documentation.

>>> import pandas as pd
>>> rng = np.random.default_rng(0)
>>> def window(n, shift):
...     x = rng.normal(shift, 1, n)
...     y = 2 * x + rng.normal(0, 0.2 + 0.5 * np.abs(x))   # noisier away from 0
...     return pd.DataFrame({"x": x}), 2 * x, y
>>> X, pred, y = window(5000, 0.0)
>>> dle = DLE().fit(X, pred, y)
>>> X, pred, y = window(5000, 1.5)                       # the inputs moved where it errs
>>> e = dle.estimate(X, pred)["mae"]
>>> round(e.value, 2), round(float(np.mean(np.abs(y - pred))), 2)
(0.76, 0.78)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from vigil.monitor.estimated import EstimatedMetric
from vigil.params import check_count, check_probability, fail

__all__ = ["DLE", "REGRESSION_METRICS"]

REGRESSION_METRICS = ("mae", "rmse")
PREDICTION = "__prediction__"
"""The loss model's column holding the regressor's prediction."""
MAX_CATEGORIES = 254
"""Categories kept per text feature (the learner bins at most 255 values, one for missing)."""


def _default_regressor(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor  # scikit-learn: fitted once

    return HistGradientBoostingRegressor(
        max_iter=100,
        learning_rate=0.1,
        max_leaf_nodes=31,
        min_samples_leaf=20,
        early_stopping=False,
        categorical_features="from_dtype",
        random_state=seed,
    )


class DLE:
    """Direct loss estimation of a regressor's MAE and RMSE.

    Parameters
    ----------
    level
        Level of the interval of the realised metric.
    folds
        Folds of the cross-fitting that measures the loss model's residual spread.
    seed
        Seed of the folds and of the learner.
    regressor
        A scikit-learn regressor to clone as the loss model (default: gradient-boosted
        trees shaped as LightGBM's defaults).
    """

    def __init__(
        self, *, level: float = 0.95, folds: int = 3, seed: int = 0, regressor: Any = None
    ) -> None:
        self.level = level
        self.folds = folds
        self.seed = seed
        self.regressor = regressor

    def _learner(self) -> Any:
        from sklearn.base import clone

        if self.regressor is None:
            return _default_regressor(self.seed)
        return clone(self.regressor)

    def _frame(self, X: pd.DataFrame, y_pred: npt.ArrayLike) -> pd.DataFrame:
        pred = np.asarray(y_pred, dtype=np.float64)
        if len(pred) != len(X):
            fail("DLE", "y_pred", f"one prediction per row ({len(X)})", len(pred))
        data: dict[str, Any] = {}
        for name in self.features_:
            column = X[name] if name in X else pd.Series([None] * len(X), index=X.index)
            if name in self.categories_:
                known = set(self.categories_[name])
                text = (None if pd.isna(v) else str(v) for v in column.tolist())
                data[name] = pd.Categorical(
                    [v if v in known else None for v in text], categories=self.categories_[name]
                )
            else:
                data[name] = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
        data[PREDICTION] = pred
        return pd.DataFrame(data, index=range(len(X)))

    def fit(self, X: pd.DataFrame, y_pred: npt.ArrayLike, y_true: npt.ArrayLike) -> DLE:
        """Fit the loss models on reference rows: their features, the regressor's
        predictions and the labels."""
        from sklearn.model_selection import KFold
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        check_probability("DLE", "level", self.level)
        check_count("DLE", "folds", self.folds, minimum=2)
        truth = np.asarray(y_true, dtype=np.float64)
        pred = np.asarray(y_pred, dtype=np.float64)
        if len(truth) != len(X) or len(pred) != len(X) or len(X) < 2 * self.folds:
            fail("DLE.fit", "y_true", f"one label per row, at least {2 * self.folds}", len(truth))
        if not (np.isfinite(truth).all() and np.isfinite(pred).all()):
            fail("DLE.fit", "y_true", "finite labels and predictions", "NaN or infinity")
        self.features_ = [str(c) for c in X.columns]
        self.categories_: dict[str, list[str]] = {}
        for name in self.features_:
            column = X[name]
            if pd.to_numeric(column, errors="coerce").notna().sum() < column.notna().sum():
                counts = column.dropna().astype(str).value_counts(sort=True)
                self.categories_[name] = sorted(counts.index[:MAX_CATEGORIES].tolist())
        frame = self._frame(X, pred)
        losses = {"mae": np.abs(truth - pred), "rmse": (truth - pred) ** 2}
        self.models_: dict[str, Any] = {}
        self.residual_sd_: dict[str, float] = {}
        folds = KFold(self.folds, shuffle=True, random_state=self.seed)
        # One thread: on small reference samples OpenMP's threads cost more than they give,
        # and ten times more on a loaded machine.
        with threadpool_limits(1):
            self._fit_losses(frame, losses, folds)
        self.n_reference_ = len(frame)
        return self

    def _fit_losses(
        self, frame: pd.DataFrame, losses: dict[str, npt.NDArray[np.float64]], folds: Any
    ) -> None:
        for name, loss in losses.items():
            out_of_fold = np.empty(len(loss))
            for train, test in folds.split(frame):
                model = self._learner().fit(frame.iloc[train], loss[train])
                out_of_fold[test] = model.predict(frame.iloc[test])
            self.residual_sd_[name] = float(np.std(loss - out_of_fold, ddof=1))
            self.models_[name] = self._learner().fit(frame, loss)

    def estimate(self, X: pd.DataFrame, y_pred: npt.ArrayLike) -> dict[str, EstimatedMetric]:
        """Expected MAE and RMSE of a window from its features and predictions, each with
        the interval of the realised value."""
        from scipy.stats import norm  # SciPy: the interval's normal quantile
        from threadpoolctl import threadpool_limits

        if not hasattr(self, "models_"):
            fail("DLE", "the estimator", "fitted on reference labels first (fit)", "unfitted")
        frame = self._frame(X, y_pred)
        n = len(frame)
        if n == 0:
            return {m: EstimatedMetric(None, None, None, self.level) for m in REGRESSION_METRICS}
        z = float(norm.ppf(0.5 + self.level / 2))
        with threadpool_limits(1):
            predicted = {m: self.models_[m].predict(frame) for m in REGRESSION_METRICS}
        out = {}
        for name in REGRESSION_METRICS:
            # A loss is never negative; trees extrapolate flat, but clip what noise leaves.
            mean = float(np.clip(predicted[name], 0, None).mean())
            half = z * self.residual_sd_[name] * np.sqrt(1 / n + 1 / self.n_reference_)
            low, high = max(mean - half, 0.0), mean + half
            if name == "rmse":
                mean, low, high = np.sqrt(mean), np.sqrt(low), np.sqrt(high)
            out[name] = EstimatedMetric(float(mean), float(low), float(high), self.level)
        return out
