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

from vigil.bundle.profile_schema import CategoricalProfile
from vigil.drift.multivariate import domain_classifier, pca_reconstruction
from vigil.drift.target import label_drift, prediction_drift, prediction_drift_to_profile


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
    same = pca_reconstruction(ref, correlated(rng, 500, 0.95), seed=0)
    broken = pca_reconstruction(ref, correlated(rng, 500, -0.95), seed=0)
    assert not same.drifted and broken.drifted
    scaler = StandardScaler().fit(ref)
    pca = PCA(n_components=0.9, random_state=0).fit(scaler.transform(ref))
    z = scaler.transform(ref)
    err = np.sqrt(((z - pca.inverse_transform(pca.transform(z))) ** 2).sum(axis=1)).mean()
    assert same.detail["reference_error"] == pytest.approx(err)
    assert same.detail["n_components"] == pca.n_components_


def test_multivariate_handles_missing_and_inf() -> None:
    rng = np.random.default_rng(3)
    ref, cur = correlated(rng, 300, 0.5), correlated(rng, 300, 0.5)
    cur[:5, 0] = np.nan
    cur[5, 1] = np.inf
    assert np.isfinite(domain_classifier(ref, cur).statistic)
    assert np.isfinite(pca_reconstruction(ref, cur).statistic)
    with pytest.raises(ValueError, match="at least 2 rows"):
        domain_classifier(ref, cur[:1])


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
