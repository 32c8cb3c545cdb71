"""Drift: how far current data has moved from the reference, per column and overall.

Pure statistics over NumPy arrays (no I/O): two-sample tests and distances
(:mod:`~vigil.drift.numeric`, :mod:`~vigil.drift.categorical`,
:mod:`~vigil.drift.distances`), the automatic choice of method per column
(:mod:`~vigil.drift.select`), the dataset report (:mod:`~vigil.drift.report`),
multivariate checks (:mod:`~vigil.drift.multivariate`), prediction and label drift
(:mod:`~vigil.drift.target`) and streaming detectors (:mod:`vigil.drift.detectors`).
"""

from __future__ import annotations

from vigil.drift.column_drift import ColumnDrift
from vigil.drift.report import DriftReport, compare, compare_to_profile

__all__ = ["ColumnDrift", "DriftReport", "compare", "compare_to_profile"]
