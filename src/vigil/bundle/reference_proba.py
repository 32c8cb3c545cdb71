"""The model's probabilities on its reference sample, stored in the baseline profile.

Performance estimated before labels arrive (:mod:`vigil.monitor.estimated`) calibrates the
model's probabilities on labelled reference rows. Monitoring never loads the model (no
trust decision), so the probabilities are computed here, once, at registration, on the
profile's bounded sample (``sample_size`` rows, 5,000 by default): kilobytes in the
profile, one ``predict_proba`` call.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vigil.bundle.nullability import serving_frame

if TYPE_CHECKING:
    from vigil.bundle.model import LoadedModel
    from vigil.bundle.signature import Signature
    from vigil.profile_schema import BaselineProfile

log = logging.getLogger("vigil.bundle")


def sample_probabilities(
    model: LoadedModel, signature: Signature, profile: BaselineProfile
) -> list[list[float]]:
    """A classifier's probabilities on the profile's labelled sample rows, as serving would
    hand them to it (what :mod:`vigil.monitor.estimated` calibrates on); ``[]`` when the
    model has none, the reference had no labels, or the model fails even on the complete
    rows (then performance is not estimated before labels; nothing else changes). Rows the
    model cannot take (missing values it refuses) get NaN."""
    names = signature.feature_names
    if (
        signature.outputs.task != "classification"
        or not model.has_proba
        or profile.target_name is None
        or not profile.sample.get(profile.target_name)
        or not all(n in profile.sample for n in names)
    ):
        return []
    rows = [list(r) for r in zip(*(profile.sample[n] for n in names), strict=True)]
    k = len(signature.outputs.classes or [])
    proba = _predict(model, signature, rows)
    if proba is None:
        # A model that refuses missing values (or a column of integers with a gap): the
        # complete rows only, the others left NaN (the estimator leaves them out).
        complete = [i for i, r in enumerate(rows) if not any(map(_missing, r))]
        part = _predict(model, signature, [rows[i] for i in complete]) if complete else None
        if part is None:
            log.info("no reference probabilities: the model fails on the sample rows")
            return []
        proba = np.full((len(rows), part.shape[1]), np.nan)
        proba[complete] = part
    if proba.shape[1] != k:
        return []
    return [[float(v) for v in row] for row in proba]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _predict(
    model: LoadedModel, signature: Signature, rows: list[list[Any]]
) -> npt.NDArray[np.float64] | None:
    """``predict_proba`` on ``rows`` as serving would hand them over, or ``None`` when the
    model (or the conversion) fails on them or answers something unusable."""
    try:
        proba = np.asarray(
            model.predict_proba(serving_frame(signature, rows, missing=())), dtype=float
        )
    except Exception:
        return None
    if proba.ndim != 2 or len(proba) != len(rows) or not np.isfinite(proba).all():
        return None
    return proba
