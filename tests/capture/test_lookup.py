"""Finding captured predictions by request id: linear in what was captured."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vigil.capture.log import SegmentLog
from vigil.capture.lookup import CaptureLookup
from vigil.capture.sink import CaptureSink

ROWS = 100_000


def test_a_request_of_many_rows_is_indexed_in_linear_time(tmp_path: Path) -> None:
    sink = CaptureSink(SegmentLog(tmp_path))
    predictions = np.arange(ROWS) % 7
    sink.record_prediction(
        request_id="big",
        model="churn",
        version=3,
        features=np.zeros((ROWS, 2)),
        feature_names=["a", "b"],
        predictions=predictions,
    )
    sink.record_prediction(
        request_id="small",
        model="churn",
        version=3,
        features=np.zeros((2, 2)),
        feature_names=["a", "b"],
        predictions=np.array([5, 6]),
    )
    lookup = CaptureLookup(tmp_path, None)
    # Copying every prediction so far for each row took 67 s for 100,000 rows; reading
    # them once takes well under a second. 10 s is a liveness budget, not a benchmark.
    started = time.perf_counter()
    found = lookup.find(["big", "small", "none"])
    assert time.perf_counter() - started < 10.0
    assert sorted(found) == ["big", "small"]
    big = found["big"]
    assert (big.rows, big.model, big.version) == (ROWS, "churn", 3)
    assert big.predictions == tuple(predictions.tolist())
    assert big.for_row(ROWS - 1).prediction == (ROWS - 1) % 7
    assert found["small"].predictions == (5, 6)
    # Asked again, the same reading is handed out: nothing is copied per question.
    again = lookup.find(["big"])["big"]
    assert again is big


def test_rows_arriving_in_later_polls_extend_the_request(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path)
    lookup = CaptureLookup(tmp_path, None)
    row = {"request_id": "r", "time": "2025-01-01T00:00:00+00:00", "model": "m", "status": 200}
    log.append([{**row, "row": 0, "prediction": "a"}])
    first = lookup.find(["r"])["r"]
    assert (first.rows, first.predictions) == (1, ("a",))
    log.append([{**row, "row": 2, "prediction": "c"}])
    later = lookup.find(["r"])["r"]
    assert (later.rows, later.predictions) == (3, ("a", None, "c"))
    assert first.predictions == ("a",)  # what was handed out earlier does not change
