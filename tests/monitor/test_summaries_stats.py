"""Large windows judged from merged summaries agree with the exact computation on their rows.

The exact side is the monitor's own path (:func:`vigil.monitor.measure.measure_window`,
i.e. :func:`vigil.drift.compare_to_profile`, the quality checks and scikit-learn's
metrics) on the same rows. Binned statistics, category statistics, quality counts and
every performance metric but ROC AUC must be equal (up to rounding); the normalised
Wasserstein distance must be within :data:`W_BOUND` (in reference standard deviations,
5 % of its 0.1 threshold) and within 1 % where it is large; ROC AUC within the bound the
summary reports. Verdicts must be the same.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from tests.monitor._summaries import (
    answered,
    baseline,
    capture_table,
    features,
    labels_for,
    window_of,
)

from vigil.drift import compare_to_profile
from vigil.drift.column_drift import ColumnDrift
from vigil.drift.summarised import NeedsRawValues
from vigil.monitor.baseline import Baseline
from vigil.monitor.measure import measure_window
from vigil.monitor.summaries import anchors_for, merge_all, summarise
from vigil.monitor.summaries.judge import (
    drift_report,
    performance_report,
    prediction_drift,
    quality_report,
)
from vigil.monitor.summaries.labels import ClassificationSummary
from vigil.monitor.summaries.window import WindowSummary

W_BOUND = 0.005
"""Largest gap allowed between the normalised Wasserstein distance from a summary and the
exact one (measured: under 0.002 with the KLL sketch's k=2000)."""


@pytest.fixture(scope="module")
def mixture_baseline() -> Baseline:
    return baseline(features(20_000, 0, numeric=20, categorical=5))


def _summary(table: pa.Table, base: Baseline, labels: object = None, **kw: object) -> WindowSummary:
    anchors = anchors_for(base)
    parts = summarise(
        table.to_batches(max_chunksize=8192),
        lambda m, v: anchors,
        labels=labels,  # type: ignore[arg-type]
        grain_s=600,  # ten-minute buckets: the window is a merge of five of them
        **kw,  # type: ignore[arg-type]
    )
    merged = merge_all(parts)
    assert merged is not None
    return merged


def _same_column(got: ColumnDrift, want: ColumnDrift) -> None:
    assert (got.column, got.method, got.drifted) == (want.column, want.method, want.drifted)
    assert (got.n_current, got.current_missing, got.current_infinite) == (
        want.n_current,
        want.current_missing,
        want.current_infinite,
    )
    assert got.statistic is not None and want.statistic is not None
    if got.method == "wasserstein_normalised":
        gap = abs(got.statistic - want.statistic)
        assert gap <= max(W_BOUND, 0.01 * want.statistic), (got.column, gap)
    else:
        assert got.statistic == pytest.approx(want.statistic, rel=1e-12), got.column
        assert got.p_value == want.p_value or got.p_value == pytest.approx(want.p_value)


def _check_window(table: pa.Table, base: Baseline, labels: object) -> list[str]:
    summary = _summary(table, base, labels)
    exact = measure_window(window_of(table), base, labels)  # type: ignore[arg-type]
    assert (summary.rows, summary.requests, summary.rejected, summary.labelled) == (
        exact.n_rows,
        exact.n_requests,
        exact.n_rejected,
        exact.n_labelled,
    )
    drift = drift_report(summary, base)
    assert drift is not None and exact.drift is not None
    for got, want in zip(drift.columns, exact.drift.columns, strict=True):
        _same_column(got, want)
    assert drift.dataset_drifted == exact.drift.dataset_drifted
    assert drift.n_drifted == exact.drift.n_drifted
    pred = prediction_drift(summary, base)
    assert pred is not None and exact.prediction_drift is not None
    _same_column(pred, exact.prediction_drift)
    quality = quality_report(summary, base)
    assert quality is not None and exact.quality is not None
    assert quality.to_dict() == exact.quality.to_dict()
    perf = performance_report(summary, base)
    assert perf is not None and exact.performance is not None
    assert isinstance(summary.performance, ClassificationSummary)
    for name, want_value in exact.performance.metrics.items():
        got_value = perf.metrics[name]
        assert got_value is not None and want_value is not None, name
        if name == "roc_auc":
            assert abs(got_value - want_value) <= summary.performance.auc_error()
        else:
            assert got_value == pytest.approx(want_value, rel=1e-9), name
    assert perf.deltas.keys() == exact.performance.deltas.keys()
    return drift.drifted_columns


def test_a_shifted_mixture_gets_the_exact_verdicts(mixture_baseline: Baseline) -> None:
    frame = features(50_000, 1, numeric=20, categorical=5, shifted=3)
    table = capture_table(frame, 1)
    drifted = _check_window(table, mixture_baseline, labels_for(table, 1))
    assert drifted == ["x0", "x1", "x2", "c0"]


def test_an_iid_window_flags_nothing(mixture_baseline: Baseline) -> None:
    frame = features(50_000, 2, numeric=20, categorical=5)
    table = capture_table(frame, 2)
    assert _check_window(table, mixture_baseline, labels_for(table, 2)) == []


def test_binned_statistics_equal_the_raw_computation(mixture_baseline: Baseline) -> None:
    # Without the profile's sample every numeric column is judged by PSI on its bins.
    profile = mixture_baseline.profile
    assert profile is not None
    base = Baseline("m", 1, mixture_baseline.signature, profile.model_copy(update={"sample": {}}))
    frame = features(50_000, 3, numeric=20, categorical=5, shifted=2)
    drift = drift_report(_summary(capture_table(frame, 3), base), base)
    exact = compare_to_profile(base.profile, answered(frame))  # type: ignore[arg-type]
    assert drift is not None
    for got, want in zip(drift.columns, exact.columns, strict=True):
        assert got.method == want.method and got.method in ("psi", "js")
        _same_column(got, want)
    assert drift.drifted_columns == ["x0", "x1", "c0"]


def test_a_small_window_is_left_to_the_raw_tests(mixture_baseline: Baseline) -> None:
    table = capture_table(features(600, 4, numeric=20, categorical=5), 4)
    with pytest.raises(NeedsRawValues, match="ks needs the window's raw values"):
        drift_report(_summary(table, mixture_baseline), mixture_baseline)


@pytest.mark.slow
def test_a_million_rows_against_the_exact_computation() -> None:
    """1M rows, 8 numeric and 3 categorical features, three shifted: drift verdicts and
    statistics, PSI on the bins, quality counts and classification metrics."""
    from sklearn import metrics as skm

    base = baseline(features(20_000, 10, numeric=8, categorical=3))
    frame = features(1_000_000, 11, numeric=8, categorical=3, shifted=3)
    table = capture_table(frame, 11)
    summary = _summary(table, base)
    drift = drift_report(summary, base)
    current = {c: v.to_numpy() for c, v in answered(frame).items()}
    exact = compare_to_profile(base.profile, current)  # type: ignore[arg-type]
    assert drift is not None
    for got, want in zip(drift.columns, exact.columns, strict=True):
        _same_column(got, want)
    assert drift.drifted_columns == exact.drifted_columns == ["x0", "x1", "x2", "c0"]
    assert drift.dataset_drifted == exact.dataset_drifted
    profile = base.profile
    assert profile is not None
    unsampled = Baseline("m", 1, base.signature, profile.model_copy(update={"sample": {}}))
    binned = drift_report(summary, unsampled)
    exact_binned = compare_to_profile(unsampled.profile, current)  # type: ignore[arg-type]
    assert binned is not None
    for got, want in zip(binned.columns, exact_binned.columns, strict=True):
        _same_column(got, want)
    # Performance sums on a million labelled rows against scikit-learn.
    rng = np.random.default_rng(12)
    p1 = rng.random(1_000_000)
    truth = np.where(rng.random(p1.size) < p1, "1", "0")
    pred = np.where(p1 > 0.5, "1", "0")
    perf = ClassificationSummary(["0", "1"])
    for part in np.array_split(np.arange(p1.size), 16):
        perf.update(list(truth[part]), list(pred[part]), np.column_stack([1 - p1, p1])[part])
    metrics = perf.metrics()
    assert metrics["f1"] == pytest.approx(skm.f1_score(truth, pred, pos_label="1"), rel=1e-9)
    auc = skm.roc_auc_score(truth == "1", p1)
    assert abs(metrics["roc_auc"] - auc) <= perf.auc_error() < 2e-4  # type: ignore[operator]
