"""CBPE from a window summary's score bins (no rows) against CBPE on the rows, at 50,000 and
1,000,000 rows, with the model's probabilities used as they are and recalibrated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from tests.monitor._data import FEATURES, Trained, capture_sink, make_frame, write_traffic

from vigil.app import Vigil
from vigil.capture.compact import compact
from vigil.capture.log import SegmentLog
from vigil.monitor.baseline import load_baseline
from vigil.monitor.engine import monitor_windows
from vigil.monitor.estimated import CBPE, METRICS
from vigil.monitor.estimation import Estimator, estimate_binned
from vigil.monitor.score_bins import ScoreBins
from vigil.monitor.settings import MonitorSettings
from vigil.monitor.summaries import dumps, loads, merge_all, summarise

INTERVAL = 0.003
"""Largest difference allowed between the intervals' ends: both are quantiles of 200 label
draws, drawn per row on one side and per bin (binomial) on the other, so they differ by
Monte Carlo noise (about 0.001 at 50,000 rows). Measured: at most 0.0014."""


def _window(
    rng: np.random.Generator, n: int, bent: bool
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Scores, labels and predictions; ``bent``: scores that are not probabilities (their
    square), which CBPE recalibrates on the reference."""
    x = rng.normal(0.7, 1, n)
    p = 1 / (1 + np.exp(-(1.5 * x - 0.3)))
    y = (rng.random(n) < p).astype(np.int64)
    score = p**2 if bent else p
    return score, y, (score >= (0.25 if bent else 0.5)).astype(np.int64)


def _fitted(bent: bool) -> CBPE:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 5000)
    p = 1 / (1 + np.exp(-(1.5 * x - 0.3)))
    y = (rng.random(5000) < p).astype(np.int64)
    score = p**2 if bent else p
    cbpe = CBPE(["0", "1"], n_draws=200).fit(y.astype(str), np.column_stack([1 - score, score]))
    assert bool(cbpe.calibrators_) == bent
    return cbpe


def _bins(score: npt.NDArray[np.float64], pred: npt.NDArray[np.int64]) -> ScoreBins:
    bins = ScoreBins()
    bins.update(pred.astype(str).tolist(), score)
    return bins


def _expected(cbpe: CBPE, score: npt.NDArray[np.float64], pred: npt.NDArray[np.int64]) -> dict:
    """CBPE's expected metrics on the rows, without its label draws (costly at 1M rows)."""
    scores = np.column_stack([1 - score, score])
    proba = cbpe.calibrated(scores)
    out = cbpe._metrics(proba.T @ np.eye(2)[pred])
    out["roc_auc"] = cbpe._auc(scores, proba)
    return out


@pytest.mark.parametrize("bent", [False, True], ids=["as-is", "recalibrated"])
def test_binned_estimate_equals_the_rows_within_its_bound(bent: bool) -> None:
    cbpe = _fitted(bent)
    rng = np.random.default_rng(1)
    for n in (50_000, 1_000_000):
        score, _, pred = _window(rng, n, bent)
        binned, bound = cbpe.estimate_binned(*_bins(score, pred).arrays(["0", "1"]))
        rows = _expected(cbpe, score, pred)
        # The bound stated with the estimate: 4e-4 as-is (the AUC's ties), 8.3e-3
        # recalibrated (where the isotonic steps fall inside a bin). Measured differences:
        # 1e-15 (ROC AUC 4.2e-7) as-is, at most 7.4e-5 recalibrated.
        assert bound < (1e-3 if not bent else 1e-2)
        for m in METRICS:
            value, want = binned[m].value, rows[m]
            assert value is not None and want is not None
            assert value == pytest.approx(want, abs=bound + 1e-12), (n, m)
            if not bent and m != "roc_auc":
                assert value == pytest.approx(want, abs=1e-12)  # the bins' sums are exact
        if n == 50_000:  # the rows' intervals (label draws per row) at this size
            full = cbpe.estimate(np.column_stack([1 - score, score]), pred.astype(str))
            for m in METRICS:
                assert binned[m].low == pytest.approx(full[m].low, abs=INTERVAL), m
                assert binned[m].high == pytest.approx(full[m].high, abs=INTERVAL), m


