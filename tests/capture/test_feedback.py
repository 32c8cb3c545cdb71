"""Feedback: validation, duplicates, unknown ids, late labels, the join, and bulk files."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil.capture.compact import compact
from vigil.capture.log import SegmentLog
from vigil.capture.sink import CaptureSink
from vigil.errors import DataFileError, ValidationError
from vigil.feedback import (
    FeedbackRecord,
    FeedbackStore,
    check_feedback,
    labelled_predictions,
    load_feedback_file,
)
from vigil.storage.artifacts import ArtifactStore

NOW = datetime.now(UTC)
WEEK_AGO = NOW - timedelta(days=7)


@pytest.fixture
def world(tmp_path: Path) -> tuple[CaptureSink, FeedbackStore, ArtifactStore]:
    store = ArtifactStore(str(tmp_path / "store"))
    sink = CaptureSink(SegmentLog(tmp_path / "capture"))
    sink.record_prediction(
        request_id="old",
        model="churn",
        version=1,
        time=WEEK_AGO,
        features=np.array([[1.0], [2.0]]),
        feature_names=["a"],
        predictions=[0, 1],
    )
    sink.log.rotate()
    compact(sink.log, store)  # the old prediction is only in Parquet now
    sink.record_prediction(
        request_id="new",
        model="churn",
        version=1,
        time=NOW,
        features=np.array([[3.0]]),
        feature_names=["a"],
        predictions=[1],
    )
    feedback = FeedbackStore(tmp_path / "feedback", store=store, capture_dir=sink.log.directory)
    return sink, feedback, store


def test_submit_counts_duplicates_unknown_and_late(
    world: tuple[CaptureSink, FeedbackStore, ArtifactStore],
) -> None:
    _, feedback, _ = world
    result = feedback.submit(
        [
            {"request_id": "old", "row": 1, "label": 1},
            {"request_id": "old", "row": 1, "label": 0},  # duplicate in the same batch
            {"request_id": "new", "reward": 2.5},
            {"request_id": "ghost", "label": 1},
        ]
    )
    assert (result.accepted, result.duplicates, result.unknown_request_ids, result.late) == (
        3,
        1,
        ["ghost"],
        1,
    )
    again = feedback.submit(
        [FeedbackRecord("new", reward=9.0), FeedbackRecord("old", row=0, label=0)]
    )
    assert (again.accepted, again.duplicates, again.late) == (1, 1, 1)
    frame = feedback.read().set_index(["request_id", "row"]).sort_index()
    assert frame.loc[("new", 0), "reward"] == 2.5  # the first feedback wins
    assert frame.loc[("old", 1), "label"] == 1


def test_duplicates_from_another_process_are_dropped_on_read(
    world: tuple[CaptureSink, FeedbackStore, ArtifactStore], tmp_path: Path
) -> None:
    _, feedback, store = world
    other = FeedbackStore(feedback.log.directory, store=store)
    feedback.submit([{"request_id": "new", "label": 1, "time": NOW.isoformat()}])
    other.submit(
        [{"request_id": "new", "label": 0, "time": (NOW + timedelta(seconds=1)).isoformat()}]
    )
    frame = feedback.read()
    assert list(frame["label"]) == [1]


def test_labels_of_mixed_types_are_read_as_text(
    world: tuple[CaptureSink, FeedbackStore, ArtifactStore],
) -> None:
    _, feedback, _ = world
    feedback.submit([{"request_id": "old", "label": 1}])
    feedback.log.rotate()
    feedback.submit([{"request_id": "new", "label": "cat"}])
    frame = feedback.read().sort_values("request_id")
    assert list(frame["label"]) == ["cat", "1"]


def test_labels_land_in_the_window_of_their_prediction(
    world: tuple[CaptureSink, FeedbackStore, ArtifactStore],
) -> None:
    sink, feedback, store = world
    feedback.submit(
        [
            {"request_id": "old", "row": 0, "label": 0},
            {"request_id": "old", "row": 1, "label": 1},
            {"request_id": "new", "label": 1, "reward": 1.0},
        ]
    )
    feedback.log.rotate()
    feedback.compact()  # joins read compacted feedback just the same
    last_week = labelled_predictions(
        "churn",
        WEEK_AGO - timedelta(hours=1),
        WEEK_AGO + timedelta(hours=1),
        feedback=feedback,
        store=store,
        capture_dir=sink.log.directory,
    )
    assert list(
        zip(
            last_week["request_id"],
            last_week["row"],
            last_week["label"],
            last_week["feature.a"],
            strict=True,
        )
    ) == [("old", 0, 0, 1.0), ("old", 1, 1, 2.0)]
    assert (last_week["feedback_time"] > NOW - timedelta(minutes=5)).all()  # arrived today
    today = labelled_predictions(
        "churn",
        NOW - timedelta(hours=1),
        None,
        feedback=feedback,
        store=store,
        capture_dir=sink.log.directory,
    )
    assert list(today["request_id"]) == ["new"] and list(today["reward"]) == [1.0]
    assert list(today["prediction"]) == [1]


def test_join_without_feedback_is_empty(
    world: tuple[CaptureSink, FeedbackStore, ArtifactStore],
) -> None:
    sink, feedback, store = world
    frame = labelled_predictions(
        "churn", feedback=feedback, store=store, capture_dir=sink.log.directory
    )
    assert frame.empty and {"label", "reward", "feedback_time"} <= set(frame.columns)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"request_id": "r", "reward": "1"},
            "reward must be a finite number or a boolean, got str '1'",
        ),
        ({"request_id": "r", "reward": math.nan}, "reward must be a finite number"),
        ({"request_id": "r", "reward": math.inf}, "reward must be a finite number"),
        ({"request_id": "r", "reward": [1]}, "got list"),
        ({"request_id": "r", "label": {"a": 1}}, "label must be a string, number or boolean"),
        ({"request_id": "r"}, "give a label, a reward or both"),
        ({"request_id": "bad id!", "label": 1}, "request_id must be"),
        ({"request_id": "r", "row": -1, "label": 1}, "row must be an integer from 0 to"),
        # Past int64 the row could be stored but never compacted (its column is int64).
        ({"request_id": "r", "row": 2**63, "label": 1}, "row must be an integer from 0 to"),
        ({"request_id": "r", "label": 1, "extra": 2}, "unknown field"),
        ({"request_id": "r", "label": 1, "time": "2025-01-01T00:00:00"}, "timezone-aware"),
    ],
)
def test_bad_feedback_is_refused_clearly(item: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[")) as info:
        check_feedback(item)
    assert info.value.status == 422


def test_a_bad_record_stores_nothing_of_its_batch(
    world: tuple[CaptureSink, FeedbackStore, ArtifactStore],
) -> None:
    _, feedback, _ = world
    with pytest.raises(ValidationError):
        feedback.submit(
            [{"request_id": "new", "label": 1}, {"request_id": "old", "reward": "high"}]
        )
    assert feedback.read().empty
    assert check_feedback({"request_id": "r", "reward": False}).reward == 0.0


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_load_feedback_file(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame(
        {
            "request_id": ["a1", "b2", "c3"],
            "row": [0, 2, 0],
            "label": [1.0, None, 0.0],
            "reward": [None, 0.5, 1.0],
        }
    )
    path = tmp_path / f"fb{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        path.write_text(
            "\n".join(
                json.dumps({k: v for k, v in r.items() if v == v and v is not None})
                for r in frame.to_dict("records")
            )
        )
    records = load_feedback_file(path)
    assert [(r.request_id, r.row, r.label, r.reward) for r in records] == [
        ("a1", 0, 1.0, None),
        ("b2", 2, None, 0.5),
        ("c3", 0, 0.0, 1.0),
    ]


def test_load_feedback_file_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "fb.csv"
    path.write_text("request_id,reward\nok1,1\nok2,lots\n")
    with pytest.raises(ValidationError, match=r"fb\.csv line 2: .*reward must be a finite number"):
        load_feedback_file(path)
    (tmp_path / "fb.xlsx").write_text("x")
    with pytest.raises(DataFileError, match=r"format of feedback file 'fb\.xlsx'.* or \.ndjson$"):
        load_feedback_file(tmp_path / "fb.xlsx")
    (tmp_path / "nolabel.csv").write_text("request_id,score\na,1\n")
    with pytest.raises(ValidationError, match="needs a label or a reward column"):
        load_feedback_file(tmp_path / "nolabel.csv")
