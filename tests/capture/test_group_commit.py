"""The pieces behind capture in the server: columnar frames, group commit, following
segments, finding request ids, and compaction one process at a time."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from vigil.capture.compact import compact
from vigil.capture.compactor import LOCK_NAME, RETENTION_EVERY_S, CompactionPass, Compactor
from vigil.capture.framing import decode_frames, encode_batch_frame, encode_frame
from vigil.capture.group import GroupCommit
from vigil.capture.log import SegmentLog, read_segment
from vigil.capture.lookup import CaptureLookup
from vigil.capture.masking import Masker
from vigil.capture.reader import read_capture, read_capture_table
from vigil.capture.sink import Answered, CaptureSink
from vigil.capture.tail import SegmentTail
from vigil.errors import ServiceUnavailableError
from vigil.storage.artifacts import ArtifactStore

NAMES = ["a", "b", "c"]


def _answered(rid: str, rows: int, *, seed: int = 0, **extra: Any) -> Answered:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3))
    proba = rng.dirichlet([1, 1], size=rows)
    return Answered(
        rid, "m", 1, X, NAMES, (proba[:, 1] > 0.5).astype(np.int64), proba, [0, 1], **extra
    )


def test_a_columnar_batch_reads_back_as_the_records_of_format_1(tmp_path: Path) -> None:
    """The same requests, written per row (format 1) and as one batch (format 2), read
    back identically, and both formats live side by side in one segment."""
    entries = [
        _answered("r1", 2, seed=1, route="native", latency_ms=1.5),
        _answered("r2", 1, seed=2, route="v2", variant="b", endpoint="e", caller="k1"),
    ]
    sink = CaptureSink(SegmentLog(tmp_path))
    stamp = datetime(2025, 3, 1, 12, tzinfo=UTC)
    sink.record_answered(entries, time=stamp)
    expected = []
    for e in entries:
        for i in range(len(e.predictions)):
            expected.append(
                {
                    "request_id": e.request_id,
                    "row": i,
                    "time": stamp.isoformat(),
                    "route": e.route,
                    "model": "m",
                    "version": 1,
                    "variant": e.variant,
                    "caller": e.caller,
                    "endpoint": e.endpoint,
                    "propensity": None,
                    "features": dict(zip(NAMES, e.features[i].tolist(), strict=True)),
                    "prediction": int(e.predictions[i]),
                    "probabilities": {"0": e.probabilities[i, 0], "1": e.probabilities[i, 1]},
                    "latency_ms": e.latency_ms,
                    "status": 200,
                    "error_code": None,
                    "error_message": None,
                    "raw_body": None,
                    "cached": False,
                }
            )
    sink.log.append([expected[0]])  # a format-1 frame after the batch
    path = sink.log.rotate()
    assert path is not None
    records, torn = read_segment(path)
    assert torn == 0
    assert records == [*expected, expected[0]]
    # Readers that only match ids can skip building the feature and probability dicts.
    light, _ = decode_frames(path.read_bytes(), maps=False)
    drop = ("features", "probabilities")
    assert light[:3] == [{k: v for k, v in r.items() if k not in drop} for r in expected]


def test_requests_with_and_without_passthrough_fields_keep_their_own_values(
    tmp_path: Path,
) -> None:
    """One model version's batch whose requests carry different passthrough fields (or
    none) is written in frames of like requests: no value lands on another's row."""
    entries = [
        _answered("r1", 2, seed=1, passthrough={"g": ["a", "b"]}),
        _answered("r2", 1, seed=2),
        _answered("r3", 1, seed=3, passthrough={"h": [7]}),
        _answered("r4", 2, seed=4, passthrough={"g": ["c", "d"]}),
    ]
    sink = CaptureSink(SegmentLog(tmp_path))
    assert sink.record_answered(entries) == 6
    path = sink.log.rotate()
    assert path is not None
    records, _ = read_segment(path)
    got = sorted((r["request_id"], r["row"], r.get("passthrough")) for r in records)
    assert got == [
        ("r1", 0, {"g": "a"}),
        ("r1", 1, {"g": "b"}),
        ("r2", 0, None),
        ("r3", 0, {"h": 7}),
        ("r4", 0, {"g": "c"}),
        ("r4", 1, {"g": "d"}),
    ]


def test_a_torn_batch_is_skipped_whole() -> None:
    batch = {"n": 2, "same": {"m": 1}, "rows": {"y": [1, 2]}}
    data = encode_frame({"i": 0}) + encode_batch_frame(batch) + encode_frame({"i": 1})
    start = data.index(b"#2 ") + 12
    damaged = data[:start] + b"X" + data[start + 1 :]
    assert decode_frames(damaged) == ([{"i": 0}, {"i": 1}], 1)
    assert decode_frames(data[: start + 5]) == ([{"i": 0}], 1)


