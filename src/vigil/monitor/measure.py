"""Everything measured on one window: traffic, drift, data quality and performance.

Pure computation over the window's rows and its :class:`~vigil.monitor.baseline.Baseline`
(no I/O): the statistics themselves live in :mod:`vigil.drift`, :mod:`vigil.monitor.quality` and
:mod:`vigil.monitor.performance`; this module feeds them and turns their reports into
:class:`~vigil.monitor.points.Point` values.

Drift compares the window's successful rows with the baseline profile, feature by feature,
and the model's predictions with its predictions on the reference data. Quality also counts
the requests the server refused as invalid (422) in the window. Performance is computed on
the rows that have a label, joined by ``(request_id, row)`` however late the label came,
and compared with the metrics stored at registration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from vigil.capture.table import FEATURE_PREFIX, PROBA_PREFIX
from vigil.drift import ColumnDrift, DriftReport, compare_to_profile
from vigil.drift.impact import FeatureImpact, rank_by_impact
from vigil.drift.target import prediction_drift_to_profile
from vigil.feedback.join import join_feedback
from vigil.monitor.baseline import Baseline
from vigil.monitor.estimated import EstimatedMetric
from vigil.monitor.estimation import REGRESSION_METRICS, estimate_window
from vigil.monitor.group_fairness import fairness_points, measure_fairness
from vigil.monitor.performance import PerformanceReport, evaluate, label_key
from vigil.monitor.points import Point, point
from vigil.monitor.quality import QualityReport, check_quality
from vigil.monitor.windows import SeriesKey, Window
from vigil.profile_schema import NumericProfile
from vigil.stats.fairness import FairnessReport

SCHEMA_VIOLATION_CODES = frozenset({"validation_error"})
"""Error codes of requests refused because their input broke the model's signature."""

_QUALITY_RATES = {
    "missing_rate": "quality.missing_rate",
    "missing_rate_change": "quality.missing_rate_change",
    "type_errors_rate": "quality.type_error_rate",
    "out_of_range_rate": "quality.out_of_range_rate",
    "outliers_rate": "quality.outlier_rate",
    "unseen_categories_rate": "quality.unseen_category_rate",
}


@dataclass
class WindowResult:
    """The measurements of one window, and the points stored for it."""

    key: SeriesKey
    window: str
    start: datetime
    end: datetime
    partial: bool
    n_rows: int
    n_requests: int
    n_rejected: int
    n_labelled: int
    drift: DriftReport | None = None
    prediction_drift: ColumnDrift | None = None
    quality: QualityReport | None = None
    performance: PerformanceReport | None = None
    estimated: dict[str, EstimatedMetric] | None = None
    """Performance estimated from the logged probabilities, before labels
    (:mod:`vigil.monitor.estimation`)."""
    fairness: dict[str, FairnessReport] | None = None
    """Fairness by group of each sensitive attribute (:mod:`vigil.monitor.fairness`)."""
    points: list[Point] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    start_request_id: str | None = None
    end_request_id: str | None = None
    label_marks: int | None = None
    """The window's mark of late labels when it was computed
    (:mod:`vigil.monitor.summaries.late`; only on windows judged from summaries)."""
    importance: dict[str, float] = field(default_factory=dict)
    """The version's global importance (the baseline's), to weigh drift by impact."""

    @property
    def error_rate(self) -> float:
        return self.n_rejected / self.n_requests if self.n_requests else 0.0

    @property
    def drifted_features(self) -> list[str]:
        return self.drift.drifted_columns if self.drift is not None else []

    @property
    def impact(self) -> list[FeatureImpact]:
        """Every compared feature's drift weighted by its importance, largest first
        (empty without drift or without importance)."""
        if self.drift is None or not self.importance:
            return []
        return rank_by_impact(self.drift.columns, self.importance)

    @property
    def drifted_by_impact(self) -> list[FeatureImpact]:
        """The drifted features, largest impact first."""
        return [f for f in self.impact if f.drifted]

    @property
    def dataset_drifted(self) -> bool | None:
        return self.drift.dataset_drifted if self.drift is not None else None

    def value(self, metric: str, feature: str | None = None) -> float | None:
        """The stored value of ``metric`` (for ``feature``), if any."""
        for p in self.points:
            if p.metric == metric and p.feature == feature:
                return p.value
        return None

    def summary(self) -> dict[str, Any]:
        """A small JSON-ready digest kept with the window (tables, dashboard)."""
        perf = self.performance
        marks = {} if self.label_marks is None else {"label_marks": self.label_marks}
        return {
            **marks,
            "dataset_drifted": self.dataset_drifted,
            "drifted_features": self.drifted_features,
            "drifted_by_impact": [f.to_dict() for f in self.drifted_by_impact],
            "share_drifted": self.drift.share_drifted if self.drift is not None else None,
            "prediction_drifted": (
                self.prediction_drift.drifted if self.prediction_drift is not None else None
            ),
            "error_rate": self.error_rate,
            "schema_violations": self.quality.schema_violations if self.quality else None,
            "performance": dict(perf.metrics) if perf is not None else None,
            "reference": dict(perf.reference) if perf is not None else None,
            "estimated": (
                {m: e.to_dict() for m, e in self.estimated.items()}
                if self.estimated is not None
                else None
            ),
            "fairness": (
                {a: r.to_dict() for a, r in self.fairness.items()}
                if self.fairness is not None
                else None
            ),
            "notes": list(self.notes),
        }


