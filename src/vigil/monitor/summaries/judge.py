"""A large window judged from its merged summary: drift, data quality and performance.

The same reports as :mod:`vigil.monitor.measure` computes from rows, from a
:class:`~vigil.monitor.summaries.window.WindowSummary` anchored to the version's baseline:

* **Drift** — categorical columns and the binned numeric statistics (PSI, chi-squared on
  the bins) use exact counts, so they equal the row computation; numeric columns judged
  by the normalised Wasserstein distance use the window's quantiles at
  :data:`QUANTILE_GRID` ranks from the KLL sketch
  (:func:`~vigil.drift.summarised.numeric_drift_summarised`). Labels past a summary's
  exact cap (a column with more than 10,000 distinct values) are estimated by the
  frequent-items sketch and the rest pooled into one bucket.
* **Quality** — every count is exact.
* **Performance** — see :mod:`vigil.monitor.summaries.labels` (ROC AUC within its
  reported bound, the rest exact up to rounding).

A window small enough for a test on raw values (KS: effective n at most the method
table's ``SMALL_SAMPLE``) raises :class:`~vigil.drift.summarised.NeedsRawValues`; such a
window is bounded in size, and its rows are read instead.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from vigil.drift.column_drift import ColumnDrift, categorical_drift
from vigil.drift.reference import numeric_reference_from_profile
from vigil.drift.report import DriftReport, build_report
from vigil.drift.summarised import (
    POOLED,
    CategoryCounts,
    SummarisedColumn,
    bin_cuts,
    binned_counts,
    category_counts_from,
    numeric_drift_summarised,
)
from vigil.monitor.baseline import Baseline
from vigil.monitor.group_fairness import fairness_points
from vigil.monitor.measure import WindowResult, _points
from vigil.monitor.performance import Metrics, PerformanceReport, compare_metrics
from vigil.monitor.quality import FeatureQuality, QualityReport, _feature
from vigil.monitor.summaries.columns import CategoricalSummary, NumericSummary
from vigil.monitor.summaries.groups import GroupSummary
from vigil.monitor.summaries.labels import ClassificationSummary, PerformanceSummary
from vigil.monitor.summaries.window import Anchors, ColumnSummary, WindowSummary, anchors_for
from vigil.profile_schema import CategoricalProfile, NumericProfile

QUANTILE_GRID = 10_000
"""Ranks at which a numeric column's quantiles stand in for its values (Wasserstein)."""


def summarised_column(profile: NumericProfile, summary: NumericSummary) -> SummarisedColumn:
    """What :func:`~vigil.drift.summarised.numeric_drift_summarised` needs of a summary."""
    m = summary.moments
    between = summary.counts_between(np.asarray(bin_cuts(profile), dtype=np.float64))
    return SummarisedColumn(
        n=m.n,
        n_missing=m.missing,
        bin_counts=binned_counts(
            profile, between, n_missing=m.missing, n_neg_inf=m.neg_inf, n_pos_inf=m.pos_inf
        ),
        quantiles=summary.quantile_grid(QUANTILE_GRID) if m.n > 0 else None,
        n_neg_inf=m.neg_inf,
        n_pos_inf=m.pos_inf,
    )


def category_counts(profile: CategoricalProfile, summary: CategoricalSummary) -> CategoryCounts:
    """The counts :func:`~vigil.drift.categorical.count_against_profile` would give on the
    window's rows (exact while no label overflowed the summary's cap)."""
    counts = dict(summary.counts)
    if summary.overflow_weight:
        named = summary.overflow_items()
        for label, count in named.items():
            counts[label] = counts.get(label, 0) + count
        leftover = summary.overflow_weight - sum(named.values())
        if leftover > 0:
            counts[POOLED] = counts.get(POOLED, 0) + leftover
    return category_counts_from(profile, counts, summary.missing)


def column_drift(
    name: str,
    profile: NumericProfile | CategoricalProfile,
    summary: ColumnSummary,
    *,
    sample: list[object] | None = None,
) -> ColumnDrift:
    """Drift of one column from its summary (raises ``NeedsRawValues`` for KS)."""
    if isinstance(profile, CategoricalProfile):
        if not isinstance(summary, CategoricalSummary):
            raise ValueError(f"column {name!r} is categorical in the profile, numeric here")
        return categorical_drift(name, category_counts(profile, summary))
    if not isinstance(summary, NumericSummary):
        raise ValueError(f"column {name!r} is numeric in the profile, categorical here")
    reference = numeric_reference_from_profile(profile, sample)
    return numeric_drift_summarised(name, reference, summarised_column(profile, summary))


def drift_report(summary: WindowSummary, baseline: Baseline) -> DriftReport | None:
    """The dataset drift report of :func:`vigil.drift.compare_to_profile`, from a summary."""
    profile = baseline.profile
    if profile is None or not baseline.features or summary.rows == 0:
        return None
    results = [
        column_drift(
            name,
            profile.features[name],
            summary.features[name],
            sample=profile.sample.get(name),
        )
        for name in baseline.features
    ]
    return build_report(results)


def prediction_drift(summary: WindowSummary, baseline: Baseline) -> ColumnDrift | None:
    profile = baseline.profile
    if profile is None or profile.prediction is None or summary.rows == 0:
        return None
    if summary.prediction is None:
        return None
    return column_drift(
        "prediction",
        profile.prediction,
        summary.prediction,
        sample=profile.sample_predictions or None,
    )


