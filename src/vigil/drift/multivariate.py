"""Multivariate drift: shifts that no single column shows (joint distributions).

* :func:`domain_classifier` trains a classifier to tell reference rows from current
  rows. If it cannot (ROC AUC near 0.5) the two sets look alike. The AUC is
  cross-validated (stratified, seeded folds) on at most ``max_rows`` rows per side,
  and drift is declared when it exceeds both ``threshold`` (0.55 by default, a practical
  effect size) and the AUC that pure chance would reach at this sample size: under no
  drift the AUC is approximately normal around 0.5 with the Hanley–McNeil standard error
  ``sqrt((n1 + n2 + 1) / (12 n1 n2))``; the bound is 0.5 + 3 standard errors. Where that
  bound reaches 1 (a handful of rows) no AUC could pass it, and the answer is "not
  enough data" instead of a verdict that cannot fire.
* :func:`pca_reconstruction` fits ``StandardScaler`` + ``PCA`` on half of the reference
  (seeded split), keeping ``variance`` of the variance but at most ``n_features - 1``
  components (keeping them all would leave only rounding noise to compare), and asks
  whether the current rows reconstruct worse than the *other*, held-out half of the
  reference: a one-sided Mann–Whitney test of the two sets of errors at ``alpha`` (1 %).
  The held-out half is what the current rows must be compared with: errors of the rows
  the components were fitted on are biased low, and the more so the more features.
  Errors below :data:`ERROR_TOLERANCE` (rounding noise of an exact linear relation)
  count as zero. One feature has nothing to reconstruct from: "not informative".

Inputs are numeric matrices (rows × features); encode categorical columns first.
Missing and infinite values are imputed with the reference column medians, and each
column with any of them on either side gains a 0/1 "missing" indicator, so a column that
goes missing in the current window is a shift both methods see.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(size=(1000, 3))
>>> cur = rng.normal(size=(1000, 3)); cur[:, 2] = cur[:, 0] + 0.1 * cur[:, 2]
>>> r = domain_classifier(ref, cur, seed=0)
>>> r.drifted, r.statistic > 0.6
(True, True)
>>> pca_reconstruction(ref, rng.normal(size=(1000, 3)), seed=0).drifted
False
>>> pca_reconstruction(ref, cur, seed=0).drifted
True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from vigil.errors import ValidationError

ERROR_TOLERANCE = 1e-8
"""Reconstruction errors (in standard deviations) below this are rounding noise."""

FloatMatrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MultivariateDrift:
    """A multivariate verdict: the statistic, the bound it was held to, and sizes.

    ``statistic`` and ``threshold`` are None when there is no verdict (``reason`` says
    why: not enough data, or a method that cannot inform on this data).
    """

    method: str
    statistic: float | None
    threshold: float | None
    drifted: bool
    n_reference: int
    n_current: int
    detail: dict[str, float] = field(default_factory=dict)
    p_value: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _matrix(data: Any) -> FloatMatrix:
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValidationError(f"expected a 2-D matrix of rows × features, got shape {arr.shape}")
    return np.where(np.isfinite(arr), arr, np.nan)


def _prepare(reference: Any, current: Any) -> tuple[FloatMatrix, FloatMatrix]:
    """Both matrices imputed with reference medians, plus missing indicators."""
    ref, cur = _matrix(reference), _matrix(current)
    if ref.shape[1] != cur.shape[1]:
        raise ValidationError(
            f"reference has {ref.shape[1]} features and current {cur.shape[1]}; pass the "
            "same columns in the same order"
        )
    ref_nan, cur_nan = np.isnan(ref), np.isnan(cur)
    flagged = ref_nan.any(axis=0) | cur_nan.any(axis=0)
    if not flagged.any():
        return ref, cur
    fill = np.zeros(ref.shape[1])
    for j in np.flatnonzero(flagged):
        finite = ref[~ref_nan[:, j], j]
        fill[j] = float(np.median(finite)) if finite.size else 0.0
    ref = np.hstack([np.where(ref_nan, fill, ref), ref_nan[:, flagged].astype(np.float64)])
    cur = np.hstack([np.where(cur_nan, fill, cur), cur_nan[:, flagged].astype(np.float64)])
    return ref, cur


def _subsample(x: FloatMatrix, max_rows: int, rng: np.random.Generator) -> FloatMatrix:
    if x.shape[0] <= max_rows:
        return x
    return x[rng.choice(x.shape[0], size=max_rows, replace=False)]


def _no_verdict(method: str, n_ref: int, n_cur: int, reason: str) -> MultivariateDrift:
    return MultivariateDrift(method, None, None, False, n_ref, n_cur, reason=reason)


def domain_classifier(
    reference: Any,
    current: Any,
    *,
    threshold: float = 0.55,
    max_rows: int = 5000,
    n_splits: int = 5,
    seed: int = 0,
    n_threads: int | None = 1,
) -> MultivariateDrift:
    """Cross-validated ROC AUC of a classifier separating reference from current rows.

    ``n_threads`` caps the OpenMP threads of the gradient boosting (None: all cores). One
    thread is the default because monitoring jobs share their host with serving, and an
    oversubscribed OpenMP pool runs many times slower than a single thread.
    """
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,  # scikit-learn/SciPy: only when this method runs
    )
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    rng = np.random.default_rng(seed)
    ref, cur = _prepare(reference, current)
    ref, cur = _subsample(ref, max_rows, rng), _subsample(cur, max_rows, rng)
    n1, n2 = ref.shape[0], cur.shape[0]
    folds = min(n_splits, n1, n2)
    chance = 0.5 + 3.0 * math.sqrt((n1 + n2 + 1) / (12.0 * n1 * n2)) if folds else math.inf
    if folds < 2 or chance >= 1.0:
        return _no_verdict(
            "domain_classifier",
            n1,
            n2,
            f"not enough data: {n1} reference and {n2} current rows; an AUC could not beat "
            "chance at this size",
        )
    x = np.vstack([ref, cur])
    y = np.concatenate([np.zeros(n1, dtype=np.int64), np.ones(n2, dtype=np.int64)])
    model = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(limits=n_threads, user_api="openmp"):
        auc = float(np.mean(cross_val_score(model, x, y, cv=cv, scoring="roc_auc")))
    bound = max(threshold, chance)
    return MultivariateDrift(
        method="domain_classifier",
        statistic=auc,
        threshold=bound,
        drifted=auc > bound,
        n_reference=n1,
        n_current=n2,
        detail={"auc_threshold": threshold, "chance_bound": chance},
    )


def _components(explained: npt.NDArray[np.float64], variance: float, cap: int) -> int:
    """Fewest components explaining ``variance`` of the variance, at most ``cap``."""
    share = np.cumsum(explained) / max(float(explained.sum()), np.finfo(np.float64).tiny)
    return min(int(np.searchsorted(share, variance - 1e-12)) + 1, cap)


def pca_reconstruction(
    reference: Any,
    current: Any,
    *,
    variance: float = 0.9,
    alpha: float = 0.01,
    max_rows: int = 50_000,
    seed: int = 0,
) -> MultivariateDrift:
    """Held-out reconstruction errors of the reference against the current rows' errors."""
    from scipy.stats import mannwhitneyu  # scikit-learn/SciPy: only when this method runs
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    method = "pca_reconstruction"
    rng = np.random.default_rng(seed)
    ref, cur = _prepare(reference, current)
    ref, cur = _subsample(ref, max_rows, rng), _subsample(cur, max_rows, rng)
    n_ref, n_cur = int(ref.shape[0]), int(cur.shape[0])
    if ref.shape[1] < 2:
        return _no_verdict(
            method, n_ref, n_cur, "not informative: one feature has nothing to be rebuilt from"
        )
    if n_ref < 4 or n_cur < 1:
        return _no_verdict(
            method, n_ref, n_cur, f"not enough data: {n_ref} reference and {n_cur} current rows"
        )
    order = rng.permutation(n_ref)
    fit, held_out = ref[order[: n_ref // 2]], ref[order[n_ref // 2 :]]
    scaler = StandardScaler().fit(fit)
    z_fit = scaler.transform(fit)
    cap = min(ref.shape[1] - 1, z_fit.shape[0] - 1)
    pca = PCA(n_components=cap, svd_solver="full", random_state=seed).fit(z_fit)
    k = _components(pca.explained_variance_, variance, cap)
    basis = pca.components_[:k]

    def errors(x: FloatMatrix) -> npt.NDArray[np.float64]:
        z = scaler.transform(x) - pca.mean_
        residual = z - (z @ basis.T) @ basis
        err = np.sqrt(np.sum(residual * residual, axis=1))
        return np.where(err < ERROR_TOLERANCE, 0.0, err)

    ref_err, cur_err = errors(held_out), errors(cur)
    p_value = float(mannwhitneyu(cur_err, ref_err, alternative="greater").pvalue)
    if not np.isfinite(p_value):
        p_value = 1.0
    return MultivariateDrift(
        method=method,
        statistic=float(cur_err.mean()),
        threshold=alpha,
        drifted=p_value < alpha,
        n_reference=n_ref,
        n_current=n_cur,
        detail={"reference_error": float(ref_err.mean()), "n_components": float(k)},
        p_value=p_value,
        reason=(
            f"mean current error vs the held-out reference half ({held_out.shape[0]} rows), "
            f"one-sided Mann–Whitney at alpha={alpha}"
        ),
    )
