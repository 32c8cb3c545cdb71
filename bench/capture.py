"""Cost of capturing one prediction: ``python -m bench.capture [--quick]``.

Times ``CaptureSink.record_prediction`` for a one-row request with 8 features and class
probabilities (what the serving hot path calls per request) against a no-op call with the
same arguments, and reports µs per record for each fsync policy.
"""

from __future__ import annotations

import sys
import tempfile
import time
from typing import Any

import numpy as np

from vigil.capture.log import SegmentLog
from vigil.capture.sink import CaptureSink


def _noop(**_: Any) -> int:
    return 1


def measure(n: int, fsync: str = "none", rows: int = 1) -> dict[str, float]:
    """µs per call of the real sink and of a no-op, over ``n`` calls of ``rows`` rows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 8))
    names = [f"f{i}" for i in range(8)]
    proba = np.full((rows, 2), 0.5)
    with tempfile.TemporaryDirectory() as tmp:
        sink = CaptureSink(SegmentLog(tmp, fsync=fsync, fsync_interval_s=1.0))
        results = {}
        for label, call in (("noop", _noop), ("capture", sink.record_prediction)):
            started = time.perf_counter()
            for i in range(n):
                call(
                    request_id=f"r{i}",
                    model="m",
                    version=1,
                    features=X,
                    feature_names=names,
                    predictions=np.zeros(rows, dtype=np.int64),
                    probabilities=proba,
                    classes=[0, 1],
                    latency_ms=1.0,
                )
            results[label] = (time.perf_counter() - started) / n * 1e6
        sink.close()
    results["overhead_us"] = results["capture"] - results["noop"]
    return results


def main(argv: list[str]) -> None:
    n = 2_000 if "--quick" in argv else 20_000
    for fsync, rows in (("none", 1), ("none", 32), ("interval", 1), ("always", 1)):
        calls = n if fsync != "always" else max(n // 20, 100)
        r = measure(calls, fsync, rows)
        print(
            f"fsync={fsync:8s} rows/request={rows:3d}: capture {r['capture']:8.1f} µs/request, "
            f"no-op {r['noop']:5.2f} µs, overhead {r['overhead_us'] / rows:6.1f} µs/row"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
