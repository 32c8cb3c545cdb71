"""Every explainer against ``shap`` on the same model and data, and their additivity.

Exact paths (linear, scikit-learn trees, XGBoost's and LightGBM's contributions) equal
shap's values to 1e-6; the permutation estimate is within 0.02 (probability units) of
exact Shapley values (shap's KernelExplainer enumerating every coalition of the same
background). Each adds up to the model's own output in the space it names.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC
from tests.explain.conftest import NAMES, Bundler

from vigil.errors import NotExplainableError
from vigil.explain.explainers import (
    ExplainLimits,
    XGBoostExplainer,
    explain,
    explainer_for,
    import_shap,
)

shap = import_shap()

EXACT = 1e-6
rows = slice(0, 20)


def _shap_linear(estimator: Any, mean: np.ndarray, X: np.ndarray) -> Any:
    masker = shap.maskers.Independent(mean[None, :], max_samples=1)
    return shap.LinearExplainer(estimator, masker)(X)


def test_linear_regression_is_closed_form_against_the_reference_mean(
    regression: tuple[pd.DataFrame, Any], bundled: Bundler
) -> None:
    X, y = regression
    model = LinearRegression().fit(X, y)
    bundle = bundled(model, X)
    explainer = explainer_for(bundle)
    assert (explainer.method, explainer.output, explainer.exact) == ("linear", "value", True)
    got = explain(explainer, X.to_numpy()[rows])
    want = _shap_linear(model, X.to_numpy().mean(axis=0), X.to_numpy()[rows])
    np.testing.assert_allclose(got.values, want.values, atol=EXACT)
    np.testing.assert_allclose(got.base_values, want.base_values, atol=EXACT)
    np.testing.assert_allclose(got.outputs, model.predict(X.iloc[rows]), atol=EXACT)
    assert got.labels is None


def test_binary_logistic_regression_in_log_odds_either_class(
    binary: tuple[pd.DataFrame, Any], bundled: Bundler
) -> None:
    X, y = binary
    model = LogisticRegression().fit(X, y)
    explainer = explainer_for(bundled(model, X))
    assert explainer.output == "log-odds"
    want = _shap_linear(model, X.to_numpy().mean(axis=0), X.to_numpy()[rows])
    positive = explain(explainer, X.to_numpy()[rows])  # the positive class by default
    assert positive.labels == [1] * 20
    np.testing.assert_allclose(positive.values, want.values, atol=EXACT)
    np.testing.assert_allclose(positive.outputs, model.decision_function(X.iloc[rows]), atol=EXACT)
    negative = explain(explainer, X.to_numpy()[rows], label=0)
    np.testing.assert_allclose(negative.values, -want.values, atol=EXACT)
    np.testing.assert_allclose(negative.outputs, -model.decision_function(X.iloc[rows]))


def test_multiclass_logistic_regression_explains_each_rows_predicted_class(
    three_classes: tuple[pd.DataFrame, Any], bundled: Bundler
) -> None:
    X, y = three_classes
    model = LogisticRegression(max_iter=500).fit(X, y)
    explainer = explainer_for(bundled(model, X))
    assert explainer.output == "margin"
    got = explain(explainer, X.to_numpy()[rows])
    predicted = model.predict(X.iloc[rows])
    assert got.labels == predicted.tolist()
    want = _shap_linear(model, X.to_numpy().mean(axis=0), X.to_numpy()[rows])
    picked = want.values[np.arange(20), :, predicted]
    np.testing.assert_allclose(got.values, picked, atol=EXACT)
    margins = model.decision_function(X.iloc[rows])[np.arange(20), predicted]
    np.testing.assert_allclose(got.outputs, margins, atol=EXACT)


def test_forest_in_probability_space(
    three_classes: tuple[pd.DataFrame, Any], bundled: Bundler
) -> None:
    X, y = three_classes
    model = RandomForestClassifier(n_estimators=15, max_depth=4, random_state=0).fit(X, y)
    explainer = explainer_for(bundled(model, X))
    assert (explainer.method, explainer.output) == ("tree", "probability")
    got = explain(explainer, X.to_numpy()[rows], label=2)
    want = shap.TreeExplainer(model).shap_values(X.to_numpy()[rows])[:, :, 2]
    np.testing.assert_allclose(got.values, want, atol=EXACT)
    np.testing.assert_allclose(got.outputs, model.predict_proba(X.iloc[rows])[:, 2], atol=EXACT)


def test_gradient_boosting_in_log_odds_and_regression_value(
    binary: tuple[pd.DataFrame, Any],
    regression: tuple[pd.DataFrame, Any],
    bundled: Bundler,
) -> None:
    X, y = binary
    model = GradientBoostingClassifier(n_estimators=15, random_state=0).fit(X, y)
    explainer = explainer_for(bundled(model, X))
    assert explainer.output == "log-odds"
    got = explain(explainer, X.to_numpy()[rows])
    np.testing.assert_allclose(
        got.values, shap.TreeExplainer(model).shap_values(X.to_numpy()[rows]), atol=EXACT
    )
    np.testing.assert_allclose(got.outputs, model.decision_function(X.iloc[rows]), atol=EXACT)
    Xr, yr = regression
    regressor = GradientBoostingRegressor(n_estimators=15, random_state=0).fit(Xr, yr)
    got = explain(explainer_for(bundled(regressor, Xr)), Xr.to_numpy()[rows])
    np.testing.assert_allclose(got.outputs, regressor.predict(Xr.iloc[rows]), atol=1e-6)


@pytest.mark.parametrize("data", ["binary", "three_classes"])
def test_xgboost_contributions_equal_shaps_tree_explainer(
    data: str, request: pytest.FixtureRequest, bundled: Bundler
) -> None:
    X, y = request.getfixturevalue(data)
    model = xgb.XGBClassifier(n_estimators=15, max_depth=3, random_state=0, n_jobs=1).fit(X, y)
    bundle = bundled(model, X)
    served = explainer_for(bundle)
    assert served.method == "xgboost"
    assert served.output == ("log-odds" if data == "binary" else "margin")
    # XGBoost's own TreeSHAP, built directly too: the values do not depend on how.
    native = XGBoostExplainer(bundle.model, NAMES, served.classes, served.output)
    k = len(np.unique(y))
    want = np.asarray(shap.TreeExplainer(model).shap_values(X.to_numpy()[rows]))
    margins = model.predict(X.iloc[rows], output_margin=True)
    for explainer in (served, native):
        for label in range(k) if k > 2 else [0, 1]:
            got = explain(explainer, X.to_numpy()[rows], label=label)
            expected = (want if label else -want) if want.ndim == 2 else want[:, :, label]
            # XGBoost computes in float32: equal to shap's float64 within float32 rounding.
            np.testing.assert_allclose(got.values, expected, atol=EXACT, rtol=1e-5)
            margin = (margins if label else -margins) if margins.ndim == 1 else margins[:, label]
            np.testing.assert_allclose(got.outputs, margin, atol=1e-5)


@pytest.mark.parametrize("data", ["binary", "three_classes", "regression"])
def test_lightgbm_contributions_equal_shaps_tree_explainer(
    data: str, request: pytest.FixtureRequest, bundled: Bundler
) -> None:
    X, y = request.getfixturevalue(data)
    kind = lgb.LGBMRegressor if data == "regression" else lgb.LGBMClassifier
    model = kind(n_estimators=15, num_leaves=7, min_child_samples=5, verbose=-1, n_jobs=1).fit(X, y)
    explainer = explainer_for(bundled(model, X))
    assert explainer.method == "lightgbm"
    want = np.asarray(shap.TreeExplainer(model.booster_)(X.to_numpy()[rows]).values)
    raw = model.predict(X.iloc[rows], raw_score=True)
    label = 2 if data == "three_classes" else None
    got = explain(explainer, X.to_numpy()[rows], label=label)
    expected = want if want.ndim == 2 else want[:, :, 2]
    np.testing.assert_allclose(got.values, expected, atol=EXACT)
    np.testing.assert_allclose(got.outputs, raw if raw.ndim == 1 else raw[:, 2], atol=EXACT)


def test_permutation_estimate_is_near_exact_shapley_and_adds_up(
    three_classes: tuple[pd.DataFrame, Any], bundled: Bundler
) -> None:
    X, y = three_classes
    model = KNeighborsClassifier(n_neighbors=7).fit(X, y)
    background = X.iloc[:32]
    limits = ExplainLimits(max_evals=2_000, background_rows=32)
    explainer = explainer_for(bundled(model, X), background=background, limits=limits)
    assert (explainer.method, explainer.output, explainer.exact) == (
        "permutation",
        "probability",
        False,
    )
    some = X.to_numpy()[100:106]
    got = explain(explainer, some, label=1)

    # Exact Shapley values over the same background: 5 features, every coalition.
    def proba(a: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_proba(pd.DataFrame(a, columns=X.columns)))

    kernel = shap.KernelExplainer(proba, background.to_numpy())
    exact = np.asarray(kernel.shap_values(some, nsamples=2**5, silent=True))[:, :, 1]
    assert np.abs(got.values - exact).max() < 0.02
    np.testing.assert_allclose(got.base_values, model.predict_proba(background)[:, 1].mean())
    np.testing.assert_allclose(got.outputs, proba(some)[:, 1], atol=1e-12)


def test_permutation_uses_the_stored_reference_sample(
    regression: tuple[pd.DataFrame, Any], bundled: Bundler
) -> None:
    X, y = regression
    from sklearn.neighbors import KNeighborsRegressor

    model = KNeighborsRegressor().fit(X, y)
    bundle = bundled(model, X)
    explainer = explainer_for(bundle, limits=ExplainLimits(max_evals=64, background_rows=16))
    got = explain(explainer, X.to_numpy()[:3])
    np.testing.assert_allclose(got.outputs, model.predict(X.iloc[:3]), atol=1e-9)
    assert explainer.background.shape == (16, 5)  # type: ignore[attr-defined]


def test_bad_requests_are_refused_with_what_to_do(
    binary: tuple[pd.DataFrame, Any],
    regression: tuple[pd.DataFrame, Any],
    bundled: Bundler,
) -> None:
    X, y = binary
    explainer = explainer_for(bundled(LogisticRegression().fit(X, y), X))
    with pytest.raises(NotExplainableError, match=r"unknown class 'spam'.*\[0, 1\]"):
        explain(explainer, X.to_numpy()[:1], label="spam")
    Xr, yr = regression
    linear = explainer_for(bundled(LinearRegression().fit(Xr, yr), Xr))
    with pytest.raises(NotExplainableError, match="regressor"):
        explain(linear, Xr.to_numpy()[:1], label=1)
    no_proba = bundled(SVC().fit(X, y), X)
    with pytest.raises(NotExplainableError, match="no class probabilities"):
        explainer_for(no_proba)
    knn = bundled(KNeighborsClassifier().fit(X, y), X)
    knn.profile = None  # as if registered without reference data
    with pytest.raises(NotExplainableError, match="reference"):
        explainer_for(knn)
