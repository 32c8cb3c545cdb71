"""Compaction to partitioned Parquet, its idempotence, retention, and the union reader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from vigil.capture.compact import apply_retention, compact
from vigil.capture.log import SegmentLog
from vigil.capture.reader import read_capture
from vigil.capture.sink import CaptureSink
from vigil.storage.artifacts import ArtifactStore

DAY1 = datetime(2025, 3, 1, 23, 59, tzinfo=UTC)
DAY2 = datetime(2025, 3, 2, 0, 1, tzinfo=UTC)


def _sink(tmp_path: Path) -> CaptureSink:
    return CaptureSink(SegmentLog(tmp_path / "log"))


def _predict(
    sink: CaptureSink, rid: str, model: str, when: datetime, n: int = 2, version: int = 1
) -> None:
    rng = np.random.default_rng(len(rid))
    sink.record_prediction(
        request_id=rid,
        model=model,
        version=version,
        time=when,
        features=rng.normal(size=(n, 2)),
        feature_names=["a", "b"],
        predictions=np.arange(n),
        probabilities=np.full((n, 2), 0.5),
        classes=["no", "yes"],
    )


def test_partitions_by_model_and_prediction_date(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    store = ArtifactStore(str(tmp_path / "store"))
    _predict(sink, "r1", "churn", DAY1)
    _predict(sink, "r2", "churn", DAY2, n=3)
    _predict(sink, "r3", "fraud", DAY2)
    sink.log.rotate()
    result = compact(sink.log, store)
    assert result.segments == 1 and result.rows == 7 and result.torn == 0
    parts = sorted(str(Path(p).relative_to("capture").parent) for p in result.parts)
    assert parts == [
        "model=churn/date=2025-03-01",
        "model=churn/date=2025-03-02",
        "model=fraud/date=2025-03-02",
    ]
    table = pq.read_table(
        Path(store.root) / next(p for p in result.parts if "date=2025-03-02" in p and "churn" in p)
    )
    assert table["request_id"].to_pylist() == ["r2"] * 3
    assert table["row"].to_pylist() == [0, 1, 2]
    assert table["proba.yes"].to_pylist() == [0.5] * 3
    assert sink.log.all_segments() == []


def test_compacting_twice_never_duplicates_rows(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    store = ArtifactStore(str(tmp_path / "store"))
    _predict(sink, "r1", "churn", DAY1)
    _predict(sink, "r2", "churn", DAY2)
    segment = sink.log.rotate()
    assert segment is not None
    kept = segment.read_bytes()
    first = compact(sink.log, store)
    # A compaction that crashed before deleting its segment runs again on the same file.
    segment.write_bytes(kept)
    frame_before = read_capture("churn", store=store, log_dir=sink.log.directory)
    assert len(frame_before) == 4  # the reader does not count the leftover segment twice
    second = compact(sink.log, store)
    assert sorted(second.parts) == sorted(first.parts)
    frame = read_capture("churn", store=store, log_dir=sink.log.directory)
    assert sorted(zip(frame["request_id"], frame["row"], strict=True)) == [
        ("r1", 0),
        ("r1", 1),
        ("r2", 0),
        ("r2", 1),
    ]


def test_reader_unions_parquet_and_live_segments_and_filters(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    store = ArtifactStore(str(tmp_path / "store"))
    _predict(sink, "old", "churn", DAY1, version=1)
    sink.log.rotate()
    compact(sink.log, store)
    _predict(sink, "new", "churn", DAY2, version=2)  # still in the live segment
    _predict(sink, "other", "fraud", DAY2)
    frame = read_capture("churn", store=store, log_dir=sink.log.directory)
    assert list(frame["request_id"]) == ["old", "old", "new", "new"]
    assert list(frame["version"]) == [1, 1, 2, 2]
    assert frame["time"].dt.tz is not None
    only_new = read_capture("churn", since=DAY2, store=store, log_dir=sink.log.directory)
    assert set(only_new["request_id"]) == {"new"}
    only_old = read_capture("churn", until=DAY2, store=store, log_dir=sink.log.directory)
    assert set(only_old["request_id"]) == {"old"}
    v2 = read_capture("churn", version=2, store=store, log_dir=sink.log.directory)
    assert set(v2["request_id"]) == {"new"}
    expected = np.random.default_rng(len("new")).normal(size=(2, 2))
    np.testing.assert_allclose(v2[["feature.a", "feature.b"]].to_numpy(), expected)


def test_dead_writers_live_segment_is_compacted(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from vigil.capture.log import SegmentLog\n"
        "SegmentLog(sys.argv[1]).append([{'request_id': 'x', 'row': 0, "
        "'time': '2025-03-01T00:00:00+00:00', 'model': 'm'}])\n"
        "import os; os._exit(0)\n"  # exits without closing: the segment stays live
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "log")], check=True)
    log = SegmentLog(tmp_path / "log")
    assert len(log.live_segments()) == 1
    result = compact(log, ArtifactStore(str(tmp_path / "store")))
    assert result.rows == 1 and log.all_segments() == []


def test_retention_drops_old_partitions_only(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    store = ArtifactStore(str(tmp_path / "store"))
    now = datetime(2025, 6, 30, 12, tzinfo=UTC)
    for days in (0, 10, 30, 31, 100):
        _predict(sink, f"d{days}", "churn", now - timedelta(days=days))
    sink.log.rotate()
    compact(sink.log, store)
    deleted = apply_retention(store, 30, now=now)
    assert sorted(Path(p).name for p in deleted) == ["date=2025-03-22", "date=2025-05-30"]
    left = read_capture("churn", store=store)
    assert sorted(set(left["request_id"])) == ["d0", "d10", "d30"]
    with pytest.raises(ValueError, match="at least 1"):
        apply_retention(store, 0)


def test_rejected_request_is_stored_safely(tmp_path: Path) -> None:
    sink = CaptureSink(SegmentLog(tmp_path / "log"), raw_body_limit=20)
    sink.record_failure(
        request_id="bad",
        model="churn",
        version=1,
        status=422,
        error_code="validation_error",
        error_message="feature 'a' must be a number",
        body=b'{"a": NaN, "junk": "\xff' + b"z" * 100,
    )
    frame = read_capture("churn", log_dir=sink.log.directory)
    (row,) = frame.to_dict("records")
    assert row["status"] == 422 and row["error_code"] == "validation_error"
    assert row["raw_body"] == '{"a": NaN, "junk": …'
    assert len(row["raw_body"]) == 20


@pytest.mark.s3
def test_compaction_into_s3(tmp_path: Path, s3_url: str, s3: object) -> None:
    store = ArtifactStore(s3_url, s3_endpoint_url=s3.endpoint_url)  # type: ignore[attr-defined]
    sink = _sink(tmp_path)
    _predict(sink, "r1", "churn", DAY1)
    sink.log.rotate()
    result = compact(sink.log, store)
    assert result.parts == [
        f"capture/model=churn/date=2025-03-01/part-{result.parts[0].split('part-')[1][:-8]}.parquet"
    ]
    frame = read_capture("churn", store=store, log_dir=sink.log.directory)
    assert list(frame["request_id"]) == ["r1", "r1"]


def test_a_span_reads_only_the_parts_that_can_hold_it(tmp_path: Path) -> None:
    # Monitoring reads the last minutes of the log: the earlier parts of the same date
    # partition are skipped by their time statistics, not read and filtered row by row.
    from vigil.capture.reader import read_capture_table
    from vigil.capture.table import read_part

    sink = _sink(tmp_path)
    store = ArtifactStore(str(tmp_path / "store"))
    morning, noon = DAY2.replace(hour=9), DAY2.replace(hour=12)
    _predict(sink, "early", "churn", morning, n=3)
    first = sink.log.rotate()
    _predict(sink, "late", "churn", noon, n=2)
    sink.log.rotate()
    parts = compact(sink.log, store).parts
    assert first is not None and len(parts) == 2
    since = noon - timedelta(hours=1)
    with store.fs.open(store.resolve_key(parts[0]), "rb") as fh:
        assert read_part(fh, since=since) is None
    with store.fs.open(store.resolve_key(parts[1]), "rb") as fh:
        assert read_part(fh, since=since, until=noon + timedelta(hours=1)).num_rows == 2
    table = read_capture_table("churn", since, store=store)
    assert table is not None and table["request_id"].to_pylist() == ["late", "late"]
    everything = read_capture_table("churn", store=store)
    assert everything is not None and everything.num_rows == 5


def test_a_pass_ending_between_a_readers_two_listings_loses_no_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compaction runs beside readers (in its own process): it writes a segment's parts,
    then deletes the segment. A pass that ends after a reader listed the parts and before
    it read the segments must not make the rows vanish from that read (nor count them
    twice): the reader lists the segments first and reads a vanished one's parts."""
    import vigil.capture.reader as reader
    import vigil.capture.scan as scan
    import vigil.monitor.summaries.store as summaries

    sink = _sink(tmp_path)
    store = ArtifactStore(str(tmp_path / "store"))
    _predict(sink, "old", "churn", DAY1)
    sink.log.rotate()
    compact(sink.log, store)  # a part already there, on the first day
    _predict(sink, "r1", "churn", DAY1, n=3)
    _predict(sink, "r2", "churn", DAY2, n=2)
    _predict(sink, "r3", "fraud", DAY2)
    sink.log.rotate()
    expected = {"old": 2, "r1": 3, "r2": 2}

    def racing(listing: Any) -> Any:
        def listed(*args: Any, **kwargs: Any) -> Any:
            found = listing(*args, **kwargs)  # the partitions as they were...
            if sink.log.closed_segments():
                compact(sink.log, store)  # ...then the pass ends: parts in, segment gone
            return found

        return listed

    def counts(ids: list[str]) -> dict[str, int]:
        return {rid: ids.count(rid) for rid in sorted(set(ids))}

    monkeypatch.setattr(reader, "partition_dirs", racing(reader.partition_dirs))
    table = reader.read_capture_table("churn", store=store, log_dir=sink.log.directory)
    assert table is not None and counts(table["request_id"].to_pylist()) == expected
    assert sink.log.all_segments() == []

    # The streamed scan and the summaries' row reader, the same race.
    _predict(sink, "r4", "churn", DAY2, n=4)
    sink.log.rotate()
    expected["r4"] = 4
    monkeypatch.setattr(scan, "partition_dirs", racing(scan.partition_dirs))
    scanned = scan.scan_capture("churn", store=store, log_dir=sink.log.directory)
    ids = [r for b in scanned.batches() for r in b.column("request_id").to_pylist()]
    assert counts(ids) == expected

    _predict(sink, "r5", "churn", DAY2, n=1)
    sink.log.rotate()
    expected["r5"] = 1
    monkeypatch.setattr(summaries, "parts", racing(summaries.parts))
    batches = summaries.span_batches(
        store, lambda names: ["request_id"], model="churn", log_dir=sink.log.directory
    )
    ids = [r for b in batches for r in b.column("request_id").to_pylist()]
    assert counts(ids) == expected