def test_columnar_masking_matches_row_masking() -> None:
    masker = Masker({"a": "hash", "b": "mask", "c": "drop"}, hash_key="k")
    X = np.random.default_rng(3).normal(size=(5, 3))
    keys, rows = masker.apply_rows(NAMES, X)
    by_row = [masker.apply(dict(zip(NAMES, r, strict=True))) for r in X.tolist()]
    assert [dict(zip(keys, r, strict=True)) for r in rows] == by_row
    keys, columns = masker.apply_columns(NAMES, [X[:, j] for j in range(3)])
    assert [dict(zip(keys, r, strict=True)) for r in zip(*columns, strict=True)] == by_row


def test_group_commit_writes_each_call_at_once(tmp_path: Path) -> None:
    commit = GroupCommit(CaptureSink(SegmentLog(tmp_path)))
    commit.write([_answered(i, 1) for i in ("a", "b", "c")])
    commit.write([_answered("d", 1)])
    commit.write([])
    assert (commit.writes, commit.requests) == (2, 4)
    records, _ = read_segment(commit.sink.log.rotate())  # type: ignore[arg-type]
    assert [r["request_id"] for r in records] == ["a", "b", "c", "d"]


def test_group_commit_failure_raises_and_counts_nothing(tmp_path: Path) -> None:
    sink = CaptureSink(SegmentLog(tmp_path))
    commit = GroupCommit(sink)
    sink.log.append([{"warm": 1}])  # open the live segment
    assert sink.log._fd is not None
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, sink.log._fd)  # the disk is full from now on
    os.close(full)
    with pytest.raises(ServiceUnavailableError, match="No space left on device"):
        commit.write([_answered(i, 1) for i in ("x", "y")])
    assert (commit.writes, commit.requests) == (0, 0)


def test_tail_reads_each_record_once_across_rotation(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, prefix="capture")
    tail = SegmentTail(tmp_path, "capture")
    log.append([{"i": 0}, {"i": 1}])
    first, _ = tail.poll()
    log.append([{"i": 2}])
    closed = log.rotate()
    second, gone = tail.poll()
    assert [r["i"] for rs in first.values() for r in rs] == [0, 1]
    assert [r["i"] for rs in second.values() for r in rs] == [2] and gone == []
    # A half-written frame is left for the next poll.
    assert closed is not None
    with closed.open("ab") as fh:
        fh.write(encode_frame({"i": 3})[:-4])
    assert tail.poll()[0] == {}
    closed.unlink()
    assert tail.poll() == ({}, [closed.name.rsplit(".", 1)[0]])


