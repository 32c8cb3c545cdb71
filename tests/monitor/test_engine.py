"""The engine on a synthetic capture log written by the real CaptureSink (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score
from sqlalchemy import func, select
from tests.monitor._data import Trained, capture_sink, make_frame, write_traffic

from vigil.app import Vigil
from vigil.drift import compare_to_profile
from vigil.errors import ModelNotFoundError
from vigil.monitor.baseline import load_baseline
from vigil.monitor.engine import Resume, monitor_windows
from vigil.monitor.measure import WindowResult
from vigil.monitor.series import read_series, stored_windows
from vigil.monitor.settings import MonitorSettings
from vigil.monitor.tables import MonitorPointRow, MonitorWindowRow

T0 = datetime(2025, 3, 1, tzinfo=UTC)
SETTINGS = MonitorSettings(window="1h", rules=[], grace_s=0)


def run_monitoring(app: Any, **options: Any) -> list[WindowResult]:
    """The windows one pass computed and stored."""
    return monitor_windows(app, **options).results


def _points(vigil: Vigil) -> int:
    with vigil.database.session() as s:
        return int(s.scalar(select(func.count()).select_from(MonitorPointRow)) or 0)


def _log_two_hours(vigil: Vigil, trained: Trained) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hour 0: reference-like traffic. Hour 1: age and plan shifted, income unchanged."""
    calm = make_frame(400, seed=1)
    shifted = make_frame(400, seed=3, shift_age=True, shift_plan=True)
    sink = capture_sink(vigil)
    write_traffic(sink, trained.model, calm, start=T0, step=timedelta(seconds=10), batch=4)
    write_traffic(
        sink,
        trained.model,
        shifted,
        start=T0 + timedelta(hours=1),
        step=timedelta(seconds=10),
        batch=4,
        prefix="s",
    )
    sink.close()
    return calm, shifted


def test_drift_only_on_shifted_features_and_accuracy_from_late_labels(
    vigil: Vigil, trained: Trained
) -> None:
    calm, shifted = _log_two_hours(vigil, trained)
    now = T0 + timedelta(hours=3)

    first = run_monitoring(vigil, now=now, settings=SETTINGS)
    assert [(r.start, r.end, r.partial) for r in first] == [
        (T0, T0 + timedelta(hours=1), False),
        (T0 + timedelta(hours=1), T0 + timedelta(hours=2), False),
    ]
    quiet, moved = first
    assert (quiet.n_rows, quiet.n_requests, quiet.n_rejected) == (400, 100, 0)
    assert quiet.drifted_features == [] and quiet.dataset_drifted is False
    assert sorted(moved.drifted_features) == ["age", "plan"]
    assert moved.dataset_drifted is True
    assert moved.value("drift.share") == pytest.approx(2 / 3)
    assert moved.value("drift.drifted", "income") == 0.0
    assert moved.n_labelled == 0 and moved.performance is None

    # The stored statistic is exactly what the drift module says about the same rows.
    baseline = load_baseline(vigil, "churn", 1)
    assert baseline.profile is not None
    direct = compare_to_profile(
        baseline.profile,
        {
            "age": shifted["age"].to_numpy(),
            "income": shifted["income"].to_numpy(),
            "plan": shifted["plan"].to_numpy(dtype=object),
        },
    )
    for column in direct.columns:
        assert moved.value("drift.statistic", column.column) == pytest.approx(column.statistic)
    points = read_series(vigil.database, metrics=["drift.dataset"])
    assert [(p.window_start, p.value) for p in points] == [
        (T0, 0.0),
        (T0 + timedelta(hours=1), 1.0),
    ]

    # Labels arrive two days later for three rows out of four; they land in the windows of
    # their predictions, which are recomputed, and nothing else.
    before = _points(vigil)
    assert run_monitoring(vigil, now=now, settings=SETTINGS) == []
    assert _points(vigil) == before
    late = now + timedelta(days=2)
    labels = []
    for prefix, frame in (("r", calm), ("s", shifted)):
        for i in range(len(frame)):
            if i % 4 != 3:
                labels.append(
                    {
                        "request_id": f"{prefix}{i // 4:06d}",
                        "row": i % 4,
                        "label": int(frame["label"].iloc[i]),
                        "time": late,
                    }
                )
    store = vigil.feedback_store()
    assert store.submit(labels).accepted == 600
    store.close()

    again = run_monitoring(vigil, now=now + timedelta(days=2), settings=SETTINGS)
    assert [(r.start, r.n_labelled) for r in again] == [
        (T0, 300),
        (T0 + timedelta(hours=1), 300),
    ]
    for result, frame in zip(again, (calm, shifted), strict=True):
        keep = np.arange(len(frame)) % 4 != 3
        truth = frame["label"].to_numpy()[keep]
        predicted = trained.model.predict(frame[["age", "income", "plan"]])[keep]
        assert result.value("performance.accuracy") == pytest.approx(
            accuracy_score(truth, predicted)
        )
        assert result.value("performance.f1") == pytest.approx(f1_score(truth, predicted))
        assert result.value("performance.accuracy.delta") == pytest.approx(
            accuracy_score(truth, predicted) - trained.accuracy
        )
        assert result.value("performance.labelled") == 300
    # Replaced, not appended: one row per window and as many drift points as before.
    with vigil.database.session() as s:
        assert s.scalar(select(func.count()).select_from(MonitorWindowRow)) == 2
    assert len(read_series(vigil.database, metrics=["drift.dataset"])) == 2
    assert run_monitoring(vigil, now=now + timedelta(days=2), settings=SETTINGS) == []


