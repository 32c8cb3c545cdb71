"""Labels joined per window, never the whole feedback store (issue 22, point 3 and 4).

Real traffic (the CaptureSink, partly compacted), real feedback (FeedbackStore.submit, part
of it compacted to Parquet, part still in a live segment): labels spread over many
windows, labels sent before their prediction existed (not placed: joined by request id),
a duplicate that slipped in through another replica, feedback fields used as a sensitive
attribute, and labels of numbers in one part and text in another. Every result is compared
with the whole-frame path (``FeedbackStore.read`` once, every window joined to it), which
is what the monitor did before.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from tests.monitor._data import Trained
from tests.monitor.test_streamed import NOW, STEP, T0, _digest, _traffic

from vigil.app import Vigil
from vigil.capture.reader import read_capture
from vigil.feedback import store as feedback_store
from vigil.feedback.frame_spans import FrameSpans
from vigil.feedback.spans import FeedbackSpans
from vigil.feedback.store import FeedbackStore
from vigil.monitor import streamed
from vigil.monitor.baseline import load_baseline
from vigil.monitor.engine import MonitoringPass, candidate_windows, due_windows, monitor_windows
from vigil.monitor.measure import WindowResult, measure_window
from vigil.monitor.settings import MonitorSettings
from vigil.monitor.streamed import WindowMarks
from vigil.monitor.summaries.late import LabelMarks
from vigil.monitor.windows import parse_window

SINCE = NOW - timedelta(days=7)
FAIRNESS = {
    "churn": {
        "attributes": [{"name": "band", "source": "feedback"}],
        "positive_label": 1,
        "min_group_size": 5,
    }
}


def _settings(window: str) -> MonitorSettings:
    return MonitorSettings(window=window, rules=[], grace_s=0, summaries=False, fairness=FAIRNESS)


def _items(ids: list[str], label_of: int = 0, band: bool = True) -> list[dict[str, object]]:
    return [
        {"request_id": r, "row": k, "label": (i + k + label_of) % 2}
        | ({"fields": {"band": "hi" if (i + k) % 3 else "lo"}} if band else {})
        for i, r in enumerate(ids)
        for k in range(4)
    ]


def _feedback(app: Vigil, trained: Trained, tmp: Path) -> None:
    """Traffic and its feedback, as the module docstring says."""
    store = app.feedback_store()
    # Sent before their predictions exist: stored without a prediction time (loose).
    early = store.submit(_items(["r000030", "s000063", "c000012"]))
    assert early.unknown == 12
    store.close()
    _traffic(app, trained)
    # Another replica (its own segments, the same store) judges r000098 first and
    # r000102 later: each key's first arrival wins, as FeedbackStore.read chooses.
    replica = FeedbackStore(
        tmp / "replica-feedback", store=app.artifacts, capture_dir=app.capture_dir
    )
    replica.submit([{"request_id": "r000098", "row": 0, "label": "0"}])
    store = app.feedback_store()
    store.submit(_items([f"r{i:06d}" for i in range(0, 300, 2)]))
    store.submit(_items([f"s{i:06d}" for i in range(1, 300, 3)], band=False))
    store.log.rotate()
    store.compact()  # partitioned by arrival day, sorted by prediction, in Parquet
    replica.submit([{"request_id": "r000102", "row": 1, "label": "1"}])
    replica.log.rotate()
    replica.compact()
    replica.close()
    # Still in a live segment (not compacted): the c hour, and late ones for r.
    store.submit(_items([f"c{i:06d}" for i in range(0, 150, 2)]))
    store.close()


def _whole_path(app: Vigil, window: str) -> list[WindowResult]:
    """Every window measured against the whole feedback frame, read once."""
    spec = parse_window(window)
    frame = read_capture("churn", SINCE, NOW, store=app.artifacts, log_dir=app.capture_dir)
    store = app.feedback_store()
    labels = store.read(SINCE)
    store.close()
    windows = candidate_windows(frame, [], spec, now=NOW, grace_s=0, rebuild=False)
    baseline = load_baseline(app, "churn", 1, _settings(window).fairness["churn"])
    due = due_windows(windows, labels, [], partial=False)
    return [measure_window(w, baseline, labels) for w in due]


def _run(app: Vigil, window: str) -> MonitoringPass:
    return monitor_windows(app, model="churn", now=NOW, since=SINCE, settings=_settings(window))


@pytest.mark.parametrize("window", ["200", "1h or 250", "1h"])
def test_windows_joined_span_by_span_equal_the_whole_frame_join(
    vigil: Vigil, trained: Trained, window: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(streamed, "SLICE_ROWS", 250)
    _feedback(vigil, trained, tmp_path)
    expected = _whole_path(vigil, window)

    done = _run(vigil, window)

    assert [_digest(r) for r in done.results] == [_digest(r) for r in expected]
    assert sum(r.n_labelled for r in expected) > 300
    assert sum(1 for r in expected if r.n_labelled) >= 4  # labels spread over windows
    assert any(p.metric.startswith("fairness.band.") for r in expected for p in r.points)
    stats = done.stream
    assert stats is not None
    total = len(vigil.feedback_store().read(SINCE))
    # One slice's windows at a time (a slice of 250 rows and an open window of at most
    # 250 carried, each row one label at most; 12 loose and 1 duplicate besides).
    assert stats.peak_labels <= 250 + 250 + 4 + 12 + 1 < total
    assert stats.labels_read <= total + 2 * 13


def test_a_late_label_reads_only_the_labels_of_its_window(
    vigil: Vigil, trained: Trained, tmp_path: Path
) -> None:
    _feedback(vigil, trained, tmp_path)
    _run(vigil, "200")
    store = vigil.feedback_store()
    store.submit(_items(["s000120"]))  # a row of one window of the shifted hours
    store.close()

    again = _run(vigil, "200")

    (relabelled,) = again.results
    (expected,) = [r for r in _whole_path(vigil, "200") if r.start == relabelled.start]
    assert _digest(relabelled) == _digest(expected)
    assert again.stream is not None
    # Its window's labels (at most one per row of its 200, and the 12 loose ones whose
    # request ids it might hold), not the store's.
    assert 4 <= again.stream.labels_read <= 200 + 12
    assert _run(vigil, "200").results == []


def _ordered(frame: pd.DataFrame) -> list[tuple[object, ...]]:
    rows = frame.reindex(columns=["request_id", "row", "caller", "label", "time", "field.band"])
    rows = rows.astype(object).where(rows.notna(), None)
    return sorted(map(tuple, rows.itertuples(index=False)), key=repr)


def test_marks_and_labels_of_every_window_equal_the_whole_frames(
    vigil: Vigil, trained: Trained, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Row groups of 16 rows: a span's read must skip the others by their statistics.
    monkeypatch.setattr(feedback_store, "PART_GROUP_ROWS", 16)
    _feedback(vigil, trained, tmp_path)
    store = vigil.feedback_store()
    frame = store.read(SINCE)
    spans = FeedbackSpans.scan(store, SINCE, batch_rows=7)
    store.close()
    whole = FrameSpans(frame)
    assert frame["label"].map(type).eq(str).all()  # "1" in one part: text everywhere
    stored = pd.concat([pq.read_table(p).to_pandas() for p in store.part_paths()])
    for request_id, row, first in (("r000098", 0, "0"), ("r000102", 1, "0")):
        # Stored twice, labelled apart by the two replicas; read once: the first to arrive.
        same = (stored["request_id"] == request_id) & (stored["row"] == row)
        assert same.sum() == 2
        judged = frame[(frame["request_id"] == request_id) & (frame["row"] == row)]
        assert judged["label"].tolist() == [first]

    assert spans.placements.labels == whole.placements.labels == frame["label"].notna().sum()
    by_frame, by_spans = WindowMarks(frame), WindowMarks(spans.placements)
    hours = [T0 + timedelta(minutes=20 * i) for i in range(-3, 20)]
    for lo in hours:
        for hi in (lo, lo + STEP, lo + timedelta(hours=1)):
            for inclusive in (True, False):
                expected = by_frame.of("churn", lo, hi, inclusive=inclusive)
                assert by_spans.of("churn", lo, hi, inclusive=inclusive) == expected
    old, new = LabelMarks(frame, 3600), LabelMarks(spans, 3600)
    for lo in hours[::3]:
        assert new.of("churn", lo) == old.of("churn", lo)
        hi = lo + timedelta(hours=1)
        assert _ordered(new.labels_for("churn", lo, hi)) == _ordered(
            old.labels_for("churn", lo, hi)
        )
    assert old.of("churn", T0 + timedelta(hours=2)) > 12  # placed ones and the 12 loose

    # One hour's read holds that hour's labels, read from the row groups that may hold
    # them: a fraction of the store's.
    ids = [f"r{i:06d}" for i in range(30, 34)]
    scanned = spans.stats.scanned
    one = spans.read("churn", T0 + timedelta(hours=1), T0 + timedelta(hours=2), ids=ids)
    assert spans.stats.scanned - scanned < len(frame) / 2
    assert _ordered(one) == _ordered(
        whole.read("churn", T0 + timedelta(hours=1), T0 + timedelta(hours=2), ids=ids)
    )
    assert one["request_id"].str.startswith("r").all() and len(one) > 40

    # The parts are sorted by prediction: their row groups follow one another in time.
    (biggest,) = sorted(store.part_paths(), key=lambda p: Path(p).stat().st_size)[-1:]
    meta = pq.ParquetFile(biggest).metadata
    at = pq.ParquetFile(biggest).schema_arrow.names.index("prediction_time")
    ranges = [
        (meta.row_group(g).column(at).statistics.min, meta.row_group(g).column(at).statistics.max)
        for g in range(meta.num_row_groups)
    ]
    assert meta.num_row_groups > 5
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))