def test_lookup_finds_ids_in_segments_and_parquet_without_duplicates(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    sink = CaptureSink(SegmentLog(tmp_path / "capture"))
    old = datetime.now(UTC) - timedelta(days=10)
    sink.record_answered([_answered("old", 3, endpoint="e", variant="a")], time=old)
    sink.log.rotate()
    assert compact(sink.log, store).rows == 3
    sink.record_answered([_answered("new", 1)])
    sink.record_failure(request_id="bad", status=422, error_code="x", error_message="no")
    lookup = CaptureLookup(tmp_path / "capture", store)
    found = lookup.find(["old", "new", "bad", "ghost"])
    assert sorted(found) == ["new", "old"]
    assert (found["old"].rows, found["old"].endpoint, found["old"].variant) == (3, "e", "a")
    assert found["old"].time == datetime.fromisoformat(old.isoformat())
    assert sorted(lookup.find(["old", "new"], since=old + timedelta(days=1))) == ["new"]
    # The reader sees each row once too.
    frame = read_capture(store=store, log_dir=tmp_path / "capture")
    assert frame.groupby("request_id").size().to_dict() == {"bad": 1, "new": 1, "old": 3}


def test_one_compactor_at_a_time_and_idle_segments_are_closed(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    log = SegmentLog(tmp_path / "capture", segment_seconds=0.2)
    sink = CaptureSink(log)
    sink.record_answered([_answered("r1", 2)])
    compactor = Compactor(log, store, retention_days=7)
    holder = os.open(tmp_path / "capture" / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another process is compacting
    try:
        assert compactor.run_once() is None
    finally:
        os.close(holder)
    done = compactor.run_once()
    assert done is not None and done.capture.rows == 0  # the live segment is still young
    time.sleep(0.25)
    done = compactor.run_once()
    assert done is not None and done.capture.rows == 2 and log.all_segments() == []
    frame = read_capture(store=store)
    assert list(frame["request_id"]) == ["r1", "r1"] and list(frame["row"]) == [0, 1]
    pd.testing.assert_series_equal(
        frame["feature.a"], pd.Series(_answered("r1", 2).features[:, 0], name="feature.a")
    )


_SHORT_WRITE = textwrap.dedent(
    """
    import resource, signal, sys
    from vigil.capture.log import SegmentLog
    from vigil.errors import ServiceUnavailableError

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails EFBIG
    log = SegmentLog(sys.argv[1])
    log.append([{"i": 0, "pad": "x" * 100}])
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, resource.RLIM_INFINITY))
    try:
        log.append([{"i": 1, "pad": "y" * 300}])  # the kernel takes part of it, then refuses
    except ServiceUnavailableError as exc:
        print("refused:", exc.message)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    log.append([{"i": 2}])
    log.close()
    """
)


def test_a_short_write_ends_its_segment_so_later_records_stay_whole(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    out = subprocess.run(
        [sys.executable, "-c", _SHORT_WRITE, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    assert "refused:" in out and "File too large" in out
    first, second = SegmentLog(tmp_path).closed_segments()
    assert read_segment(first)[0] == [{"i": 0, "pad": "x" * 100}]
    assert read_segment(first)[1] == 1  # the torn part of record 1, at the very end
    assert read_segment(second) == ([{"i": 2}], 0)


def test_a_batch_frame_holds_one_list_per_column_not_per_row(tmp_path: Path) -> None:
    # Readers (feedback lookups, compaction) parse what is written: a request of 100,000
    # rows of 3 features is 3 lists of features and 2 of probabilities, not 100,000 each.
    sink = CaptureSink(SegmentLog(tmp_path))
    entry = _answered("wide", 100_000)
    sink.record_answered([entry])
    (line,) = sink.log.rotate().read_bytes().splitlines()  # type: ignore[union-attr]
    frame = orjson.loads(line[line.index(b" ") + 1 :])
    features, proba = frame["maps"]["features"], frame["maps"]["probabilities"]
    assert (features["keys"], len(features["columns"]), len(proba["columns"])) == (NAMES, 3, 2)
    np.testing.assert_array_equal(features["columns"], entry.features.T)
    records, torn = decode_frames(line + b"\n")
    assert torn == 0 and len(records) == 100_000
    assert records[-1]["features"] == dict(zip(NAMES, entry.features[-1].tolist(), strict=True))


def test_a_pass_with_nothing_to_do_is_not_started(tmp_path: Path) -> None:
    """The worker asks before each pass whether there is anything to compact (a closed
    segment, a dead writer's live one) or retention is due; if not, no pass runs (in
    ``vigil serve`` no child process is started), so an idle server costs nothing per
    interval."""
    store = ArtifactStore(str(tmp_path / "store"))
    log = SegmentLog(tmp_path / "capture")
    sink = CaptureSink(log)
    compactor = Compactor(log, store, interval_s=0.01)
    assert not compactor.has_work()  # empty
    sink.record_answered([_answered("r1", 2)])
    assert not compactor.has_work()  # this worker's own live segment: not compactable
    # Another writer's live segment: alive while it holds its lock, compactable once dead.
    other = SegmentLog(tmp_path / "capture")
    CaptureSink(other).record_answered([_answered("r2", 1)])
    assert not compactor.has_work()
    assert other._fd is not None
    os.close(other._fd)  # its writer dies (kill -9): its lock goes with the descriptor
    other._fd = None
    assert compactor.has_work()
    assert compactor.run_once() is not None and not compactor.has_work()
    log.rotate()
    assert compactor.has_work()  # a closed segment

    started: list[int] = []

    def compact_closed() -> CompactionPass | None:
        started.append(compactor.passes)
        return compactor.compact_closed()

    async def passes(n: int) -> None:
        task = asyncio.create_task(compactor.run(compact_closed))
        while compactor.passes < n:
            await asyncio.sleep(0.005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(passes(5))
    assert len(started) == 1 and compactor.skipped >= 4  # the closed segment, then nothing
    rows = read_capture_table(store=store, log_dir=log.directory)
    assert rows is not None and sorted(set(rows["request_id"].to_pylist())) == ["r1", "r2"]
    # Retention is due at the first pass, then only every RETENTION_EVERY_S.
    kept = Compactor(log, store, retention_days=7, interval_s=0.01)
    assert kept.has_work()
    kept._retained_at = time.monotonic()
    assert not kept.has_work()
    kept._retained_at = time.monotonic() - RETENTION_EVERY_S
    assert kept.has_work()
