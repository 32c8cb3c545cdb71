"""Profiling 10,000,000 rows in bounded memory: ``python -m bench.profile_10m``.

Writes a seeded 25-column Parquet file (20 float, 3 int, 2 text columns, the shape of
``bench.registration``) row group by row group, never holding the table in memory, then
profiles it with :func:`vigil.bundle.profile.build_profile` exactly as registration does
(streamed in chunks; quantile bins from a bounded seeded sample and a second, counting
pass when the file has more rows than ``quantile_sample``), with a cheap linear "model"
so the prediction profile is built too. It does the same for a 1,000,000-row file and
reports, for both, the time, the peak RSS of the profiling process (a fresh child;
imports done and the peak mark reset before the clock starts, see :mod:`bench._rss`)
and that peak against the file size.

Goal: the peak RSS does not grow with the rows (10M ≈ 1M), so it is a small fraction of
a 10M-row file.

``--rows`` sets the large size (``--quick``: 2,000,000 and 200,000 rows). Data files are
kept under ``bench/out/profile-data/`` and reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench._rss import peak_rss, reset_peak, rss_now

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "bench" / "out" / "profile-data"
N_FLOAT, N_INT, N_TEXT = 20, 3, 2
ROW_GROUP = 500_000
LEVELS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")


def write_data(rows: int, directory: Path = DATA_DIR, seed: int = 0) -> Path:
    """A seeded ``rows`` × 25 Parquet file, written one row group at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = directory / f"profile-{rows}.parquet"
    if path.is_file() and pq.ParquetFile(path).metadata.num_rows == rows:
        return path
    directory.mkdir(parents=True, exist_ok=True)
    levels = pa.array(LEVELS)
    tmp = path.with_suffix(".tmp")
    writer: pq.ParquetWriter | None = None
    try:
        for start in range(0, rows, ROW_GROUP):
            n = min(ROW_GROUP, rows - start)
            # One generator per row group: the data does not depend on ROW_GROUP's
            # relation to memory, and any group can be regenerated alone.
            rng = np.random.default_rng([seed, start])
            data: dict[str, Any] = {}
            for i in range(N_FLOAT):
                data[f"f{i}"] = rng.normal(loc=i, scale=1 + i % 5, size=n)
            for i in range(N_INT):
                data[f"i{i}"] = rng.poisson(3, size=n).astype(np.int64)
            for i in range(N_TEXT):
                codes = pa.array(rng.integers(0, len(LEVELS), size=n).astype(np.int8))
                data[f"c{i}"] = pa.DictionaryArray.from_arrays(codes, levels)
            batch = pa.table(data)
            if writer is None:
                writer = pq.ParquetWriter(tmp, batch.schema)
            writer.write_table(batch, row_group_size=ROW_GROUP)
    finally:
        if writer is not None:
            writer.close()
    tmp.rename(path)
    return path


def _predict(frame: Any) -> Any:
    """A stand-in regression model: a fixed linear score of three columns."""
    return 0.3 * frame["f0"].to_numpy() - 0.2 * frame["f1"].to_numpy() + frame["i0"].to_numpy()


def child(path: Path) -> dict[str, Any]:
    """Profile ``path`` in this (fresh) process; time and peak RSS of that alone."""
    import pyarrow.parquet as pq

    from vigil.bundle.infer import reference_inputs
    from vigil.bundle.profile import build_profile
    from vigil.bundle.signature import OutputSpec, Signature

    schema = pq.read_schema(path)
    signature = Signature(inputs=reference_inputs(schema), outputs=OutputSpec(task="regression"))
    before = rss_now()
    reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    profile = build_profile(path, signature, predict=_predict)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = peak_rss()
    f0 = profile.features["f0"]
    return {
        "rows": profile.n_rows,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss": peak,
        "rss_before": before,
        "check": {
            "f0_count": f0.count,
            "f0_bins_sum": sum(f0.bin_counts),
            "f0_mean": f0.mean,
            "c0_counts": sum(profile.features["c0"].frequencies.values()),
        },
    }


def spawn(path: Path, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.profile_10m", "--child", str(path)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO
    )
    if proc.returncode != 0:
        return {"error": " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small-rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="2,000,000 and 200,000 rows")
    parser.add_argument("--child", type=Path)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--json", type=Path, help="Also write the results to this file.")
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return 0
    sizes = (200_000, 2_000_000) if args.quick else (args.small_rows, args.rows)
    mb = 1024 * 1024
    results: dict[int, dict[str, Any]] = {}
    for rows in sizes:
        started = time.perf_counter()
        path = write_data(rows)
        print(f"{rows:,} rows: {path.stat().st_size / mb:,.0f} MB of Parquet "
              f"(ready in {time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
        res = spawn(path, args.timeout)
        res["file_bytes"] = path.stat().st_size
        results[rows] = res
        if "error" in res:
            print(f"  failed: {res['error']}")
            continue
        print(
            f"  build_profile: {res['seconds']:.1f} s wall, {res['cpu_seconds']:.1f} s CPU; "
            f"peak RSS {res['peak_rss'] / mb:,.0f} MB "
            f"({res['peak_rss'] / res['file_bytes']:.2f}× the file; "
            f"{res['rss_before'] / mb:,.0f} MB after imports); {res['check']}",
            flush=True,
        )
    small, large = (results[s] for s in sizes)
    if "error" not in small and "error" not in large:
        print(
            f"{sizes[1] // sizes[0]}× the rows: {large['seconds'] / small['seconds']:.1f}× the "
            f"time, {large['peak_rss'] / small['peak_rss']:.2f}× the peak RSS"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2))
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
