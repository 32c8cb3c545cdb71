"""Multivariate drift: shifts that no single column shows (joint distributions).

* :func:`domain_classifier` trains a classifier to tell reference rows from current
  rows. If it cannot (ROC AUC near 0.5) the two sets look alike. The AUC is
  cross-validated (stratified, seeded folds) on at most ``max_rows`` rows per side,
  and drift is declared when it exceeds both ``threshold`` (0.55 by default, a practical
  effect size) and the AUC that pure chance would reach at this sample size: under no
  drift the AUC is approximately normal around 0.5 with the Hanley–McNeil standard error
  ``sqrt((n1 + n2 + 1) / (12 n1 n2))``; the bound is 0.5 + 3 standard errors.
* :func:`pca_reconstruction` fits ``StandardScaler`` + ``PCA`` on the reference keeping
  ``variance`` of the variance (90%), then compares the mean reconstruction error of the
  current rows with the reference's own error distribution: drift when the current mean
  exceeds the 99th percentile of ``n_bootstrap`` seeded bootstrap means of reference
  errors, i.e. a one-sided 1% test.

Inputs are numeric matrices (rows × features); encode categorical columns first.
Missing values are imputed with the reference column medians.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(size=(1000, 3))
>>> cur = rng.normal(size=(1000, 3)); cur[:, 2] = cur[:, 0] + 0.1 * cur[:, 2]
>>> r = domain_classifier(ref, cur, seed=0)
>>> r.drifted, r.statistic > 0.6
(True, True)
>>> pca_reconstruction(ref, rng.normal(size=(1000, 3)), seed=0).drifted
False
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class MultivariateDrift:
    """A multivariate verdict: the statistic, the bound it was held to, and sizes."""

    method: str
    statistic: float
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    detail: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _matrix(data: Any) -> npt.NDArray[np.float64]:
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D matrix of rows × features, got shape {arr.shape}")
    return np.where(np.isinf(arr), np.nan, arr)


def _impute(
    ref: npt.NDArray[np.float64], cur: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if not (np.isnan(ref).any() or np.isnan(cur).any()):
        return ref, cur
    fill = np.zeros(ref.shape[1])
    for j in range(ref.shape[1]):
        finite = ref[~np.isnan(ref[:, j]), j]
        fill[j] = float(np.median(finite)) if finite.size else 0.0
    return np.where(np.isnan(ref), fill, ref), np.where(np.isnan(cur), fill, cur)


def _subsample(
    x: npt.NDArray[np.float64], max_rows: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    if x.shape[0] <= max_rows:
        return x
    return x[rng.choice(x.shape[0], size=max_rows, replace=False)]


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
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    rng = np.random.default_rng(seed)
    ref, cur = _impute(_matrix(reference), _matrix(current))
    ref, cur = _subsample(ref, max_rows, rng), _subsample(cur, max_rows, rng)
    n1, n2 = ref.shape[0], cur.shape[0]
    folds = min(n_splits, n1, n2)
    if folds < 2:
        raise ValueError("the domain classifier needs at least 2 rows on each side")
    x = np.vstack([ref, cur])
    y = np.concatenate([np.zeros(n1, dtype=np.int64), np.ones(n2, dtype=np.int64)])
    model = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(limits=n_threads, user_api="openmp"):
        auc = float(np.mean(cross_val_score(model, x, y, cv=cv, scoring="roc_auc")))
    chance = 0.5 + 3.0 * math.sqrt((n1 + n2 + 1) / (12.0 * n1 * n2))
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


def pca_reconstruction(
    reference: Any,
    current: Any,
    *,
    variance: float = 0.9,
    n_bootstrap: int = 500,
    quantile: float = 0.99,
    max_rows: int = 50_000,
    seed: int = 0,
) -> MultivariateDrift:
    """Mean PCA reconstruction error of current rows against the reference's bootstrap."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    ref, cur = _impute(_matrix(reference), _matrix(current))
    ref, cur = _subsample(ref, max_rows, rng), _subsample(cur, max_rows, rng)
    if ref.shape[0] < 2 or cur.shape[0] < 1:
        raise ValueError("PCA reconstruction needs at least 2 reference rows and 1 current row")
    # sklearn keeps enough components for a share of variance when given a float.
    n_components: int | float = variance if min(ref.shape) > 1 else 1
    pipe = make_pipeline(StandardScaler(), PCA(n_components=n_components, random_state=seed))
    pipe.fit(ref)

    def errors(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        z = pipe[0].transform(x)
        back = pipe[1].inverse_transform(pipe[1].transform(z))
        return np.asarray(np.sqrt(np.sum((z - back) ** 2, axis=1)), dtype=np.float64)

    ref_err, cur_err = errors(ref), errors(cur)
    boot = np.empty(n_bootstrap)
    step = max(1, 2_000_000 // max(cur_err.size, 1))  # bounded memory per draw
    for start in range(0, n_bootstrap, step):
        stop = min(start + step, n_bootstrap)
        idx = rng.integers(0, ref_err.size, size=(stop - start, cur_err.size))
        boot[start:stop] = ref_err[idx].mean(axis=1)
    bound = float(np.quantile(boot, quantile))
    stat = float(cur_err.mean())
    return MultivariateDrift(
        method="pca_reconstruction",
        statistic=stat,
        threshold=bound,
        drifted=stat > bound,
        n_reference=int(ref.shape[0]),
        n_current=int(cur.shape[0]),
        detail={
            "reference_error": float(ref_err.mean()),
            "n_components": float(pipe[1].n_components_),
        },
    )