def feature_frame(rows: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The window's raw feature values, one column per feature (absent ones all missing)."""
    data = {}
    for name in names:
        column = FEATURE_PREFIX + name
        data[name] = (
            rows[column].to_numpy() if column in rows else np.full(len(rows), None, dtype=object)
        )
    return pd.DataFrame(data, index=range(len(rows)))


def _numeric_view(frame: pd.DataFrame, baseline: Baseline) -> dict[str, Any]:
    assert baseline.profile is not None
    view: dict[str, Any] = {}
    for name in frame.columns:
        values = frame[name]
        if isinstance(baseline.profile.features[name], NumericProfile):
            # Values of the wrong type are counted by the quality checks; drift sees them
            # as missing rather than failing on them.
            view[name] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        else:
            view[name] = values.to_numpy(dtype=object)
    return view


def _drift(window: Window, baseline: Baseline) -> DriftReport | None:
    names = baseline.features
    if baseline.profile is None or not names or window.n_rows == 0:
        return None
    frame = feature_frame(window.rows, names)
    return compare_to_profile(
        baseline.profile,
        _numeric_view(frame, baseline),
        columns=names,
        references=baseline.references,
    )


def _prediction_drift(window: Window, baseline: Baseline) -> ColumnDrift | None:
    profile = baseline.profile
    if profile is None or profile.prediction is None or window.n_rows == 0:
        return None
    values: Any = window.rows["prediction"]
    if isinstance(profile.prediction, NumericProfile):
        values = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    else:
        values = values.to_numpy(dtype=object)
    return prediction_drift_to_profile(
        profile.prediction, values, sample=profile.sample_predictions or None
    )


def _schema_violations(rejected: pd.DataFrame) -> int:
    if rejected.empty:
        return 0
    codes = rejected["error_code"] if "error_code" in rejected else pd.Series([], dtype=object)
    hit = codes.isin(SCHEMA_VIOLATION_CODES) | (pd.to_numeric(rejected["status"]) == 422)
    return int(rejected.loc[hit.to_numpy(), "request_id"].nunique())


def labelled_rows(rows: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The window's rows that have a label, with a ``label`` column (joined by
    ``(request_id, row)`` and the caller: :func:`~vigil.feedback.join.join_feedback`)."""
    if rows.empty or labels.empty:
        return rows.iloc[0:0].assign(label=pd.Series(dtype=object))
    joined = join_feedback(rows, labels[labels["label"].notna()])
    return joined[joined.columns.difference(["reward", "feedback_time"], sort=False)]


def _performance(
    joined: pd.DataFrame, baseline: Baseline, notes: list[str]
) -> PerformanceReport | None:
    if joined.empty:
        return None
    task = baseline.task
    if task == "classification":
        classes = baseline.signature.outputs.classes
        keys = [label_key(c) for c in classes] if classes else None
        y_true = [label_key(v) for v in joined["label"]]
        y_pred = [label_key(v) for v in joined["prediction"]]
        if keys is None:
            keys = sorted(set(y_true) | set(y_pred))
        proba = None
        columns = [PROBA_PREFIX + k for k in keys]
        if all(c in joined for c in columns):
            matrix = joined[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
            if np.isfinite(matrix).all():
                proba = matrix
        unknown = sorted(set(y_true) - set(keys))
        if unknown:
            notes.append(f"labels outside the model's classes: {unknown[:5]}")
            proba = None  # log loss and ROC AUC are undefined for a class the model lacks
        return evaluate(
            "classification",
            y_true,
            y_pred,
            y_proba=proba,
            classes=keys,
            reference_metrics=baseline.reference_metrics,
        )
    if task == "regression":
        truth = pd.to_numeric(joined["label"], errors="coerce").to_numpy(np.float64)
        pred = pd.to_numeric(joined["prediction"], errors="coerce").to_numpy(np.float64)
        ok = np.isfinite(truth) & np.isfinite(pred)
        if not ok.all():
            notes.append(f"{int((~ok).sum())} labelled rows without a numeric label or prediction")
        return evaluate(
            "regression", truth[ok], pred[ok], reference_metrics=baseline.reference_metrics
        )
    notes.append(f"no performance metrics for task {task!r}")
    return None


def _points(result: WindowResult, reference: dict[str, float]) -> list[Point]:
    out: list[Point] = [
        *point("traffic.rows", result.n_rows),
        *point("traffic.requests", result.n_requests),
        *point("traffic.rejected", result.n_rejected),
        *point("traffic.error_rate", result.error_rate if result.n_requests else None),
    ]
    if result.drift is not None:
        out += point("drift.share", result.drift.share_drifted)
        out += point("drift.dataset", result.drift.dataset_drifted)
        out += point("drift.n_drifted", result.drift.n_drifted)
        for c in result.drift.columns:
            out += point("drift.statistic", c.statistic, c.column)
            p_value = c.p_value_adjusted if c.p_value_adjusted is not None else c.p_value
            out += point("drift.p_value", p_value, c.column)
            out += point("drift.effect_size", c.effect_size, c.column)
            out += point("drift.drifted", c.drifted, c.column)
        for ranked in result.impact:
            out += point("drift.impact", ranked.impact, ranked.column)
    if result.prediction_drift is not None:
        out += point("drift.prediction", result.prediction_drift.statistic)
        out += point("drift.prediction_drifted", result.prediction_drift.drifted)
    if result.quality is not None:
        seen = result.quality.n_rows + result.quality.schema_violations
        out += point(
            "quality.schema_violation_rate", result.quality.schema_violation_rate if seen else None
        )
        for f in result.quality.features:
            values = f.to_dict()
            for key, metric in _QUALITY_RATES.items():
                out += point(metric, values.get(key) if f.n_rows else None, f.feature)
    if result.n_labelled or result.performance is not None:
        out += point("performance.labelled", result.n_labelled)
    if result.performance is not None:
        for name, value in result.performance.metrics.items():
            out += point(f"performance.{name}", value)
        for name, value in result.performance.deltas.items():
            out += point(f"performance.{name}.delta", value)
        for name, value in result.performance.relative_change.items():
            out += point(f"performance.{name}.change", value)
    out += estimated_points(result.estimated, reference)
    return out


def estimated_points(
    estimated: dict[str, EstimatedMetric] | None, reference: dict[str, float]
) -> list[Point]:
    """``estimated.<m>``, its interval (``.low``, ``.high``) and ``.delta`` against the
    labelled reference sample's value (and, for an error in the target's units, MAE or
    RMSE, ``.change``: that difference relative to the reference's value)."""
    out: list[Point] = []
    for name, e in (estimated or {}).items():
        if e.value is None:
            continue
        out += point(f"estimated.{name}", e.value)
        out += point(f"estimated.{name}.low", e.low)
        out += point(f"estimated.{name}.high", e.high)
        if name in reference:
            out += point(f"estimated.{name}.delta", e.value - reference[name])
            if name in REGRESSION_METRICS and reference[name] > 0:
                change = (e.value - reference[name]) / reference[name]
                out += point(f"estimated.{name}.change", change)
    return out


def measure_window(window: Window, baseline: Baseline, labels: pd.DataFrame) -> WindowResult:
    """Measure ``window`` against ``baseline``; ``labels`` holds the feedback
    (``request_id``, ``row``, ``label``) to join."""
    notes: list[str] = []
    rejected_ids = set(window.rejected["request_id"].astype(str))
    joined = labelled_rows(window.rows, labels)
    result = WindowResult(
        key=window.key,
        window=window.spec.text,
        start=window.start,
        end=window.end,
        partial=not window.complete,
        n_rows=window.n_rows,
        n_requests=window.n_requests,
        n_rejected=len(rejected_ids),
        n_labelled=len(joined),
        notes=notes,
        start_request_id=window.start_request_id,
        end_request_id=window.end_request_id,
        importance=baseline.importance,
    )
    result.drift = _drift(window, baseline)
    result.prediction_drift = _prediction_drift(window, baseline)
    if baseline.profile is not None and (window.n_rows or rejected_ids):
        names = baseline.signature.feature_names
        result.quality = check_quality(
            feature_frame(window.rows, names),
            baseline.profile,
            baseline.signature,
            schema_violations=_schema_violations(window.rejected),
        )
    result.performance = _performance(joined, baseline, notes)
    estimator = baseline.estimator
    if estimator is not None:
        result.estimated = estimate_window(window.rows, estimator, notes)
    if baseline.fairness is not None:
        classes = baseline.signature.outputs.classes
        result.fairness = measure_fairness(
            window.rows,
            joined,
            baseline.fairness,
            list(classes) if classes else None,
            notes,
            feedback=labels,
        )
    if baseline.profile is None:
        notes.append("no baseline profile: registered without reference data")
    result.points = _points(result, estimator.reference if estimator is not None else {})
    if baseline.fairness is not None and result.fairness:
        result.points += fairness_points(result.fairness, baseline.fairness, notes)
    return result


def count_labelled(rows: pd.DataFrame, labels: pd.DataFrame) -> int:
    """How many of ``rows`` have a label (cheap check for late labels)."""
    return len(labelled_rows(rows, labels))