def test_a_window_summary_keeps_the_bins_and_the_monitor_estimates_from_them() -> None:
    cbpe = _fitted(False)
    n = 50_000
    score, _, pred = _window(np.random.default_rng(2), n, False)
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    table = pa.table(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "row": np.zeros(n, dtype=np.int64),
            "time": pa.array(
                [t0 + timedelta(seconds=i * 0.1) for i in range(n)],
                pa.timestamp("us", tz="UTC"),
            ),
            "model": ["m"] * n,
            "version": np.ones(n, dtype=np.int64),
            "route": ["native_predict"] * n,
            "status": np.full(n, 200, dtype=np.int64),
            "prediction": pred,
            "proba.0": 1 - score,
            "proba.1": score,
        }
    )
    # Two hourly buckets, stored as JSON and merged: the window's summary.
    summaries = loads(dumps(summarise(table.to_batches(max_chunksize=8192), grain_s=3600)))
    assert len(summaries) == 2
    window = merge_all(summaries)
    assert window is not None and window.rows == n
    estimator = Estimator(cbpe, ["0", "1"], {})
    notes: list[str] = []
    from_summary = estimate_binned(window.scores, estimator, notes)
    direct, _ = cbpe.estimate_binned(*_bins(score, pred).arrays(["0", "1"]))
    assert from_summary is not None and "50,000 rows in 1024 probability bins" in notes[0]
    rows = _expected(cbpe, score, pred)
    for m in METRICS:
        got, want = from_summary[m], direct[m]  # the same bins, summed in another order
        assert (got.value, got.low, got.high) == pytest.approx((want.value, want.low, want.high))
        assert from_summary[m].value == pytest.approx(rows[m], abs=1e-6)
    # A multiclass model, or a summary from before the bins: no estimate from them.
    assert estimate_binned({}, estimator, []) is None
    three = Estimator(CBPE(["a", "b", "c"]), ["a", "b", "c"], {})
    assert estimate_binned(window.scores, three, []) is None


def test_an_hour_over_the_raw_row_limit_is_estimated_from_its_summary(
    empty_vigil: Vigil, trained: Trained
) -> None:
    # 24,000 rows in one hour (over the 20,000 raw rows an estimate may read), compacted:
    # the summary pass judges it (a reference of 20,000 rows, so its drift is judged from
    # summaries too) and estimates it from the summary's score bins.
    vigil = empty_vigil
    vigil.register(
        trained.model, name="churn", reference=make_frame(20_000, seed=7), target="label"
    )
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    frame = make_frame(24_000, seed=21, shift_age=True)
    sink = capture_sink(vigil)
    write_traffic(sink, trained.model, frame, start=t0, step=timedelta(seconds=10), batch=100)
    sink.close()
    compact(SegmentLog(vigil.capture_dir), vigil.artifacts)
    on = MonitorSettings(window="1h", rules=[], grace_s=0, summaries=True)
    done = monitor_windows(vigil, model="churn", now=t0 + timedelta(hours=2), settings=on)
    (result,) = done.results
    assert result.n_rows == 24_000 and result.estimated is not None, result.notes
    assert any("estimated from the window's summary (24,000 rows" in n for n in result.notes)
    estimator = load_baseline(vigil, "churn", 1).estimator
    assert estimator is not None and estimator.cbpe is not None
    proba = trained.model.predict_proba(frame[FEATURES])
    predicted = trained.model.predict(frame[FEATURES]).astype(str)
    bins = ScoreBins()
    bins.update(predicted.tolist(), proba[:, 1])
    want, bound = estimator.cbpe.estimate_binned(*bins.arrays(estimator.keys))
    rows = _expected(estimator.cbpe, proba[:, 1], predicted.astype(np.int64))
    for m in METRICS:
        got = result.value(f"estimated.{m}")
        assert got == pytest.approx(want[m].value), m  # what the logged rows' bins give
        assert got == pytest.approx(rows[m], abs=bound + 1e-9), m  # and the rows, within
        assert result.value(f"estimated.{m}.low") == pytest.approx(want[m].low), m
