"""The linear models' fast path gives scikit-learn's own answers, bit for bit, and leaves
to scikit-learn every input it would refuse or treat otherwise."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vigil.bundle.flavors.sklearn import SklearnModel
from vigil.bundle.flavors.sklearn_fast import linear_fast_path


def _classification(classes: int) -> tuple[np.ndarray, np.ndarray]:
    return make_classification(
        n_samples=300, n_features=8, n_informative=5, n_classes=classes, random_state=0
    )


def _rows(X: np.ndarray) -> list[np.ndarray]:
    """One row, a micro-batch and every row: the calls a server makes."""
    return [X[:1], X[:64], X]


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("labels", ["ints", "strings"])
def test_logistic_regression_same_bits_as_predict_and_predict_proba(
    classes: int, labels: str
) -> None:
    X, y = _classification(classes)
    target = np.array(["no", "maybe", "yes"])[y] if labels == "strings" else y * 3 - 1
    model = LogisticRegression(max_iter=500).fit(X, target)
    fast = linear_fast_path(model)
    assert fast is not None
    for rows in _rows(X * 1.7 - 0.3):
        predicted, proba = fast.predict(rows), fast.predict_proba(rows)
        assert predicted is not None and proba is not None
        np.testing.assert_array_equal(predicted, model.predict(rows), strict=True)
        np.testing.assert_array_equal(proba, model.predict_proba(rows), strict=True)


@pytest.mark.parametrize(
    "model",
    [
        LinearRegression(),
        LinearRegression(fit_intercept=False),
        Ridge(alpha=0.5),
    ],
    ids=["linear", "linear-no-intercept", "ridge"],
)
@pytest.mark.parametrize("targets", [1, 2])
def test_linear_regressors_same_bits_as_predict(model: object, targets: int) -> None:
    X, y = make_regression(n_samples=200, n_features=6, n_targets=targets, random_state=0)
    model.fit(X, y)  # type: ignore[attr-defined]
    fast = linear_fast_path(model)
    assert fast is not None and fast.predict_proba(X) is None
    for rows in _rows(X):
        np.testing.assert_array_equal(fast.predict(rows), model.predict(rows), strict=True)  # type: ignore[attr-defined]


def test_a_regressor_fitted_on_a_one_column_target_keeps_its_column() -> None:
    X, y = make_regression(n_samples=100, n_features=4, random_state=0)
    model = LinearRegression().fit(X, y.reshape(-1, 1))
    fast = linear_fast_path(model)
    assert fast is not None
    np.testing.assert_array_equal(fast.predict(X[:5]), model.predict(X[:5]), strict=True)


def test_inputs_scikit_learn_refuses_or_converts_go_its_way() -> None:
    X, y = _classification(2)
    model = LogisticRegression().fit(X, y)
    fast = linear_fast_path(model)
    assert fast is not None
    with_nan = X[:4].copy()
    with_nan[2, 3] = np.nan
    with_inf = X[:4].copy()
    with_inf[0, 0] = np.inf
    for refused in (with_nan, with_inf):
        assert fast.predict(refused) is None and fast.predict_proba(refused) is None
        with pytest.raises(ValueError, match=r"NaN|infinity"):
            SklearnModel(model).predict(refused)
    ints = np.arange(16).reshape(2, 8)
    assert fast.predict(ints) is None  # scikit-learn converts: let it
    served = SklearnModel(model)
    np.testing.assert_array_equal(served.predict(ints), model.predict(ints))
    np.testing.assert_array_equal(served.predict_proba(ints), model.predict_proba(ints))
    assert fast.predict(X[:, :5]) is None  # the wrong width: scikit-learn's error
    with pytest.raises(ValueError, match="features"):
        served.predict(X[:, :5])
    assert fast.predict(X[:3].tolist()) is None


def test_a_model_fitted_on_a_frame_answers_its_columns_in_the_fitted_order() -> None:
    X, y = _classification(3)
    names = [f"feature {i}" for i in range(8)]
    frame = pd.DataFrame(X, columns=names)
    model = LogisticRegression(max_iter=500).fit(frame, y)
    served = SklearnModel(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        predicted = served.predict(X[:64])
        proba = served.predict_proba(X[:64])
    np.testing.assert_array_equal(predicted, model.predict(frame.iloc[:64]))
    np.testing.assert_array_equal(proba, model.predict_proba(frame.iloc[:64]))
    # A frame in another column order is put back in the fitted one, as before.
    shuffled = frame.iloc[:64, ::-1]
    np.testing.assert_array_equal(served.predict(shuffled), model.predict(frame.iloc[:64]))


def test_other_estimators_have_no_fast_path() -> None:
    X, y = _classification(2)

    class Custom(LogisticRegression):
        def predict(self, X: object) -> np.ndarray:
            return np.zeros(len(X))  # type: ignore[arg-type]

    sparse_coef = LogisticRegression().fit(X, y).sparsify()
    assert sparse.issparse(sparse_coef.coef_)
    for model in (
        Custom().fit(X, y),
        sparse_coef,
        SGDClassifier(random_state=0).fit(X, y),
        make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
        LogisticRegression(),  # not fitted
    ):
        assert linear_fast_path(model) is None
    custom = Custom().fit(X, y)
    np.testing.assert_array_equal(SklearnModel(custom).predict(X[:3]), np.zeros(3))
