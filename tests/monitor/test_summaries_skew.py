"""Memory stays bounded under a skewed window (issue 22): one model whose ``city`` column
takes 100,000 distinct values, and one hour holding 95 % of a day's rows (the rest in
another hour).

The rows are produced batch by batch (as a part's record batches are read), summarised per
hour, merged into the day's window and serialised, in a child process per size (both run
at once) that measures its peak RSS (the kernel's high-water mark, reset after a warm-up
run) above its RSS before the run: for 40,000 and for 160,000 rows (about 33,000 and
80,000 distinct cities) it must not grow with the rows, and stays under :data:`BOUND`.
Category counts are exact up to the cap, then a frequent-items sketch of fixed size takes
the rest, so neither the summary nor its stored form grows either: what memory holds is
bounded by the cap per hourly bucket (here two buckets; a day spread over 24 hours, each
past 10,000 distinct values, would hold up to 24 times the cap while its buckets merge),
not by the rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from vigil.monitor.summaries.build import summarise
from vigil.monitor.summaries.columns import CATEGORY_CAP, CategoricalSummary
from vigil.monitor.summaries.store import windows
from vigil.monitor.summaries.window import Anchors, FeatureAnchor, dumps

DAY = datetime(2026, 2, 2, tzinfo=UTC)
CITIES = 100_000
BATCH = 20_000
BOUND = 40 * 2**20
"""The most summarising a skewed day may add to a process's RSS, whatever its rows."""
ANCHORS = Anchors(
    {
        "city": FeatureAnchor("categorical", known=tuple(f"c{i}" for i in range(50))),
        "amount": FeatureAnchor("numeric", cuts=tuple(np.linspace(-2, 2, 9).tolist())),
    }
)
SIZES = (40_000, 160_000)


def _batches(rows: int, seed: int) -> Iterator[pa.RecordBatch]:
    rng = np.random.default_rng(seed)
    labels = pa.array([f"c{i}" for i in range(CITIES)])
    for lo in range(0, rows, BATCH):
        n = min(BATCH, rows - lo)
        # 95 % of the rows in the day's first hour, the rest in its last.
        busy = rng.random(n) < 0.95
        seconds = np.where(busy, rng.uniform(0, 3600, n), rng.uniform(82_800, 86_400, n))
        micros = (np.sort(seconds) * 1e6).astype(np.int64) + int(DAY.timestamp() * 1e6)
        yield pa.RecordBatch.from_pydict(
            {
                "time": pa.array(micros, pa.timestamp("us", tz="UTC")),
                "model": pa.array(["m"] * n),
                "version": pa.array(np.ones(n, dtype=np.int64)),
                "route": pa.array(["native"] * n),
                "status": pa.array(np.full(n, 200, dtype=np.int64)),
                "feature.city": labels.take(pa.array(rng.integers(0, CITIES, n))),
                "feature.amount": pa.array(rng.normal(size=n)),
            }
        )


def _day(rows: int) -> dict[str, int]:
    """Summarise ``rows`` rows into one day's window; its sizes and counts."""
    hours = summarise(_batches(rows, seed=rows), lambda m, v: ANCHORS)
    (day,) = windows(hours, 86_400).values()
    city = day.features["city"]
    assert isinstance(city, CategoricalSummary)
    return {
        "rows": day.rows,
        "city_n": city.n,
        "exact": len(city.counts),
        "overflow": city.overflow_weight,
        "stored": len(dumps([day])),
    }


def _hwm() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))


def _child(rows: int) -> None:
    """In a child process: warm up, reset the peak, run, print the peak above the start."""
    _day(BATCH)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    with open("/proc/self/statm") as fh:
        start = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    out = _day(rows)
    print(json.dumps({**out, "grew": _hwm() - start}))


def test_a_skewed_window_of_many_categories_keeps_memory_flat() -> None:
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    code = (
        "import sys; from tests.monitor.test_summaries_skew import _child; _child(int(sys.argv[1]))"
    )
    children = [  # one process per size, both at once
        subprocess.Popen(
            [sys.executable, "-c", code, str(n)],
            cwd=root,
            env={**os.environ, "PYTHONPATH": path},
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in SIZES
    ]
    small, large = (json.loads(c.communicate(timeout=300)[0].splitlines()[-1]) for c in children)
    assert [c.returncode for c in children] == [0, 0]
    print(
        f"RSS grew {small['grew'] / 2**20:.1f} MB at 40k rows, {large['grew'] / 2**20:.1f} MB at 160k"
    )
    for out, n in ((small, SIZES[0]), (large, SIZES[1])):
        assert out["rows"] == out["city_n"] == n
    assert large["grew"] < BOUND, (small, large)
    assert large["grew"] < 1.3 * small["grew"] + 4 * 2**20, (small, large)  # flat, not 4x
    # Exact counts up to the cap, the rest in the sketch: the stored size is flat too.
    assert large["exact"] <= CATEGORY_CAP + len(ANCHORS.features["city"].known)
    assert large["overflow"] > 0.8 * SIZES[1]
    assert large["stored"] < 1.3 * small["stored"], (small, large)
