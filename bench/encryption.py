"""Cost of encrypting the inference log at rest: ``python -m bench.encryption [--quick]``.

Three measurements, each plain and encrypted (one AES-256 key,
:mod:`vigil.capture.crypt`) in alternating rounds, reported as the ratio of the medians
(encrypted / plain; 1.00 = free):

* ``capture k=1`` / ``capture k=32``: µs per :meth:`CaptureSink.record_answered` of k
  single-row requests (20 features, class probabilities) answered together, as the
  server's group commit writes them: encode, (encrypt), ``os.write``;
* ``compaction``: seconds to compact the closed segments of ``--rows`` rows into Parquet
  parts (read, decrypt, convert, write, encrypt, chain);
* ``monitor read``: seconds to read every compacted row back as one Arrow table
  (:func:`~vigil.capture.reader.read_capture_table`, what a count-window monitor run reads)
  and to stream one feature column through :func:`~vigil.capture.scan.scan_capture`.

Run it under ``flock /tmp/vigil-bench.lock`` so no other benchmark shares the cores.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vigil.capture.compact import compact
from vigil.capture.crypt import KeyRing, LogCodec, new_key_line
from vigil.capture.log import SegmentLog
from vigil.capture.reader import read_capture_table
from vigil.capture.scan import scan_capture
from vigil.capture.sink import Answered, CaptureSink
from vigil.storage.artifacts import ArtifactStore

N_FEATURES = 20
NAMES = [f"f{i}" for i in range(N_FEATURES)]


def _setup(root: Path, codec: LogCodec | None) -> tuple[CaptureSink, ArtifactStore]:
    store = ArtifactStore(str(root / "store"))
    store.log_codec = codec
    log = SegmentLog(root / "capture", codec=codec, segment_bytes=1 << 40)
    return CaptureSink(log), store


def _answered(n: int, rng: np.random.Generator) -> list[Answered]:
    out = []
    for i in range(n):
        X = rng.normal(size=(1, N_FEATURES))
        proba = np.array([[0.3, 0.7]])
        out.append(
            Answered(f"r{i}", "m", 1, X, NAMES, np.zeros(1, np.int64), proba, [0, 1], "native", 1.0)
        )
    return out


def capture_us(codec: LogCodec | None, k: int, calls: int) -> float:
    rng = np.random.default_rng(0)
    group = _answered(k, rng)
    with tempfile.TemporaryDirectory() as tmp:
        sink, _store = _setup(Path(tmp), codec)
        start = time.perf_counter()
        for _ in range(calls):
            sink.record_answered(group)
        elapsed = time.perf_counter() - start
        sink.close()
    return elapsed / calls * 1e6


def _filled(root: Path, codec: LogCodec | None, rows: int) -> tuple[CaptureSink, ArtifactStore]:
    sink, store = _setup(root, codec)
    rng = np.random.default_rng(1)
    group = _answered(100, rng)
    for _ in range(rows // 100):
        sink.record_answered(group)
    sink.log.rotate()
    return sink, store


def compaction_s(codec: LogCodec | None, rows: int) -> float:
    root = Path(tempfile.mkdtemp())
    try:
        sink, store = _filled(root, codec, rows)
        start = time.perf_counter()
        compact(sink.log, store)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(root)


def read_s(codec: LogCodec | None, rows: int) -> float:
    root = Path(tempfile.mkdtemp())
    try:
        sink, store = _filled(root, codec, rows)
        compact(sink.log, store)
        start = time.perf_counter()
        table = read_capture_table("m", store=store)
        assert table is not None and table.num_rows == rows
        scan = scan_capture("m", store=store, columns=["feature.f3"])
        assert sum(b.num_rows for b in scan.batches()) == rows
        return time.perf_counter() - start
    finally:
        shutil.rmtree(root)


def _ratio(
    name: str, measure: Callable[[LogCodec | None], float], codec: LogCodec, rounds: int
) -> dict[str, float]:
    plain: list[float] = []
    secret: list[float] = []
    for _ in range(rounds):  # alternating, so drift in the machine's speed hits both
        plain.append(measure(None))
        secret.append(measure(codec))
    p, s = statistics.median(plain), statistics.median(secret)
    print(f"{name:14} plain {p:10.4g}  encrypted {s:10.4g}  ratio {s / p:5.2f}", flush=True)
    return {"plain": p, "encrypted": s, "ratio": s / p}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and rounds")
    parser.add_argument("--rows", type=int, default=200_000, help="rows compacted and read")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = 20_000 if args.quick else args.rows
    rounds = 3 if args.quick else args.rounds
    calls = 2_000 if args.quick else 20_000
    codec = LogCodec(KeyRing.parse(new_key_line("bench")))
    print(f"rows={rows} rounds={rounds} capture calls={calls} (µs per call / seconds)")
    _ratio("capture k=1", lambda c: capture_us(c, 1, calls), codec, rounds)
    _ratio("capture k=32", lambda c: capture_us(c, 32, calls // 4), codec, rounds)
    _ratio("compaction", lambda c: compaction_s(c, rows), codec, rounds)
    _ratio("monitor read", lambda c: read_s(c, rows), codec, rounds)


if __name__ == "__main__":
    main()
