"""Windows read as rows from a bounded stream of the log (vigil.monitor.streamed).

Traffic written by the real CaptureSink, partly compacted into the real store. Every result
is checked against the rows path as it was before streaming (the whole lookback read into
one frame, cut by split_windows, measured by measure_window), assembled here from those
same public functions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from tests.monitor._data import Trained, capture_sink, make_frame, write_traffic

from vigil.app import Vigil
from vigil.capture.compact import compact
from vigil.capture.log import SegmentLog
from vigil.capture.reader import read_capture
from vigil.monitor import streamed
from vigil.monitor.baseline import load_baseline
from vigil.monitor.engine import MonitoringPass, candidate_windows, due_windows, monitor_windows
from vigil.monitor.measure import WindowResult, measure_window
from vigil.monitor.series import stored_windows
from vigil.monitor.settings import MonitorSettings
from vigil.monitor.windows import parse_window

# Recent enough for the feedback store to find each label's prediction (and place it).
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=8)
NOW = T0 + timedelta(hours=6)
STEP = timedelta(seconds=24)  # 4 rows a request: 600 rows an hour


def _settings(window: str) -> MonitorSettings:
    return MonitorSettings(window=window, rules=[], grace_s=0, summaries=False)


def _traffic(app: Vigil, trained: Trained) -> int:
    """Two hours calm, two hours with age and plan shifted (compacted), one hour calm in
    a segment not compacted yet, and a rejected request every 50; returns the rows."""
    sink = capture_sink(app)
    write_traffic(sink, trained.model, make_frame(1200, 1), start=T0, step=STEP, batch=4)
    shifted = make_frame(1200, 3, shift_age=True, shift_plan=True)
    start = T0 + timedelta(hours=2)
    write_traffic(sink, trained.model, shifted, start=start, step=STEP, batch=4, prefix="s")
    for i in range(0, 600, 50):
        sink.record_failure(
            request_id=f"x{i:04d}",
            status=422,
            error_code="validation_error",
            error_message="age: not a number",
            model="churn",
            version=1,
            route="native_predict",
            time=T0 + i * STEP + timedelta(seconds=1),
        )
    sink.close()
    compact(SegmentLog(app.capture_dir), app.artifacts)
    sink = capture_sink(app)
    later = T0 + timedelta(hours=4)
    write_traffic(
        sink, trained.model, make_frame(600, 5), start=later, step=STEP, batch=4, prefix="c"
    )
    sink.close()
    return 3000


def _label(app: Vigil, ids: list[str]) -> None:
    store = app.feedback_store()
    store.submit(
        [
            {"request_id": r, "row": k, "label": (i + k) % 2}
            for i, r in enumerate(ids)
            for k in range(4)
        ]
    )
    placed = store.read()["prediction_time"].notna()
    store.close()
    assert placed.all()  # each label is placed in its prediction's window


def _current_path(app: Vigil, window: str) -> list[WindowResult]:
    """The rows path before streaming: the whole lookback in one frame."""
    spec = parse_window(window)
    since = NOW - timedelta(days=7)
    frame = read_capture("churn", since, NOW, store=app.artifacts, log_dir=app.capture_dir)
    store = app.feedback_store()
    labels = store.read(since)
    store.close()
    windows = candidate_windows(frame, [], spec, now=NOW, grace_s=0, rebuild=False)
    baseline = load_baseline(app, "churn", 1)
    return [
        measure_window(w, baseline, labels) for w in due_windows(windows, labels, [], partial=False)
    ]


def _digest(result: WindowResult) -> tuple[Any, ...]:
    points = sorted((p.metric, p.feature or "", p.value) for p in result.points)
    return (
        result.start,
        result.end,
        result.start_request_id,
        result.end_request_id,
        result.n_rows,
        result.n_requests,
        result.n_rejected,
        result.n_labelled,
        sorted(result.drifted_features),
        points,
    )


def _run(app: Vigil, window: str, now: datetime = NOW) -> MonitoringPass:
    return monitor_windows(app, model="churn", now=now, settings=_settings(window))


@pytest.mark.parametrize("window", ["200", "1h or 250", "1h"])
def test_same_windows_and_numbers_as_the_whole_lookback_read(
    vigil: Vigil, trained: Trained, window: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _traffic(vigil, trained)
    _label(vigil, [f"r{i:06d}" for i in range(0, 150, 3)] + [f"s{i:06d}" for i in range(0, 300, 7)])
    monkeypatch.setattr(streamed, "SLICE_ROWS", 250)  # many slices, windows across them
    expected = _current_path(vigil, window)

    done = _run(vigil, window)

    assert [_digest(r) for r in done.results] == [_digest(r) for r in expected]
    assert any(r.drifted_features for r in expected) and any(r.n_labelled for r in expected)
    assert any(r.performance is not None for r in done.results)
    stats = done.stream
    assert stats is not None and stats.slices >= rows // 250
    assert stats.rows_read == rows + 12  # every record read once (12 rejected)
    # Only the columns measuring reads: no raw bodies, latencies or error messages.
    assert {"raw_body", "latency_ms", "error_message"}.isdisjoint(stats.columns)
    assert {"feature.age", "feature.plan", "feature.income", "prediction"} <= set(stats.columns)


def test_rows_held_stay_bounded_and_a_cycle_reads_what_is_new(
    vigil: Vigil, trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _traffic(vigil, trained)
    monkeypatch.setattr(streamed, "SLICE_ROWS", 250)
    first = _run(vigil, "200")
    assert first.stream is not None
    # A slice (250 rows, each second holding one request) plus one open window carried
    # (under 200 rows and one request of 4) and the 12 rejections: never the 3,012 records.
    assert first.stream.peak_rows <= 250 + 200 + 4 + 12
    assert first.stream.rows_read == rows + 12

    # One more segment: the next cycle reads it and the window still open, nothing else.
    sink = capture_sink(vigil)
    start = NOW - timedelta(minutes=50)
    write_traffic(sink, trained.model, make_frame(400, 6), start=start, step=STEP / 4, prefix="n")
    sink.close()
    second = _run(vigil, "200", now=NOW + timedelta(minutes=10))
    assert second.stream is not None
    assert 400 <= second.stream.rows_read <= 400 + 200 + 4
    assert sum(r.n_rows for r in second.results) >= 400
    # No window twice, and every row of the complete windows in exactly one of them.
    stored = stored_windows(vigil.database, window="200", model="churn")
    assert len({s.start_request_id for s in stored}) == len(stored)
    open_rows = sum(w.n_rows for w in second.waiting)
    assert sum(s.n_rows for s in stored) + open_rows == rows + 400


def test_a_late_label_reads_the_window_it_joins_alone(vigil: Vigil, trained: Trained) -> None:
    _traffic(vigil, trained)
    _run(vigil, "200")
    _label(vigil, ["s000120", "s000121"])  # rows of one window of the shifted hours

    again = _run(vigil, "200")

    (relabelled,) = again.results
    assert relabelled.n_labelled == 8 and relabelled.performance is not None
    assert again.stream is not None and again.stream.rows_read <= 250  # its own span only
    (expected,) = [r for r in _current_path(vigil, "200") if r.start == relabelled.start]
    assert _digest(relabelled) == _digest(expected)
    assert _run(vigil, "200").results == []  # its mark is stored: nothing to do again


class Killed(BaseException):
    """The process dying between two writes."""


@pytest.mark.parametrize("written", [True, False])
def test_a_kill_between_window_writes_never_counts_a_window_twice(
    vigil: Vigil, trained: Trained, monkeypatch: pytest.MonkeyPatch, written: bool
) -> None:
    _traffic(vigil, trained)
    real = streamed.save_window
    calls: list[int] = []

    def dies_at_the_fourth(db: Any, result: WindowResult) -> bool:
        calls.append(1)
        if len(calls) == 4:
            if written:
                real(db, result)  # the fourth window is written, then the process dies
            raise Killed
        return real(db, result)

    monkeypatch.setattr(streamed, "save_window", dies_at_the_fourth)
    with pytest.raises(Killed):
        _run(vigil, "200")
    monkeypatch.setattr(streamed, "save_window", real)
    _run(vigil, "200")

    stored = stored_windows(vigil.database, window="200", model="churn")
    expected = _current_path(vigil, "200")
    assert [(s.start, s.start_request_id, s.end_request_id, s.n_rows) for s in stored] == [
        (r.start, r.start_request_id, r.end_request_id, r.n_rows) for r in expected
    ]


def test_marks_count_placed_labels_in_the_span_and_loose_ones_since_it_began() -> None:
    t = pd.Timestamp("2026-01-05 10:30", tz="UTC")
    labels = pd.DataFrame(
        {
            "request_id": ["a", "b", "c", "d"],
            "row": 0,
            "label": [1, 0, 1, None],
            "time": [t + pd.Timedelta(hours=h) for h in (1, 2, 3, 4)],
            "prediction_time": [t, t + pd.Timedelta(minutes=5), pd.NaT, t],
            "prediction_model": ["churn", "other", None, "churn"],
        }
    )
    marks = streamed.WindowMarks(labels)
    at = t.to_pydatetime()
    # a (placed at its start), c (not placed, arrived later); b is another model's, d no label
    assert marks.of("churn", at, at + timedelta(minutes=10), inclusive=False) == 2
    assert (
        marks.of("churn", at + timedelta(seconds=1), at + timedelta(hours=1), inclusive=True) == 1
    )
    assert marks.of("churn", at + timedelta(hours=5), at + timedelta(hours=6), inclusive=True) == 0
