"""The columnar conversion of a segment gives the tables the record-by-record one gives."""

from __future__ import annotations

import cProfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from vigil.capture.columnar import segment_tables
from vigil.capture.compact import _tables, capture_partition, compact
from vigil.capture.framing import decode_frames, encode_batch_frame, encode_frame
from vigil.capture.log import SegmentLog
from vigil.capture.masking import Masker
from vigil.capture.sink import Answered, CaptureSink
from vigil.capture.table import records_to_table
from vigil.storage.artifacts import ArtifactStore

DAY1 = datetime(2025, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)
DAY2 = datetime(2025, 3, 2, 0, 0, 1, tzinfo=UTC)
NAMES = ["a", "b"]


def _answered(i: int, *, model: str = "churn", proba: bool = True, rows: int = 1) -> Answered:
    rng = np.random.default_rng(i)
    return Answered(
        f"r{i}",
        model,
        2,
        rng.normal(size=(rows, 2)),
        NAMES,
        rng.integers(0, 2, rows),
        np.full((rows, 2), 0.25) if proba else None,
        ["no", "yes"],
        "native",
        0.5 + i,
        variant="a" if i % 3 else "b",
        caller=None if i % 2 else "key-1",
    )


def _mixed_segment(sink: CaptureSink) -> bytes:
    """What a server writes: group commits of many shapes, and rejected requests."""
    sink.record_answered([_answered(i) for i in range(6)], time=DAY1)  # variants per request
    sink.record_answered([_answered(i, rows=3) for i in range(6, 9)], time=DAY1)  # 3-row requests
    sink.record_answered([_answered(9, proba=False)], time=DAY2)  # "probabilities": null
    sink.record_answered([_answered(10, model="fraud"), _answered(11)], time=DAY2)  # 2 models
    sink.record_failure(
        request_id="bad", status=422, error_code="invalid_input", error_message="no", time=DAY2
    )
    frame = pd.DataFrame({"a": [1.5, 2.5], "city": ["x", "y"]})
    entry = Answered("df", "churn", 2, frame, ["a", "city"], np.array([0, 1]))
    sink.record_answered([entry._replace(passthrough={"group": ["g1", "g2"]})], time=DAY2)
    path = sink.log.rotate()
    assert path is not None
    return path.read_bytes()


def _by_records(data: bytes) -> dict[str, pa.Table]:
    records, torn = decode_frames(data)
    assert torn == 0
    tables, bad = _tables(records, capture_partition, records_to_table, "s")
    assert bad == []
    return tables


@pytest.mark.parametrize("masked", [False, True])
def test_same_tables_as_record_by_record(tmp_path: Path, masked: bool) -> None:
    masker = Masker({"b": "hash", "city": "drop"}, hash_key="k" * 32) if masked else None
    data = _mixed_segment(CaptureSink(SegmentLog(tmp_path), masker=masker))
    items, torn = decode_frames(data, expand=False)
    found = segment_tables(items, segment="s", partition=capture_partition)
    expected = _by_records(data)
    assert found is not None and torn == 0
    assert (
        list(found)
        == list(expected)
        == [
            "model=churn/date=2025-03-01",
            "model=churn/date=2025-03-02",
            "model=fraud/date=2025-03-02",
            "model=_none/date=2025-03-02",
        ]
    )
    for where, table in expected.items():
        assert found[where].schema == table.schema, where
        assert found[where].equals(table), where
    assert found["model=churn/date=2025-03-01"].num_rows == 6 + 3 * 3


def test_a_record_that_does_not_convert_falls_back_and_is_quarantined(tmp_path: Path) -> None:
    sink = CaptureSink(SegmentLog(tmp_path / "log"))
    sink.record_answered([_answered(i) for i in range(4)], time=DAY1)
    # A batch whose time is no time (an older writer, or damage): the columnar path gives
    # up and the segment is converted record by record, which quarantines that batch's rows.
    odd = {"n": 1, "same": {"time": "yesterday", "model": "churn"}, "requests": {"sizes": [1]}}
    items, _ = decode_frames(encode_batch_frame(odd), expand=False)
    assert segment_tables(items, segment="s", partition=capture_partition) is None
    sink.log.append_encoded(encode_batch_frame(odd) + encode_frame({"time": DAY1.isoformat()}))
    sink.log.rotate()
    result = compact(sink.log, ArtifactStore(str(tmp_path / "store")))
    assert (result.rows, result.quarantined) == (5, 1)


def _python_calls(step: Callable[[], object]) -> int:
    """Python function calls ``step`` makes (deterministic, unlike its time)."""
    profile = cProfile.Profile()
    profile.runcall(step)
    return sum(entry.callcount for entry in profile.getstats())


def test_python_work_is_per_batch_not_per_row(tmp_path: Path) -> None:
    """What a loaded server writes (group commits of one-row requests) converts with
    Python work per batch: four times the rows in as many batches make almost no more
    Python calls, where the record-by-record way, which builds a record and two dicts per
    row, makes about four times as many (issue 14: that made compaction stall a loaded
    server). Counted in calls, not timed: the benchmark (``bench.sustained``) times it."""

    def segment(rows_per_batch: int, name: str) -> bytes:
        sink = CaptureSink(SegmentLog(tmp_path / name))
        for start in range(0, rows_per_batch * 100, rows_per_batch):
            batch = [_answered(i) for i in range(start, start + rows_per_batch)]
            sink.record_answered(batch, time=DAY1)
        path = sink.log.rotate()
        assert path is not None
        return path.read_bytes()

    def columnar(data: bytes) -> Callable[[], object]:
        def step() -> object:
            items, _ = decode_frames(data, expand=False)
            return segment_tables(items, segment="s", partition=capture_partition)

        return step

    def by_records(data: bytes) -> Callable[[], object]:
        return lambda: _tables(decode_frames(data)[0], capture_partition, records_to_table, "s")

    small, large = segment(8, "small"), segment(32, "large")
    assert columnar(large)() is not None
    grown = _python_calls(columnar(large)) / _python_calls(columnar(small))
    grown_before = _python_calls(by_records(large)) / _python_calls(by_records(small))
    assert grown < 1.3, grown
    assert grown_before > 3.0, grown_before
