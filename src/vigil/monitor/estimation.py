"""Performance estimated before labels arrive, per monitoring window: ``estimated.*``.

A classifier registered with labelled reference data stores its probabilities on the
profile's sample (:mod:`vigil.bundle.reference_proba`); :func:`fit_estimator` fits
:class:`~vigil.monitor.estimated.CBPE` on them once per version, and
:func:`estimate_window` estimates accuracy, precision, recall, F1 and ROC AUC of a window
from the probabilities the server logged for it, each with the interval (``level`` 95 %) of
the value its labels will realise.

A window of more than :data:`MAX_ROWS` rows is estimated on a seeded uniform sample of
that many: the expected values then carry a sampling error of at most
``0.5 / sqrt(MAX_ROWS)`` (one standard error, accuracy-like metrics: 0.0035), and the
interval is that of a window of ``MAX_ROWS`` rows, so wider than the whole window's
(conservative). The label draws behind the interval cost ``N_DRAWS * rows``.

A regressor registered with labelled reference data gets :class:`~vigil.monitor.dle.DLE`
(direct loss estimation) instead, fitted on the profile's sample: its features, the
model's predictions on them and the labels; :func:`estimate_window` then estimates the MAE
and RMSE of a window from its logged features and predictions (``estimated.mae``,
``estimated.rmse``), each with its interval, the ``.delta`` and the relative ``.change``
against the labelled reference sample's value. Beyond :data:`MAX_ROWS` rows the same
seeded sample is taken (the mean of predicted losses then carries a sampling error of one
``sd(l̂) / sqrt(MAX_ROWS)``).

A binary classifier's window judged from its summary (``VIGIL_MONITOR_SUMMARIES``) beyond
:data:`MAX_ROWS` rows is estimated from the summary's score bins instead
(:func:`estimate_binned`): the whole window, no rows read, within a bound the note states.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vigil.bundle.signature import Signature
from vigil.capture.table import FEATURE_PREFIX, PROBA_PREFIX
from vigil.monitor.dle import DLE, REGRESSION_METRICS
from vigil.monitor.estimated import CBPE, METRICS, EstimatedMetric
from vigil.monitor.performance import classification_metrics, label_key
from vigil.monitor.score_bins import ScoreBins
from vigil.profile_schema import BaselineProfile

__all__ = [
    "MAX_ROWS",
    "MIN_REFERENCE_ROWS",
    "N_DRAWS",
    "REGRESSION_METRICS",
    "Estimator",
    "estimate_binned",
    "estimate_window",
]

MAX_ROWS = 20_000
"""Most rows of a window the estimate is computed on (a seeded uniform sample beyond)."""
N_DRAWS = 200
"""Label draws behind each interval."""
MIN_REFERENCE_ROWS = 100
"""Fewest labelled reference rows the calibration is fitted on."""


@dataclass(frozen=True)
class Estimator:
    """A version's fitted :class:`CBPE` (classifiers, with its classes as text) or
    :class:`DLE` (regressors, with the features it reads), and the metrics its labelled
    reference sample realised (what ``estimated.<m>.delta`` is measured against)."""

    cbpe: CBPE | None
    keys: list[str]
    reference: dict[str, float]
    dle: DLE | None = None
    features: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """The capture columns a window's estimate reads."""
        if self.dle is not None:
            return ["prediction", *(FEATURE_PREFIX + f for f in self.features)]
        return ["prediction", *(PROBA_PREFIX + k for k in self.keys)]


def fit_estimator(signature: Signature, profile: BaselineProfile | None) -> Estimator | None:
    """The estimator of a version, or ``None`` when it cannot have one (not a classifier,
    no labels or probabilities in its reference sample: registered without ``--target``,
    a model without ``predict_proba``, or a bundle older than the stored probabilities)."""
    if signature.outputs.task == "regression":
        return _fit_dle(signature, profile)
    classes = signature.outputs.classes
    if (
        profile is None
        or signature.outputs.task != "classification"
        or not classes
        or profile.target_name is None
        or not profile.sample_probabilities
    ):
        return None
    keys = [label_key(c) for c in classes]
    labels = np.asarray([label_key(v) for v in profile.sample.get(profile.target_name, [])])
    proba = np.asarray(profile.sample_probabilities, dtype=np.float64)
    if len(labels) != len(proba) or proba.shape[1] != len(keys):
        return None
    known = np.isin(labels, keys) & np.isfinite(proba).all(axis=1)  # NaN: refused rows
    labels, proba = labels[known], proba[known]
    if len(labels) < MIN_REFERENCE_ROWS or len(set(labels.tolist())) < 2:
        return None
    cbpe = CBPE(keys, n_draws=N_DRAWS).fit(labels, proba)
    predicted = np.asarray(keys, dtype=object)[proba.argmax(axis=1)]
    realised = classification_metrics(labels, predicted, proba, classes=keys)
    reference = {m: float(v) for m in METRICS if (v := realised.get(m)) is not None}
    return Estimator(cbpe, keys, reference)


_FITTED: OrderedDict[str, Estimator | None] = OrderedDict()
_FITTED_KEPT = 16
_FITTED_LOCK = threading.Lock()


