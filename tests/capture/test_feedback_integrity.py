"""Feedback that cannot break anything: every numeric field is range-checked at the gate
(HTTP and ``vigil feedback FILE``), and a bad record already on disk is quarantined by
compaction and skipped by readers instead of failing them forever."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.capture.conftest import Captured
from typer.testing import CliRunner

from vigil.capture.compact import QUARANTINE_ROOT, apply_retention, compact
from vigil.capture.compactor import Compactor
from vigil.capture.log import SegmentLog
from vigil.capture.sink import CaptureSink
from vigil.errors import ValidationError
from vigil.feedback import FeedbackStore, check_feedback, labelled_predictions
from vigil.feedback.record import MAX_ROW
from vigil.storage.artifacts import ArtifactStore

INT64_MAX = 2**63 - 1
NOW = datetime.now(UTC)

BAD_ITEMS: list[tuple[dict[str, Any], str]] = [
    ({"row": 2**63, "label": 1}, "row"),  # the one that broke reads forever
    ({"row": INT64_MAX, "label": 1}, "row"),  # fits int64, but no request has that many rows
    ({"row": MAX_ROW + 1, "label": 1}, "row"),
    ({"row": -1, "label": 1}, "row"),
    ({"label": 2**63}, "label"),
    ({"label": -(2**63) - 1}, "label"),
    ({"label": "x" * 1025}, "label"),
    ({"reward": 10**400}, "reward"),  # an integer no float can hold
]


@pytest.mark.parametrize(("item", "field"), BAD_ITEMS)
def test_out_of_range_fields_are_refused_naming_the_field(item: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_feedback({"request_id": "r1", **item})
    assert caught.value.detail["field"] == field
    assert caught.value.status == 422


@pytest.mark.parametrize(
    "time",
    [
        "0001-01-01T00:00:00+01:00",  # overflows when moved to UTC
        "9999-12-31T23:59:59-01:00",
        "1969-12-31T23:59:59+00:00",  # before any prediction vigil can have made
        (NOW + timedelta(days=2)).isoformat(),  # in the future: would never expire
    ],
)
def test_times_out_of_range_are_refused(time: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_feedback({"request_id": "r1", "label": 1, "time": time})
    assert caught.value.detail["field"] == "time"


def test_edges_of_the_ranges_are_accepted() -> None:
    record = check_feedback(
        {"request_id": "r" * 128, "row": MAX_ROW, "label": INT64_MAX, "reward": -1e300}
    )
    assert (record.row, record.label, record.reward) == (MAX_ROW, INT64_MAX, -1e300)
    assert check_feedback({"request_id": "r", "label": -(2**63)}).label == -(2**63)


def test_http_refuses_a_row_past_int64_with_a_422_naming_it(captured: Captured) -> None:
    rid = uuid.uuid4().hex
    r = httpx.post(
        f"{captured.url}/v1/feedback", json={"request_id": rid, "row": 2**63, "label": 1}
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "validation_error"
    assert body["detail"]["field"] == "row"
    assert "row" in body["message"]
    feedback = captured.runtime.feedback
    assert feedback is not None
    stored = feedback.read()
    assert rid not in set(stored["request_id"])


def test_http_batch_names_each_bad_item(captured: Captured) -> None:
    body = {
        "feedback": [
            {"request_id": "a", "label": 1},
            {"request_id": "b", "row": 2**63, "label": 1},
            {"request_id": "c", "label": 2**63},
        ]
    }
    r = httpx.post(f"{captured.url}/v1/feedback", json=body)
    assert r.status_code == 422
    errors = r.json()["detail"]["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "row"), (2, "label")]


@pytest.mark.parametrize(
    ("column", "value", "field"),
    [
        ("row", 2**63, "row"),
        ("row", 10**12, "row"),
        ("time", "0001-01-01T00:00:00+01:00", "time"),
        ("time", "2999-01-01T00:00:00+00:00", "time"),
        ("label", 2**63, "label"),
    ],
)
def test_the_cli_refuses_out_of_range_values_naming_line_and_field(
    vigil_home: Path, tmp_path: Path, column: str, value: Any, field: str
) -> None:
    from vigil.app import reset_default
    from vigil.cli import app as cli

    reset_default()  # VIGIL_HOME is per test
    path = tmp_path / "labels.jsonl"
    good = {"request_id": "ok", "label": 1}
    bad = {"request_id": "bad", "label": 1, column: value}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    result = CliRunner().invoke(cli, ["feedback", str(path)])
    assert isinstance(result.exception, ValidationError), result.output
    assert "labels.jsonl line 2" in result.exception.message
    assert result.exception.detail["field"] == field
    assert FeedbackStore(vigil_home / "feedback").read().empty


# -- a bad record that is already on disk ------------------------------------------------


def _world(tmp_path: Path) -> tuple[CaptureSink, FeedbackStore, ArtifactStore]:
    store = ArtifactStore(str(tmp_path / "store"))
    sink = CaptureSink(SegmentLog(tmp_path / "capture"))
    sink.record_prediction(
        request_id="good",
        model="churn",
        version=1,
        features=np.array([[1.0]]),
        feature_names=["a"],
        predictions=[1],
    )
    feedback = FeedbackStore(tmp_path / "feedback", store=store, capture_dir=sink.log.directory)
    return sink, feedback, store


def _poison(feedback: FeedbackStore) -> None:
    """What an older vigil let through the gate, written straight to the log."""
    stamp = NOW.isoformat()
    feedback.log.append(
        [
            {"request_id": "good", "row": 0, "label": 1, "reward": None, "time": stamp},
            {"request_id": "x", "row": 2**63, "label": 1, "reward": None, "time": stamp},
            {"request_id": "y", "row": "three", "label": 1, "reward": None, "time": stamp},
            {"request_id": "z", "row": 0, "label": 1, "reward": None, "time": "not a time"},
        ]
    )


def test_reads_skip_a_bad_record_on_disk(tmp_path: Path) -> None:
    sink, feedback, store = _world(tmp_path)
    _poison(feedback)
    frame = feedback.read()
    assert list(frame["request_id"]) == ["good"]
    joined = labelled_predictions(
        "churn", feedback=feedback, store=store, capture_dir=sink.log.directory
    )
    assert list(joined["request_id"]) == ["good"] and list(joined["label"]) == [1]
    later = feedback.submit([{"request_id": "good", "label": 0}, {"request_id": "new", "label": 1}])
    assert (later.accepted, later.duplicates) == (1, 1)


def test_compaction_quarantines_a_bad_record_and_keeps_going(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _sink, feedback, store = _world(tmp_path)
    _poison(feedback)
    feedback.log.rotate()
    with caplog.at_level(logging.WARNING, logger="vigil.capture"):
        result = feedback.compact()
    assert result.rows == 1 and result.quarantined == 3
    assert feedback.log.all_segments() == []  # the segment is done with
    quarantined = sorted(store.fs.glob(f"{store.resolve_key(QUARANTINE_ROOT)}/feedback/*"))
    assert len(quarantined) == 1
    lines = [json.loads(line) for line in store.fs.cat_file(quarantined[0]).splitlines()]
    assert sorted(r["record"]["request_id"] for r in lines) == ["x", "y", "z"]
    assert all(r["error"] for r in lines)
    assert "quarantined 3 record(s)" in caplog.text
    assert list(feedback.read()["request_id"]) == ["good"]  # from Parquet now
    assert feedback.compact().quarantined == 0  # and nothing is left to fail


def test_capture_compaction_quarantines_a_record_arrow_cannot_hold(tmp_path: Path) -> None:
    sink, _feedback, store = _world(tmp_path)
    stamp = NOW.isoformat()
    sink.log.append(
        [
            {"request_id": "big", "row": 0, "time": stamp, "model": "churn", "version": 2**63},
            {"request_id": "when", "row": 0, "time": "yesterday", "model": "churn"},
        ]
    )
    sink.log.rotate()
    result = compact(sink.log, store)
    assert (result.rows, result.quarantined) == (1, 2)
    assert sink.log.all_segments() == []


def test_retention_runs_when_compaction_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink, feedback, store = _world(tmp_path)
    old = NOW - timedelta(days=40)
    feedback.submit([{"request_id": "old", "label": 1, "time": old.isoformat()}])
    feedback.log.rotate()
    feedback.compact()
    sink.log.rotate()
    compact(sink.log, store)
    store.write_bytes(f"capture/model=churn/date={old.date()}/part-x.parquet", b"old")
    # A segment that cannot be read at all: capture and feedback compaction both fail.
    (sink.log.directory / "capture-broken.seg").mkdir()
    (feedback.log.directory / "feedback-broken.seg").mkdir()
    compactor = Compactor(sink.log, store, feedback=feedback, retention_days=30)
    with caplog.at_level(logging.ERROR, logger="vigil.capture"):
        done = compactor.run_once()
    assert done is not None
    assert sorted(done.failed) == ["capture compaction", "feedback compaction"]
    assert len(done.deleted) == 2  # both old partitions expired anyway
    assert apply_retention(store, 30) == []
    assert "feedback compaction failed" in caplog.text


# -- memory that does not follow the whole history -----------------------------------------


def test_a_retention_pass_that_deletes_nothing_keeps_the_known_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Forgetting them made the next batch re-read every compacted key: on a server, after
    # every compaction pass, work and memory growing with all the feedback ever kept.
    _sink, feedback, _store = _world(tmp_path)
    reads: list[int] = []
    real = feedback._compacted_keys

    def counted() -> set[tuple[str, int, str | None]]:
        keys = real()
        reads.append(len(keys))
        return keys

    monkeypatch.setattr(feedback, "_compacted_keys", counted)
    feedback.submit([{"request_id": "a", "label": 1}])
    feedback.log.rotate()
    feedback.compact()
    assert feedback.apply_retention(30) == []
    assert feedback.submit([{"request_id": "a", "label": 0}]).duplicates == 1
    assert reads == [0]  # read once, at first use
    old = (NOW - timedelta(days=40)).isoformat()
    feedback.submit([{"request_id": "old", "label": 1, "time": old}])
    feedback.log.rotate()
    feedback.compact()
    assert len(feedback.apply_retention(30)) == 1
    assert feedback.submit([{"request_id": "a", "label": 0}]).duplicates == 1
    assert reads == [0, 1]  # re-read once something was deleted


def test_feedback_is_read_from_a_time_on(tmp_path: Path) -> None:
    _sink, feedback, _store = _world(tmp_path)
    days = [NOW - timedelta(days=d) for d in (3, 2, 0)]
    feedback.submit(
        [{"request_id": f"r{i}", "label": 1, "time": t.isoformat()} for i, t in enumerate(days)]
    )
    feedback.log.rotate()
    feedback.compact()
    feedback.submit([{"request_id": "live", "label": 1}])  # still in a segment
    since = NOW - timedelta(days=2, hours=1)
    assert sorted(feedback.read(since)["request_id"]) == ["live", "r1", "r2"]
    assert len(feedback.read()) == 4
