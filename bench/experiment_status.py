"""Experiment status over a large inference log: the whole-log read against the stream.

``python -m bench.experiment_status --rows 1000000 [--repeat 2] [--engines reference,streamed]
[--data DIR]``

Rows are written straight in the capture format (issue 22: not through HTTP) as compacted
Parquet parts of 100,000 rows, ten parts a day: two models, ``churn`` serving the endpoint
``checkout`` (variants ``a`` and ``b``, 1 % server errors) and ``fraud`` serving ``search``
(a third of the rows), with ten numeric feature columns each; feedback (a 0/1 reward) on a
fifth of ``checkout``'s rows, a day late, as compacted feedback parts. Each engine then runs
in its own process, the two interleaved ``--repeat`` times, and reports the wall time and
its peak RSS (:mod:`bench._rss`; and its RSS before, with pandas and Arrow imported) of
computing ``checkout``'s counts:

- ``reference``: :func:`~vigil.experiments.status.read_frames` (the whole log and the whole
  feedback store as frames) and :func:`~vigil.experiments._counts.counts_from_frames`, what
  ``vigil experiment status`` did before;
- ``streamed``: :func:`~vigil.experiments.log_counts.counts_from_log`, what it does now.

Both must give the same counts (checked). ``--data DIR`` keeps the written rows for the
next run of the same size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

DAY = datetime(2026, 1, 5, tzinfo=UTC)
PART_ROWS = 100_000
PARTS_PER_DAY = 10
POLICY = {"kind": "split", "weights": {"a": 1, "b": 1}}


def _config() -> Any:
    from vigil.experiments.config import parse_endpoint

    return parse_endpoint(
        {
            "name": "checkout",
            "variants": [
                {"name": "a", "model": "models:/churn/1"},
                {"name": "b", "model": "models:/churn/2"},
            ],
            "policy": POLICY,
        }
    )


def _app(home: Path) -> Any:
    from vigil.app import Vigil
    from vigil.settings import load_settings

    return Vigil(load_settings(home=home))


def _write(path: Path, table: Any) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


def write_part(app: Any, k: int) -> None:
    """Part ``k``: 100,000 rows of one model in one tenth of a day, and its feedback."""
    import pyarrow as pa

    rng = np.random.default_rng(k)
    day = DAY + timedelta(days=k // PARTS_PER_DAY)
    start = day + timedelta(hours=2.4 * (k % PARTS_PER_DAY))
    checkout = k % 3 != 2
    model, endpoint = ("churn", "checkout") if checkout else ("fraud", "search")
    n = PART_ROWS
    times = np.sort(rng.uniform(0, 2.4 * 3600, n))
    variant = rng.choice(np.asarray(["a", "b"], dtype=object), n)
    status = np.where(rng.random(n) < 0.01, 500, 200)
    prediction = rng.integers(0, 2, n)
    ids = np.asarray([f"{k:05d}-{i:07d}" for i in range(n)], dtype=object)
    columns: dict[str, Any] = {
        "request_id": pa.array(ids, pa.string()),
        "row": pa.array(np.zeros(n, dtype=np.int64)),
        "time": pa.array(
            [start + timedelta(seconds=float(t)) for t in times], pa.timestamp("us", tz="UTC")
        ),
        "route": pa.array(["endpoint"] * n, pa.string()),
        "model": pa.array([model] * n, pa.string()),
        "version": pa.array(np.where(variant == "a", 1, 2).astype(np.int64)),
        "variant": pa.array(variant, pa.string()),
        "caller": pa.nulls(n, pa.string()),
        "endpoint": pa.array([endpoint] * n, pa.string()),
        "latency_ms": pa.array(rng.uniform(1, 5, n)),
        "status": pa.array(status.astype(np.int64)),
        "error_code": pa.array(
            np.where(status >= 500, "prediction_failed", None).astype(object), pa.string()
        ),
        "prediction": pa.array(np.where(status >= 500, -1, prediction).astype(np.int64)),
    }
    for j in range(10):
        columns[f"feature.x{j}"] = pa.array(rng.normal(0, 1, n))
    columns["segment"] = pa.array([f"bench{k:05d}"] * n, pa.string())
    table = pa.table(columns)
    key = f"capture/model={model}/date={day.date().isoformat()}/part-bench{k:05d}.parquet"
    _write(Path(app.artifacts.resolve_key(key)), table)
    if not checkout:
        return
    given = (rng.random(n) < 0.2) & (status < 400)
    rate = np.where(variant == "a", 0.10, 0.11)
    m = int(given.sum())
    arrived = [start + timedelta(days=1, seconds=float(t)) for t in times[given]]
    feedback = pa.table(
        {
            "request_id": pa.array(ids[given], pa.string()),
            "row": pa.array(np.zeros(m, dtype=np.int64)),
            "reward": pa.array((rng.random(n) < rate)[given].astype(float)),
            "time": pa.array(arrived, pa.timestamp("us", tz="UTC")),
            "caller": pa.nulls(m, pa.string()),
            "prediction_time": pa.array(
                [start + timedelta(seconds=float(t)) for t in times[given]],
                pa.timestamp("us", tz="UTC"),
            ),
            "prediction_model": pa.array([model] * m, pa.string()),
            "label": pa.nulls(m),
            "segment": pa.array([f"fb{k:05d}"] * m, pa.string()),
        }
    )
    fday = (day + timedelta(days=1)).date().isoformat()
    _write(
        Path(app.artifacts.resolve_key(f"feedback/date={fday}/part-fb{k:05d}.parquet")), feedback
    )


def setup(home: Path, rows: int) -> None:
    app = _app(home)
    for k in range(rows // PART_ROWS):
        write_part(app, k)
    app.database.dispose()


def child(home: Path, engine: str) -> dict[str, Any]:
    """One engine's run, in this process."""
    import pandas  # noqa: F401  # both engines need them: their import is not the read's
    import pyarrow.dataset  # noqa: F401

    from bench._rss import peak_rss, reset_peak, rss_now

    app = _app(home)
    config = _config()
    before = rss_now()
    exact = reset_peak()
    started = time.perf_counter()
    if engine == "reference":
        from vigil.experiments.status import counts_from_frames, read_frames

        counts = counts_from_frames(config, *read_frames(app, None))
    else:
        from vigil.experiments.log_counts import counts_from_log

        counts = counts_from_log(
            config, store=app.artifacts, log_dir=app.capture_dir, feedback=app.feedback_store
        )
    seconds = time.perf_counter() - started
    peak = peak_rss()
    app.database.dispose()
    return {
        "engine": engine,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak / 2**20),
        "rss_before_mb": round(before / 2**20),
        "peak_is_own": exact,
        "requests": counts.requests,
        "errors": counts.errors,
        "feedback": counts.feedback,
        "stats": {v: [s.n, s.successes] for v, s in counts.stats.items()},  # type: ignore[union-attr]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--engines", default="reference,streamed")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.home, args.child)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        home = args.data or Path(tmp) / "home"
        marker = home / f".bench-rows-{args.rows}"
        if not marker.exists():
            started = time.perf_counter()
            setup(home, args.rows)
            marker.touch()
            print(f"wrote {args.rows:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
        results: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.repeat):
            for engine in args.engines.split(","):
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.experiment_status",
                        "--child",
                        engine,
                        "--home",
                        str(home),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                got = json.loads(out.stdout.strip().splitlines()[-1])
                results.setdefault(engine, []).append(got)
                shown = ("engine", "seconds", "peak_rss_mb", "rss_before_mb")
                print(json.dumps({k: got[k] for k in shown}))
        answers = {
            json.dumps({k: r[k] for k in ("requests", "errors", "feedback", "stats")})
            for rs in results.values()
            for r in rs
        }
        assert len(answers) == 1, f"the engines disagree: {answers}"
        print("counts:", answers.pop())
        best = {e: min(r["seconds"] for r in rs) for e, rs in results.items()}
        peak = {e: max(r["peak_rss_mb"] for r in rs) for e, rs in results.items()}
        summary: dict[str, Any] = {"rows": args.rows, "best_s": best, "peak_rss_mb": peak}
        if "reference" in best and "streamed" in best:
            summary["time_ratio"] = round(best["streamed"] / best["reference"], 3)
            summary["rss_ratio"] = round(peak["streamed"] / peak["reference"], 3)
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