def test_partial_window_on_demand_then_completed(vigil: Vigil, trained: Trained) -> None:
    sink = capture_sink(vigil)
    write_traffic(sink, trained.model, make_frame(60, seed=3), start=T0, step=timedelta(seconds=30))
    sink.close()
    during = T0 + timedelta(minutes=40)

    assert run_monitoring(vigil, now=during, settings=SETTINGS) == []
    (partial,) = run_monitoring(vigil, now=during, settings=SETTINGS, partial=True)
    assert partial.partial and partial.n_rows == 60
    assert [w.partial for w in stored_windows(vigil.database, window="1h")] == [True]
    assert read_series(vigil.database, metrics=["traffic.rows"]) == []  # alerts never see it

    after = T0 + timedelta(hours=1, minutes=1)
    (complete,) = run_monitoring(vigil, now=after, settings=SETTINGS)
    assert not complete.partial and complete.n_rows == 60
    assert [w.partial for w in stored_windows(vigil.database, window="1h")] == [False]
    assert [p.value for p in read_series(vigil.database, metrics=["traffic.rows"])] == [60.0]


def test_grace_keeps_a_just_ended_window_open(vigil: Vigil, trained: Trained) -> None:
    sink = capture_sink(vigil)
    write_traffic(sink, trained.model, make_frame(20, seed=4), start=T0)
    sink.close()
    settings = MonitorSettings(window="1h", rules=[], grace_s=120)
    assert run_monitoring(vigil, now=T0 + timedelta(hours=1, seconds=60), settings=settings) == []
    assert (
        len(run_monitoring(vigil, now=T0 + timedelta(hours=1, minutes=3), settings=settings)) == 1
    )


def test_count_windows_continue_where_the_last_one_ended(vigil: Vigil, trained: Trained) -> None:
    sink = capture_sink(vigil)
    frame = make_frame(300, seed=5)
    write_traffic(sink, trained.model, frame.iloc[:150], start=T0, batch=3)
    now = T0 + timedelta(hours=1)
    settings = MonitorSettings(window="100", rules=[])

    first = run_monitoring(vigil, now=now, settings=settings)
    # 50 requests of 3 rows: a window closes at the first request boundary past 100 rows.
    assert [(r.n_rows, r.partial) for r in first] == [(102, False)]
    assert first[0].end_request_id == "r000033"

    write_traffic(
        sink, trained.model, frame.iloc[150:], start=T0 + timedelta(minutes=30), batch=3, prefix="t"
    )
    sink.close()
    second = run_monitoring(vigil, now=now, settings=settings, partial=True)
    assert [(r.n_rows, r.partial, r.start_request_id) for r in second] == [
        (102, False, "r000034"),
        (96, True, "t000018"),
    ]
    stored = stored_windows(vigil.database, window="100")
    assert sum(w.n_rows for w in stored) == 300

    # A late label for the first window brings exactly that window back.
    store = vigil.feedback_store()
    store.submit([{"request_id": "r000001", "row": 2, "label": 1}])
    store.close()
    (relabelled,) = run_monitoring(vigil, now=now, settings=settings)
    assert (relabelled.start_request_id, relabelled.n_labelled) == ("r000000", 1)


