"""The engine with ``summaries`` on: whole-hour windows judged from stored summaries.

Traffic written by the real CaptureSink, compacted into the real store; the windows the
summary pass stores must carry the exact engine's verdicts and counts, small windows are
read raw, late labels bring back exactly the windows they concern, and a second run with
nothing new computes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.monitor._data import FEATURES, Trained, capture_sink, make_frame, write_traffic

from vigil.app import Vigil
from vigil.capture.compact import compact
from vigil.capture.log import SegmentLog
from vigil.capture.reader import read_capture
from vigil.feedback.store import FeedbackStore
from vigil.monitor.baseline import load_baseline
from vigil.monitor.engine import monitor_windows
from vigil.monitor.measure import WindowResult, measure_window
from vigil.monitor.settings import MonitorSettings
from vigil.monitor.windows import parse_window, split_windows

T0 = datetime(2025, 3, 1, tzinfo=UTC)
ON = MonitorSettings(window="1h", rules=[], grace_s=0, summaries=True)


@pytest.fixture
def big(empty_vigil: Vigil, trained: Trained) -> Vigil:
    """``big`` version 1: the churn model registered with 20,000 reference rows (so its
    profile's sample holds 5,000), and three hours of traffic: two of 3,000 rows (the
    second with age and plan shifted), one of 200 rows; all but the last hour compacted."""
    reference = make_frame(20_000, seed=7)
    empty_vigil.register(
        trained.model,
        name="big",
        reference=reference,
        target="label",
        metrics={"accuracy": trained.accuracy},
        alias="production",
    )
    step = timedelta(seconds=10)
    sink = capture_sink(empty_vigil)
    write_traffic(
        sink,
        trained.model,
        make_frame(3000, seed=1),
        name="big",
        start=T0,
        step=step,
        batch=10,
        prefix="a",
    )
    write_traffic(
        sink,
        trained.model,
        make_frame(3000, seed=3, shift_age=True, shift_plan=True),
        name="big",
        start=T0 + timedelta(hours=1),
        step=step,
        batch=10,
        prefix="b",
    )
    sink.close()
    compact(SegmentLog(empty_vigil.capture_dir), empty_vigil.artifacts)
    sink = capture_sink(empty_vigil)
    write_traffic(
        sink,
        trained.model,
        make_frame(200, seed=5),
        name="big",
        start=T0 + timedelta(hours=2),
        step=step,
        batch=10,
        prefix="c",
    )
    sink.close()  # closed but not compacted: read from the segment
    return empty_vigil


def _exact(app: Vigil, now: datetime, labels: Any = None) -> list[WindowResult]:
    import pandas as pd

    rows = read_capture("big", store=app.artifacts, log_dir=app.capture_dir)
    baseline = load_baseline(app, "big", 1)
    given = labels if labels is not None else pd.DataFrame(columns=["request_id", "row", "label"])
    return [
        measure_window(w, baseline, given) for w in split_windows(rows, parse_window("1h"), now=now)
    ]


def _same(got: WindowResult, want: WindowResult) -> None:
    assert (got.start, got.n_rows, got.n_requests, got.n_rejected, got.n_labelled) == (
        want.start,
        want.n_rows,
        want.n_requests,
        want.n_rejected,
        want.n_labelled,
    )
    assert got.drifted_features == want.drifted_features
    assert got.dataset_drifted == want.dataset_drifted
    want_points = {(p.metric, p.feature): p.value for p in want.points}
    got_points = {(p.metric, p.feature): p.value for p in got.points}
    assert got_points.keys() == want_points.keys()
    for key, value in want_points.items():
        if value is None:
            assert got_points[key] is None, key
        elif key[0] in ("drift.statistic", "drift.effect_size", "drift.impact") and key[1] in (
            "age",
            "income",
        ):
            # Sketched numeric columns; an impact is an effect size times a share (<= 1).
            assert got_points[key] == pytest.approx(value, abs=0.01), key
        elif key[0].startswith("performance.roc_auc"):
            assert got_points[key] == pytest.approx(value, abs=2e-3), key
        else:
            assert got_points[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_hour_windows_from_summaries_carry_the_exact_verdicts(big: Vigil, trained: Trained) -> None:
    now = T0 + timedelta(hours=4)
    done = monitor_windows(big, model="big", now=now, settings=ON)
    assert [r.start for r in done.results] == [T0 + timedelta(hours=h) for h in range(3)]
    assert done.n_records == 6200
    for got, want in zip(done.results, _exact(big, now), strict=True):
        _same(got, want)
    calm, moved, small = done.results
    assert calm.drifted_features == [] and sorted(moved.drifted_features) == ["age", "plan"]
    assert moved.drift is not None  # judged from the summary: distances, not tests
    assert [c.method for c in moved.drift.columns] == ["wasserstein_normalised"] * 2 + ["js"]
    # The small hour is judged by KS on its raw rows, as the exact engine does.
    assert small.drift is not None and small.drift.column("age").method == "ks"
    stored = sorted(p.suffix for p in Path(big.artifacts.root).rglob("part-*.g3600.*"))
    assert stored == [".keys", ".summary"]  # one compacted part; segments are never stored
    # Nothing new: nothing computed, and the compacted part (its windows all stored) is
    # not even opened: only the segment not yet compacted is read again.
    again = monitor_windows(big, model="big", now=now, settings=ON)
    assert again.results == [] and again.n_records == 200


def test_late_labels_bring_back_their_windows(big: Vigil, trained: Trained) -> None:
    import pandas as pd

    now = T0 + timedelta(hours=4)
    monitor_windows(big, model="big", now=now, settings=ON)
    frame = make_frame(3000, seed=3, shift_age=True, shift_plan=True)
    labels = [
        {"request_id": f"b{i // 10:06d}", "row": i % 10, "label": int(frame["label"].iloc[i])}
        for i in range(0, 3000, 2)
    ]
    store = big.feedback_store()
    assert store.submit(labels).accepted == 1500
    store.close()
    (again,) = monitor_windows(big, model="big", now=now, settings=ON).results
    assert (again.start, again.n_labelled) == (T0 + timedelta(hours=1), 1500)
    exact = _exact(big, now, pd.DataFrame(labels))[1]
    _same(again, exact)
    keep = np.arange(3000) % 2 == 0
    predicted = trained.model.predict(frame[FEATURES])[keep]
    truth = frame["label"].to_numpy()[keep]
    assert again.value("performance.accuracy") == pytest.approx(float((predicted == truth).mean()))


def test_partial_hours_wait_unless_asked(big: Vigil) -> None:
    now = T0 + timedelta(hours=2, minutes=30)
    done = monitor_windows(big, model="big", now=now, settings=ON)
    assert [r.start for r in done.results] == [T0, T0 + timedelta(hours=1)]
    assert [(w.start, w.n_rows) for w in done.waiting] == [(T0 + timedelta(hours=2), 200)]
    (partial,) = monitor_windows(big, model="big", now=now, settings=ON, partial=True).results
    assert partial.partial and partial.n_rows == 200


def test_a_late_label_joins_only_the_window_of_its_prediction(
    big: Vigil, trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vigil.monitor.engine as engine

    now = T0 + timedelta(hours=4)
    monitor_windows(big, model="big", now=now, settings=ON)
    spans: list[tuple[datetime, datetime]] = []
    real = engine.label_summaries

    def spying(*args: Any, **kw: Any) -> Any:
        spans.append((kw["since"], kw["until"]))
        return real(*args, **kw)

    monkeypatch.setattr(engine, "label_summaries", spying)
    # Within the store's lookback the prediction is found when the label arrives, and
    # the label keeps its time: the monitor places it without reading the log.
    settings = big.capture_settings.model_copy(update={"feedback_lookback_days": 3650})
    store = FeedbackStore.from_settings(settings, big.settings.home, big.artifacts)
    given = [{"request_id": f"b{i:06d}", "row": 0, "label": 1} for i in range(0, 300, 3)]
    assert store.submit(given).accepted == 100
    read = store.read()
    assert read["prediction_model"].eq("big").all()
    assert (pd.to_datetime(read["prediction_time"], utc=True) >= T0 + timedelta(hours=1)).all()
    (again,) = monitor_windows(big, model="big", now=now, settings=ON).results
    assert (again.start, again.n_labelled) == (T0 + timedelta(hours=1), 100)
    assert spans == [(T0 + timedelta(hours=1), T0 + timedelta(hours=2))]
    # Nothing new: no window joined again, nothing computed.
    spans.clear()
    assert monitor_windows(big, model="big", now=now, settings=ON).results == []
    assert spans == []
    # A label whose prediction was not found when it came (the default lookback, 30
    # days, misses these 2025 predictions) may join any window begun before it arrived:
    # every window is joined once, the one it labels is computed again, the others only
    # take its mark and are not joined again.
    store.close()
    store = big.feedback_store()
    assert store.submit([{"request_id": "a000003", "row": 1, "label": 0}]).unknown == 1
    store.close()
    (again,) = monitor_windows(big, model="big", now=now, settings=ON).results
    assert (again.start, again.n_labelled) == (T0, 1)
    assert sorted(s for s, _ in spans) == [T0 + timedelta(hours=h) for h in range(3)]
    spans.clear()
    assert monitor_windows(big, model="big", now=now, settings=ON).results == []
    assert spans == []


def test_summaries_are_the_default_and_rows_the_fallback_without_datasketches(
    big: Vigil, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from vigil.monitor import engine

    default = MonitorSettings(window="1h", rules=[], grace_s=0)
    assert default.summaries
    now = T0 + timedelta(hours=4)
    # Without DataSketches (a plain install) the same windows are read as rows, once said.
    monkeypatch.setattr(engine, "sketches_installed", lambda: False)
    monkeypatch.setattr(engine, "_warned", [])
    rows = monitor_windows(big, model="big", now=now, settings=default)
    assert "pip install 'vigil[monitor]'" in caplog.text
    assert not list(Path(big.artifacts.root).rglob("*.summary"))
    assert [r.start for r in rows.results] == [T0 + timedelta(hours=h) for h in range(3)]
    assert sorted(rows.results[1].drifted_features) == ["age", "plan"]
    # With it, the default judges the large hours from summaries stored beside the part.
    monkeypatch.undo()
    later = T0 + timedelta(hours=7)
    again = monitor_windows(big, model="big", window="6h", now=later, settings=default)
    (six,) = again.results
    assert six.n_rows == 6200 and sorted(six.drifted_features) == ["age", "plan"]
    assert len(list(Path(big.artifacts.root).rglob("*.summary"))) == 1
