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

Regression gets no estimate: a regressor's output carries no statement of its own error
(no probabilities), so any estimate needs a second model of the loss trained on the
reference (NannyML's direct loss estimation), which monitoring does not build.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vigil.bundle.signature import Signature
from vigil.capture.table import PROBA_PREFIX
from vigil.monitor.estimated import CBPE, METRICS, EstimatedMetric
from vigil.monitor.performance import classification_metrics, label_key
from vigil.profile_schema import BaselineProfile

__all__ = ["MAX_ROWS", "MIN_REFERENCE_ROWS", "N_DRAWS", "Estimator", "estimate_window"]

MAX_ROWS = 20_000
"""Most rows of a window the estimate is computed on (a seeded uniform sample beyond)."""
N_DRAWS = 200
"""Label draws behind each interval."""
MIN_REFERENCE_ROWS = 100
"""Fewest labelled reference rows the calibration is fitted on."""


@dataclass(frozen=True)
class Estimator:
    """A version's fitted :class:`CBPE`, its classes as text, and the metrics its labelled
    reference sample realised (what ``estimated.<m>.delta`` is measured against)."""

    cbpe: CBPE
    keys: list[str]
    reference: dict[str, float]


def fit_estimator(signature: Signature, profile: BaselineProfile | None) -> Estimator | None:
    """The estimator of a version, or ``None`` when it cannot have one (not a classifier,
    no labels or probabilities in its reference sample: registered without ``--target``,
    a model without ``predict_proba``, or a bundle older than the stored probabilities)."""
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


def estimate_window(
    rows: pd.DataFrame, estimator: Estimator, notes: list[str]
) -> dict[str, EstimatedMetric] | None:
    """The estimated metrics of a window's rows (``None`` when the server did not log their
    probabilities, or no row has them)."""
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