def version_estimator(
    digest: str, signature: Signature, profile: BaselineProfile | None
) -> Estimator | None:
    """:func:`fit_estimator` of the version whose bundle digest is ``digest``, fitted once
    per process: a version never changes, and a monitoring pass (every few minutes in a
    server) would otherwise refit it (a regressor's DLE costs seconds). The last
    :data:`_FITTED_KEPT` versions are kept; a fitted estimator holds no state its
    estimates change (each draws from its own seeded generator)."""
    with _FITTED_LOCK:
        if digest in _FITTED:
            _FITTED.move_to_end(digest)
            return _FITTED[digest]
    fitted = fit_estimator(signature, profile)
    with _FITTED_LOCK:
        _FITTED[digest] = fitted
        while len(_FITTED) > _FITTED_KEPT:
            _FITTED.popitem(last=False)
    return fitted


def _fit_dle(signature: Signature, profile: BaselineProfile | None) -> Estimator | None:
    """A regressor's estimator: :class:`DLE` on the labelled reference sample and the
    model's predictions on it (``None`` without them)."""
    names = signature.feature_names
    if (
        profile is None
        or profile.target_name is None
        or not profile.sample_predictions
        or not all(n in profile.sample for n in names)
    ):
        return None
    truth = pd.to_numeric(pd.Series(profile.sample.get(profile.target_name, [])), errors="coerce")
    pred = pd.to_numeric(pd.Series(profile.sample_predictions), errors="coerce")
    if len(truth) != len(pred):
        return None
    known = (np.isfinite(truth) & np.isfinite(pred)).to_numpy()
    if known.sum() < MIN_REFERENCE_ROWS:
        return None
    X = pd.DataFrame({n: profile.sample[n] for n in names})[known].reset_index(drop=True)
    y, p = truth.to_numpy(np.float64)[known], pred.to_numpy(np.float64)[known]
    dle = DLE().fit(X, p, y)
    reference = {
        "mae": float(np.mean(np.abs(y - p))),
        "rmse": float(np.sqrt(np.mean((y - p) ** 2))),
    }
    return Estimator(None, [], reference, dle=dle, features=list(names))


def _estimate_loss(
    rows: pd.DataFrame, estimator: Estimator, notes: list[str]
) -> dict[str, EstimatedMetric] | None:
    assert estimator.dle is not None
    if rows.empty:
        return None
    pred = pd.to_numeric(rows["prediction"], errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(pred)
    if not ok.any():
        return None
    if ok.sum() > MAX_ROWS:
        where = np.flatnonzero(ok)
        keep = np.sort(np.random.default_rng(0).choice(where, MAX_ROWS, replace=False))
        ok = np.zeros(len(ok), dtype=bool)
        ok[keep] = True
        notes.append(f"performance estimated on a uniform sample of {MAX_ROWS} rows")
    features = pd.DataFrame(
        {
            f: rows[FEATURE_PREFIX + f].to_numpy()[ok]
            for f in estimator.features
            if FEATURE_PREFIX + f in rows
        },
        index=range(int(ok.sum())),
    )
    return estimator.dle.estimate(features, pred[ok])


def estimate_binned(
    scores: Mapping[str, ScoreBins], estimator: Estimator, notes: list[str]
) -> dict[str, EstimatedMetric] | None:
    """The estimated metrics of a binary classifier's window from its summary's score bins
    (:class:`~vigil.monitor.score_bins.ScoreBins` of the positive class), without its
    rows (``None`` for other models, or a summary without them)."""
    cbpe = estimator.cbpe
    if cbpe is None or len(estimator.keys) != 2 or estimator.keys[1] not in scores:
        return None
    counts, sums = scores[estimator.keys[1]].arrays(estimator.keys)
    if counts.sum() == 0:
        return None
    estimated, bound = cbpe.estimate_binned(counts, sums)
    notes.append(
        f"performance estimated from the window's summary ({int(counts.sum()):,} rows in "
        f"{counts.shape[1]} probability bins; within {bound:.1e} of the estimate on its rows)"
    )
    return estimated


def estimate_window(
    rows: pd.DataFrame, estimator: Estimator, notes: list[str]
) -> dict[str, EstimatedMetric] | None:
    """The estimated metrics of a window's rows (``None`` when the server did not log their
    probabilities, or no row has them; for a regressor, when no row has a prediction)."""
    if estimator.dle is not None:
        return _estimate_loss(rows, estimator, notes)
    assert estimator.cbpe is not None
    columns = [PROBA_PREFIX + k for k in estimator.keys]
    if rows.empty or not all(c in rows for c in columns):
        if not rows.empty:
            notes.append("no estimated performance: the window's probabilities were not logged")
        return None
    proba = rows[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    predicted = np.asarray([label_key(v) for v in rows["prediction"]], dtype=object)
    ok = np.isfinite(proba).all(axis=1) & np.isin(predicted, estimator.keys)
    proba, predicted = proba[ok], predicted[ok]
    if len(proba) == 0:
        return None
    if len(proba) > MAX_ROWS:
        pick = np.sort(np.random.default_rng(0).choice(len(proba), MAX_ROWS, replace=False))
        proba, predicted = proba[pick], predicted[pick]
        notes.append(f"performance estimated on a uniform sample of {MAX_ROWS} rows")
    return estimator.cbpe.estimate(proba, predicted)
