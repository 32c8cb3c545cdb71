"""Feedback about another replica's prediction: each replica's live capture segments are on
its own disk, so feedback arriving at one replica about a prediction another answered a
moment ago is unknown there until that replica compacts it; :meth:`FeedbackStore.rematch`
then finds it, once (tests/cluster/test_agreement.py runs the same through HAProxy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from vigil.capture.compact import compact
from vigil.capture.log import SegmentLog
from vigil.capture.sink import CaptureSink
from vigil.feedback import FeedbackStore
from vigil.storage.artifacts import ArtifactStore


def _predict(sink: CaptureSink, request_id: str, variant: str) -> None:
    sink.record_prediction(
        request_id=request_id,
        model="arm",
        version=1,
        endpoint="offers",
        variant=variant,
        features=np.array([[1.0]]),
        feature_names=["a"],
        predictions=[1],
    )


def test_feedback_for_another_replicas_prediction_is_matched_once_it_is_compacted(
    tmp_path: Path,
) -> None:
    store = ArtifactStore(str(tmp_path / "store"))  # shared by both replicas
    serving = CaptureSink(SegmentLog(tmp_path / "a" / "capture"))  # replica a answers
    receiving = FeedbackStore(  # replica b receives the feedback
        tmp_path / "b" / "feedback", store=store, capture_dir=tmp_path / "b" / "capture"
    )
    _predict(serving, "r1", "treatment")
    submitted = receiving.submit([{"request_id": "r1", "reward": 1.0}])
    assert (submitted.accepted, submitted.unknown, submitted.matched) == (1, 1, ())
    assert receiving.pending() == 1
    assert receiving.rematch() == []  # still in replica a's live segment
    serving.log.rotate()
    compact(serving.log, store)
    matched = receiving.rematch()
    assert [(m.feedback.request_id, m.feedback.reward) for m in matched] == [("r1", 1.0)]
    assert (matched[0].captured.endpoint, matched[0].captured.variant) == ("offers", "treatment")
    assert receiving.pending() == 0 and receiving.rematch() == []  # returned once


def test_feedback_nobody_predicted_waits_no_longer_than_the_handover(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    feedback = FeedbackStore(
        tmp_path / "feedback",
        store=store,
        capture_dir=tmp_path / "capture",
        handover=timedelta(minutes=5),
    )
    feedback.submit([{"request_id": "nobody", "label": 1}])
    assert feedback.pending() == 1
    assert feedback.rematch(now=datetime.now(UTC) + timedelta(minutes=4)) == []
    assert feedback.pending() == 1
    assert feedback.rematch(now=datetime.now(UTC) + timedelta(minutes=6)) == []
    assert feedback.pending() == 0


def test_without_a_shared_store_nothing_waits(tmp_path: Path) -> None:
    feedback = FeedbackStore(tmp_path / "feedback", capture_dir=tmp_path / "capture")
    feedback.submit([{"request_id": "nobody", "reward": 0.0}])
    assert feedback.pending() == 0
