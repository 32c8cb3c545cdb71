"""Streaming drift detectors, one per module, in the shape of River's ``river.drift``.

Each holds a little state, takes one value per :meth:`~DriftDetector.update` and says
whether that value completed a detection (:attr:`~DriftDetector.drift_detected`).
"""

from __future__ import annotations

from vigil.drift.detectors.adwin import ADWIN
from vigil.drift.detectors.base import DriftAndWarningDetector, DriftDetector
from vigil.drift.detectors.ddm import DDM
from vigil.drift.detectors.eddm import EDDM
from vigil.drift.detectors.kswin import KSWIN
from vigil.drift.detectors.page_hinkley import PageHinkley

__all__ = [
    "ADWIN",
    "DDM",
    "EDDM",
    "KSWIN",
    "DriftAndWarningDetector",
    "DriftDetector",
    "PageHinkley",
]
