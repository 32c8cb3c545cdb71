"""Fairness counts from summaries against the rows path, on the same rows, in one run.

Run ``flock /tmp/vigil-bench.lock python -m bench.fairness_summaries [--rows N]``. Seeded
log rows (over three hours, 5 rows a request) with a feature, a passthrough field and a
prediction; feedback on 60 % of them (a label, most with a field of feedback). Both sides
measure fairness by the three attributes, interleaved round by round, after a warm-up:

* **rows**: the log as a pandas frame, :func:`~vigil.monitor.measure.labelled_rows` and
  :func:`~vigil.monitor.group_fairness.measure_fairness` (what a window read raw does,
  not counting the read);
* **summaries**: :func:`~vigil.monitor.summaries.build.summarise` over the log's Arrow
  batches with ``groups_from`` (what the summary pass runs per window, not counting the
  read), the merge of the hourly summaries and their reports.

Reported: the median seconds of each and the ratio summaries / rows; the counts of both
are checked equal first.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from vigil.monitor.fairness import ModelFairness
from vigil.monitor.group_fairness import measure_fairness
from vigil.monitor.measure import labelled_rows
from vigil.monitor.summaries.build import summarise
from vigil.monitor.summaries.window import Anchors, merge_all
from vigil.stats.fairness import FairnessReport

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = ModelFairness.model_validate(
    {
        "attributes": [
            "plan",
            {"name": "region", "source": "passthrough"},
            {"name": "band", "source": "feedback"},
        ],
        "positive_label": 1,
    }
)
ANCHORS = Anchors(
    features={}, task="classification", classes=("0", "1"), fairness=CONFIG, positive="1"
)
NAMES = [a.name for a in CONFIG.attributes]


def data(n: int) -> tuple[pa.Table, pd.DataFrame]:
    rng = np.random.default_rng(42)
    plan = rng.choice(["basic", "pro", "team"], n, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "islands", None], n, p=[0.5, 0.4, 0.02, 0.08])
    lift = (plan == "pro") * 0.3 + (region == "south") * 0.2
    prediction = (rng.random(n) < 0.3 + lift).astype(np.int64)
    seconds = np.sort(rng.integers(0, 3 * 3600, n))
    table = pa.table(
        {
            "request_id": [f"r{i // 5:08d}" for i in range(n)],
            "row": pa.array(np.arange(n) % 5, pa.int64()),
            "time": pa.array(
                [T0 + timedelta(seconds=int(s)) for s in seconds], pa.timestamp("us", tz="UTC")
            ),
            "model": ["churn"] * n,
            "version": pa.array(np.ones(n, dtype=np.int64)),
            "route": ["native_predict"] * n,
            "status": pa.array(np.full(n, 200), pa.int64()),
            "prediction": pa.array(prediction),
            "feature.plan": plan,
            "passthrough.region": region,
        }
    )
    told = np.flatnonzero(rng.random(n) < 0.6)
    feedback = pd.DataFrame(
        {
            "request_id": [f"r{i // 5:08d}" for i in told],
            "row": told % 5,
            "caller": None,
            "label": (rng.random(told.size) < 0.25 + lift[told]).astype(np.int64),
            "time": pd.Timestamp(T0 + timedelta(days=1)),
            "field.band": rng.choice(["a", "b", None], told.size, p=[0.45, 0.45, 0.1]),
        }
    )
    return table, feedback


def by_rows(table: pa.Table, feedback: pd.DataFrame) -> dict[str, FairnessReport]:
    rows = table.to_pandas()
    joined = labelled_rows(rows, feedback)
    return measure_fairness(rows, joined, CONFIG, [0, 1], [], feedback=feedback)


def by_summaries(table: pa.Table, feedback: pd.DataFrame) -> dict[str, FairnessReport]:
    built = summarise(
        table.to_batches(65_536), lambda m, v: ANCHORS, features=[], groups_from=feedback
    )
    merged = merge_all(built)
    assert merged is not None and merged.groups is not None
    return merged.groups.reports(NAMES, CONFIG.min_group_size, [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    table, feedback = data(args.rows)
    want, got = by_rows(table, feedback), by_summaries(table, feedback)  # warm-up and check
    for name in NAMES:
        counts = {g: r.counts for g, r in got[name].groups.items()}
        assert counts == {g: r.counts for g, r in want[name].groups.items()}, name
    times: dict[str, list[float]] = {"rows": [], "summaries": []}
    for _ in range(args.rounds):
        for side, fn in (("rows", by_rows), ("summaries", by_summaries)):
            started = time.perf_counter()
            fn(table, feedback)
            times[side].append(time.perf_counter() - started)
    rows, summaries = (statistics.median(times[k]) for k in ("rows", "summaries"))
    print(
        f"{args.rows:,} rows, {len(feedback):,} feedback, {args.rounds} rounds: rows path "
        f"{rows:.3f} s, summaries {summaries:.3f} s, ratio summaries/rows {summaries / rows:.2f}"
    )


if __name__ == "__main__":
    main()