def quality_report(summary: WindowSummary, baseline: Baseline) -> QualityReport | None:
    """The report of :func:`~vigil.monitor.quality.check_quality`, from a summary."""
    profile = baseline.profile
    if profile is None:
        return None
    n = summary.rows
    results: list[FeatureQuality] = []
    anchors = anchors_for(baseline)
    for name in baseline.signature.feature_names:
        prof = profile.features.get(name)
        anchor = anchors.features[name]
        column = summary.features.get(name)
        if anchor.kind == "numeric":
            q = summary.quality.get(name)
            results.append(
                _feature(
                    name,
                    "numeric",
                    n,
                    q.missing if q is not None else n,
                    prof,
                    type_errors=q.type_errors if q else 0,
                    out_of_range=q.out_of_range if q else 0,
                    outliers=q.outliers if q else 0,
                    infinite=q.infinite if q else 0,
                )
            )
            continue
        assert column is None or isinstance(column, CategoricalSummary)
        spec = baseline.signature.feature(name)
        cat_prof = prof if isinstance(prof, CategoricalProfile) else None
        known = set(anchor.known)
        can_tell = bool(known) and not (
            cat_prof is not None and cat_prof.other_count > 0 and not spec.categories
        )
        unseen: int | None = None
        listed: list[str] = []
        missing = n if column is None else column.missing
        if can_tell and column is not None:
            unseen = column.n - sum(column.counts.get(k, 0) for k in known)
            listed = [k for k in column.counts if k not in known][:20]
        elif can_tell:
            unseen = 0
        results.append(
            _feature(
                name,
                "categorical",
                n,
                missing,
                cat_prof,
                unseen_categories=unseen,
                unseen_values=listed,
            )
        )
    totals = {
        key: sum(int(getattr(f, key) or 0) for f in results)
        for key in ("missing", "type_errors", "out_of_range", "outliers", "infinite")
    }
    totals["unseen_categories"] = sum(int(f.unseen_categories or 0) for f in results)
    seen = n + summary.schema_violations
    return QualityReport(
        n_rows=n,
        features=tuple(results),
        schema_violations=summary.schema_violations,
        schema_violation_rate=summary.schema_violations / seen if seen else 0.0,
        totals=totals,
    )


def performance_report(summary: WindowSummary, baseline: Baseline) -> PerformanceReport | None:
    """The report of :func:`~vigil.monitor.performance.evaluate`, from a summary."""
    perf = summary.performance
    if perf is None or perf.n == 0:
        return None
    metrics = perf.metrics()
    task: Literal["classification", "regression"] = (
        "classification" if isinstance(perf, ClassificationSummary) else "regression"
    )
    reference: Metrics = dict(baseline.reference_metrics)
    deltas, relative = compare_metrics(metrics, reference)
    notes: list[str] = []
    if isinstance(perf, ClassificationSummary) and metrics["roc_auc"] is not None:
        notes.append(f"ROC AUC from score histograms, within ±{perf.auc_error():.2g}")
    return PerformanceReport(
        task=task,
        n=perf.n,
        metrics=metrics,
        reference=reference,
        deltas=deltas,
        relative_change=relative,
        notes=notes,
    )


def measure_summary(
    summary: WindowSummary,
    baseline: Baseline,
    *,
    window: str,
    partial: bool = False,
    performance: PerformanceSummary | None = None,
    labelled: int | None = None,
) -> WindowResult:
    """The :class:`~vigil.monitor.measure.WindowResult` of a window from its summary,
    with the points :func:`~vigil.monitor.measure.measure_window` stores.

    ``performance`` / ``labelled`` replace the summary's own label sums (stored summaries
    hold none: labels are joined when the window is measured).
    """
    if performance is not None:
        summary = WindowSummary.from_dict(summary.to_dict())
        summary.performance = performance
    result = WindowResult(
        key=summary.key,
        window=window,
        start=summary.start,
        end=summary.end,
        partial=partial,
        n_rows=summary.rows,
        n_requests=summary.requests,
        n_rejected=summary.rejected,
        n_labelled=summary.labelled if labelled is None else labelled,
        importance=baseline.importance,
    )
    result.drift = drift_report(summary, baseline)
    result.prediction_drift = prediction_drift(summary, baseline)
    if baseline.profile is not None and (summary.rows or summary.rejected):
        result.quality = quality_report(summary, baseline)
    result.performance = performance_report(summary, baseline)
    if result.performance is not None:
        result.notes.extend(result.performance.notes)
    if baseline.profile is None:
        result.notes.append("no baseline profile: registered without reference data")
    result.points = _points(result, {})  # estimated performance: the engine's (raw rows)
    return result


def judge_fairness(
    result: WindowResult, groups: GroupSummary | None, anchors: Anchors | None, baseline: Baseline
) -> None:
    """Fairness by group of a window judged from summaries: the reports of its merged
    group counts (:mod:`vigil.monitor.summaries.groups`) and their series points, as
    :func:`~vigil.monitor.measure.measure_window` gives them on raw rows."""
    config = baseline.fairness
    if config is None:
        return
    if anchors is None or anchors.fairness is None:
        result.notes.append(
            "no fairness metrics: set monitor.fairness.<model>.positive_label (the model "
            "is not a binary classifier)"
        )
        return
    names = [a.name for a in config.attributes]
    reports = groups.reports(names, config.min_group_size, result.notes) if groups else {}
    result.fairness = reports
    if reports:
        result.points += fairness_points(reports, config, result.notes)