def test_quality_errors_and_schema_violations(vigil: Vigil) -> None:
    route = "native_predict"
    sink = capture_sink(vigil)
    rng = np.random.default_rng(6)
    age = rng.normal(40, 10, 100)
    age[:10] = np.nan
    age[10:13] = 500.0
    plan = np.array(["basic"] * 100, dtype=object)
    plan[20:25] = "enterprise"
    features = pd.DataFrame({"age": age, "income": rng.normal(50, 12, 100), "plan": plan})
    for i in range(100):
        sink.record_prediction(
            request_id=f"q{i:03d}",
            model="churn",
            version=1,
            features=features.iloc[[i]].reset_index(drop=True),
            predictions=np.array([0]),
            route=route,
            time=T0 + timedelta(seconds=i),
        )
    for i, (status, code) in enumerate(
        [(422, "validation_error")] * 4 + [(500, "prediction_failed")]
    ):
        sink.record_failure(
            request_id=f"bad{i}",
            status=status,
            error_code=code,
            error_message="refused",
            model="churn",
            version=1,
            route=route,
            time=T0 + timedelta(minutes=5, seconds=i),
        )
    sink.close()

    (result,) = run_monitoring(vigil, now=T0 + timedelta(hours=2), settings=SETTINGS)
    assert (result.n_rows, result.n_requests, result.n_rejected) == (100, 105, 5)
    assert result.value("traffic.error_rate") == pytest.approx(5 / 105)
    assert result.value("quality.schema_violation_rate") == pytest.approx(4 / 104)
    assert result.value("quality.missing_rate", "age") == pytest.approx(0.10)
    assert result.value("quality.out_of_range_rate", "age") == pytest.approx(0.03)
    assert result.value("quality.unseen_category_rate", "plan") == pytest.approx(0.05)
    assert result.value("quality.missing_rate", "income") == 0.0


def test_unknown_model_is_a_clear_error(vigil: Vigil) -> None:
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'"):
        run_monitoring(vigil, model="nope", settings=SETTINGS)


def test_resume_reads_only_what_can_change(vigil: Vigil, trained: Trained) -> None:
    rows = SETTINGS.model_copy(update={"summaries": False})  # the row engine's reading
    sink = capture_sink(vigil)
    frame = make_frame(90, seed=8)
    write_traffic(sink, trained.model, frame.iloc[:30], start=T0, step=timedelta(minutes=1))
    resume = Resume()
    now = T0 + timedelta(minutes=90)

    first = monitor_windows(vigil, now=now, settings=rows, resume=resume)
    assert len(first.results) == 1 and first.stream is not None
    assert first.stream.rows_read == 30
    write_traffic(
        sink,
        trained.model,
        frame.iloc[30:],
        start=T0 + timedelta(hours=1),
        step=timedelta(minutes=1),
        prefix="n",
    )
    sink.close()
    later = T0 + timedelta(hours=3)
    second = monitor_windows(vigil, now=later, settings=rows, resume=resume)
    (window,) = second.results
    assert (window.start, window.n_rows) == (T0 + timedelta(hours=1), 60)
    # The second run began at the window still open at the first: the new rows only.
    assert second.since == later - timedelta(days=7) and second.stream is not None
    assert (second.n_records, second.stream.rows_read) == (60, 60)

    # A late label: windows it may join are read again alone, the lookback is not. This one
    # could not be placed (its prediction is older than the feedback store's look-up
    # reaches), so either window may hold it: both are read, the one it joins recomputed.
    store = vigil.feedback_store()
    store.submit([{"request_id": "r000003", "row": 0, "label": 1}])
    store.close()
    third = monitor_windows(vigil, now=later, settings=rows, resume=resume)
    (relabelled,) = third.results
    assert (relabelled.start, relabelled.n_labelled) == (T0, 1)
    assert third.stream is not None and third.stream.rows_read == 30 + 60
    fourth = monitor_windows(vigil, now=later, settings=rows, resume=resume)
    assert fourth.results == [] and fourth.stream is not None
    assert fourth.stream.rows_read == 0  # nothing open, no new label: nothing read
