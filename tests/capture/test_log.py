"""The append-only log: framing, torn records, rotation, and survival of kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vigil.capture.framing import decode_frames, encode_frame
from vigil.capture.log import SegmentLog, read_segment, recover_if_dead
from vigil.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]


def test_frames_round_trip_odd_values() -> None:
    import numpy as np

    record = {
        "nan": float("nan"),
        "inf": np.float64("inf"),
        "b": b"\xff\x00",
        "s": {1},
        "n": np.int32(3),
    }
    records, torn = decode_frames(encode_frame(record))
    assert torn == 0
    assert records == [{"nan": None, "inf": None, "b": "\ufffd\x00", "s": [1], "n": 3}]


def test_torn_tail_is_skipped_and_the_rest_kept(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path)
    log.append([{"i": i, "pad": "x" * 50} for i in range(10)])
    path = log.rotate()
    assert path is not None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])  # cut the last record in the middle
    records, torn = read_segment(path)
    assert [r["i"] for r in records] == list(range(9))
    assert torn == 1


def test_corrupt_middle_record_fails_its_crc_only(tmp_path: Path) -> None:
    data = bytearray(b"".join(encode_frame({"i": i}) for i in range(3)))
    second = data.index(b"\n") + 1
    data[second + 12] ^= 0x01  # flip one payload bit of record 1
    records, torn = decode_frames(bytes(data))
    assert [r["i"] for r in records] == [0, 2]
    assert torn == 1


def test_rotation_by_size_and_names_per_process(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, segment_bytes=1024)
    for i in range(50):
        log.append([{"i": i, "pad": "y" * 40}])
    log.close()
    closed = log.closed_segments()
    assert len(closed) > 3
    assert all(f"-{os.getpid()}-" in p.name for p in closed)
    assert all(p.stat().st_size <= 1024 + 80 for p in closed)
    ids = [r["i"] for p in closed for r in read_segment(p)[0]]
    assert sorted(ids) == list(range(50))
    assert log.live_segments() == []


def test_rotation_by_time(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, segment_seconds=1e-9)
    log.append([{"i": 0}])
    log.append([{"i": 1}])
    assert len(log.closed_segments()) == 1
    assert len(log.live_segments()) == 1


def test_live_segment_of_a_live_writer_is_not_recovered(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path)
    log.append([{"i": 0}])
    (live,) = log.live_segments()
    assert recover_if_dead(live, log.prefix) is None  # our own flock still holds it
    assert live.exists()


@pytest.mark.parametrize("policy", ["interval", "always"])
def test_fsync_policies_write_the_same_records(tmp_path: Path, policy: str) -> None:
    log = SegmentLog(tmp_path, fsync=policy, fsync_interval_s=0.001)
    for i in range(5):
        log.append([{"i": i}])
    path = log.rotate()
    assert path is not None
    assert [r["i"] for r in read_segment(path)[0]] == [0, 1, 2, 3, 4]


def test_unknown_fsync_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="VIGIL_CAPTURE_FSYNC"):
        SegmentLog(tmp_path, fsync="sometimes")


_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from vigil.capture.log import SegmentLog
    from vigil.capture.sink import CaptureSink

    sink = CaptureSink(SegmentLog(sys.argv[1], segment_bytes=16384))
    X = np.array([[1.0, 2.0]])
    out = sys.stdout
    for i in range(1_000_000):
        rid = f"req{i}"
        sink.record_prediction(request_id=rid, model="m", version=1, features=X,
                               feature_names=["a", "b"], predictions=np.array([1]))
        out.write(rid + "\\n")  # the acknowledgement: only after record() returned
        out.flush()
    """
)


@pytest.mark.parametrize("seed", [1, 2])
def test_every_acknowledged_record_survives_kill_9(tmp_path: Path, seed: int) -> None:
    kill_after = random.Random(seed).randint(200, 1500)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, env=env
    )
    assert child.stdout is not None
    acknowledged = []
    while len(acknowledged) < kill_after:
        line = child.stdout.readline()
        assert line, "the writer died on its own"
        acknowledged.append(line.decode().strip())
    child.send_signal(signal.SIGKILL)
    # Acknowledgements already in the pipe were sent before the kill: they count too.
    acknowledged += [line.strip() for line in child.stdout.read().decode().splitlines()]
    child.stdout.close()
    child.wait()
    assert child.returncode == -signal.SIGKILL

    log = SegmentLog(tmp_path)
    segments = log.closed_segments()  # closes the dead writer's live segment
    assert log.live_segments() == []
    found: list[str] = []
    torn = 0
    for path in segments:
        records, t = read_segment(path)
        torn += t
        found += [r["request_id"] for r in records]
        assert all(r["model"] == "m" and r["features"] == {"a": 1.0, "b": 2.0} for r in records)
    assert set(acknowledged) <= set(found)
    assert len(found) == len(set(found))  # nothing doubled
    assert len(found) - len(acknowledged) <= 1  # at most the one written, not yet acknowledged
    assert torn <= 1


def test_records_without_a_propensity_read_as_missing() -> None:
    """Segments and parts written before propensities were logged stay readable: the
    column is null for them, beside rows that have one."""
    from vigil.capture.table import concat, records_to_table

    old = {"request_id": "old", "row": 0, "time": "2025-01-02T03:04:05+00:00", "model": "m"}
    new = {**old, "request_id": "new", "propensity": 0.25, "variant": "b"}
    assert records_to_table([old], segment="s")["propensity"].to_pylist() == [None]
    old_part = records_to_table([old], segment="s").drop_columns(["propensity"])
    both = concat([old_part, records_to_table([new], segment="t")])
    assert both["propensity"].to_pylist() == [None, 0.25]
