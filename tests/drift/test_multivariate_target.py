"""Multivariate drift (domain classifier, PCA reconstruction) and prediction/label drift."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from vigil.drift.multivariate import domain_classifier, pca_reconstruction
from vigil.drift.target import label_drift, prediction_drift, prediction_drift_to_profile
from vigil.profile_schema import CategoricalProfile


def correlated(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    cov = [[1.0, rho, 0.0], [rho, 1.0, 0.0], [0.0, 0.0, 1.0]]
    return rng.multivariate_normal(np.zeros(3), cov, size=n)


def test_domain_classifier_auc_equals_sklearn_cv() -> None:
    rng = np.random.default_rng(0)
    ref, cur = correlated(rng, 400, 0.0), correlated(rng, 400, 0.9)  # same marginals
    res = domain_classifier(ref, cur, seed=3, n_splits=3)
    x = np.vstack([ref, cur])
    y = np.r_[np.zeros(400), np.ones(400)]
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=3)
    with threadpool_limits(limits=1, user_api="openmp"):  # as vigil does: no oversubscription
        expected = cross_val_score(
            HistGradientBoostingClassifier(max_iter=100, random_state=3),
            x,
            y,
            cv=cv,
            scoring="roc_auc",
        ).mean()
    assert res.statistic == pytest.approx(expected)
    assert res.drifted and res.statistic > 0.6
    assert res.threshold == pytest.approx(max(0.55, 0.5 + 3 * np.sqrt(801 / (12 * 400 * 400))))


def test_domain_classifier_no_drift_and_subsampling() -> None:
    rng = np.random.default_rng(1)
    res = domain_classifier(
        correlated(rng, 3000, 0.5), correlated(rng, 500, 0.5), max_rows=600, seed=0, n_splits=3
    )
    assert not res.drifted
    assert (res.n_reference, res.n_current) == (600, 500)
    assert 0.4 < res.statistic < 0.56


def test_pca_reconstruction_detects_broken_correlation() -> None:
    rng = np.random.default_rng(2)
    ref = correlated(rng, 2000, 0.95)
    same_rows = correlated(rng, 500, 0.95)
    same = pca_reconstruction(ref, same_rows, seed=0)
    broken = pca_reconstruction(ref, correlated(rng, 500, -0.95), seed=0)
    assert not same.drifted and broken.drifted and broken.p_value is not None
    assert broken.p_value < 1e-10 and same.threshold == 0.01
    # The documented procedure, spelled out with scikit-learn and SciPy: fit on one half
    # of the reference (the seeded split), compare the other half's errors with the
    # current rows' errors.
    order = np.random.default_rng(0).permutation(2000)
    fit, held = ref[order[:1000]], ref[order[1000:]]
    scaler = StandardScaler().fit(fit)
    pca = PCA(n_components=0.9, svd_solver="full").fit(scaler.transform(fit))
    assert same.detail["n_components"] == min(pca.n_components_, 2)

    def err(x: np.ndarray) -> np.ndarray:
        z = scaler.transform(x)
        return np.sqrt(((z - pca.inverse_transform(pca.transform(z))) ** 2).sum(axis=1))

    assert same.detail["reference_error"] == pytest.approx(err(held).mean())
    assert same.statistic == pytest.approx(err(same_rows).mean())
    expected = stats.mannwhitneyu(err(same_rows), err(held), alternative="greater").pvalue
    assert same.p_value == pytest.approx(expected)


def test_pca_reconstruction_never_compares_rounding_noise() -> None:
    # Three iid features: all three components would rebuild every row exactly and leave
    # rounding noise (whose sign depends on the BLAS kernel) to compare. At most p - 1.
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(1000, 3))
    res = pca_reconstruction(ref, rng.normal(size=(1000, 3)), variance=0.9999, seed=0)
    assert res.detail["n_components"] == 2 and not res.drifted
    # An exact linear relation leaves zero error on both sides: no evidence, no alarm.
    x = rng.normal(size=(800, 2))
    exact = np.column_stack([x, x[:, 0] + x[:, 1]])
    y = rng.normal(size=(300, 2))
    res = pca_reconstruction(exact, np.column_stack([y, y[:, 0] + y[:, 1]]), seed=0)
    assert res.statistic == 0.0 and res.p_value == 1.0 and not res.drifted
    # ... and breaking the relation is drift.
    broken = np.column_stack([y, y[:, 0] - y[:, 1]])
    assert pca_reconstruction(exact, broken, seed=0).drifted


def test_multivariate_degenerate_inputs_say_why() -> None:
    rng = np.random.default_rng(5)
    one_feature = pca_reconstruction(rng.normal(size=(500, 1)), rng.normal(size=(50, 1)))
    assert one_feature.statistic is None and not one_feature.drifted
    assert one_feature.reason.startswith("not informative")
    tiny = pca_reconstruction(rng.normal(size=(3, 4)), rng.normal(size=(50, 4)))
    assert tiny.reason.startswith("not enough data") and not tiny.drifted
    for n_cur in (1, 2):
        dc = domain_classifier(rng.normal(size=(500, 3)), rng.normal(size=(n_cur, 3)))
        assert dc.statistic is None and dc.threshold is None and not dc.drifted
        assert dc.reason.startswith("not enough data")


def test_multivariate_handles_missing_and_inf() -> None:
    rng = np.random.default_rng(3)
    ref, cur = correlated(rng, 300, 0.5), correlated(rng, 300, 0.5)
    cur[:5, 0] = np.nan
    cur[5, 1] = np.inf
    dc, pca = domain_classifier(ref, cur), pca_reconstruction(ref, cur)
    assert dc.statistic is not None and np.isfinite(dc.statistic)
    assert pca.statistic is not None and np.isfinite(pca.statistic)
    # A column that is entirely missing in the current window is drift to both methods
    # (imputing it with the reference median would hide it).
    gone = correlated(rng, 300, 0.5)
    gone[:, 2] = np.nan
    assert domain_classifier(ref, gone).drifted
    assert pca_reconstruction(ref, gone).drifted


def test_prediction_and_label_drift() -> None:
    rng = np.random.default_rng(4)
    ref_scores, cur_scores = rng.beta(2, 5, 800), rng.beta(3, 4, 800)
    res = prediction_drift(ref_scores, cur_scores)
    assert res.column == "prediction" and res.method == "ks"
    assert res.p_value == pytest.approx(stats.ks_2samp(ref_scores, cur_scores).pvalue)
    labels = label_drift(np.array(["yes", "no"] * 300), np.array(["yes"] * 500 + ["no"] * 100))
    assert labels.column == "label" and labels.method == "chi2" and labels.drifted
    forced = prediction_drift([0, 1, 1, 0], [1, 1, 1, 1], categorical=True, method="tvd")
    assert forced.statistic == pytest.approx(0.5)


def test_prediction_drift_to_profile() -> None:
    prof = CategoricalProfile(count=1000, missing=0, frequencies={"0": 700, "1": 300}, n_unique=2)
    res = prediction_drift_to_profile(prof, np.array([0] * 150 + [1] * 150))
    expected = stats.chi2_contingency(np.array([[700, 300], [150, 150]]))
    assert res.statistic == pytest.approx(expected.statistic)
    assert res.p_value == pytest.approx(expected.pvalue)
