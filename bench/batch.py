"""Batch scoring benchmark: ``vigil predict`` vs pandas read + ``model.predict`` + write.

Run ``python -m bench.batch`` (``--quick`` for 100k rows, one repeat). A Parquet file of
``--rows`` rows (an id and 20 float features) is scored by a LogisticRegression on the 20
features, registered once in a private VIGIL_HOME under ``bench/out/``. Two contenders,
each in its own process, in the same run:

* **vigil**: the real ``vigil predict MODEL_URI rows.parquet -o scores.parquet`` command;
  its rate is the rows over the job time it reports (reading, checking every row against
  the signature, predicting, writing), and its wall time from start to exit is shown too.
* **baseline**: ``pd.read_parquet`` → ``estimator.predict`` on the 20 columns →
  ``DataFrame.to_parquet`` of the input plus a prediction column, timed after the same
  model is loaded.

Peak RSS is each process's high-water mark (``wait4``), imports included. Figures land in
``bench/results/batch.json``. Goal: vigil's rows/s at least the baseline's (ratio ≥ 1)
with a peak RSS that does not grow with the file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "batch"
RESULTS = REPO / "bench" / "results" / "batch.json"
FEATURES = [f"f{i:02d}" for i in range(20)]
MODEL = "bench-lr"


def write_data(rows: int) -> Path:
    """The seeded input file (written once per size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = OUT / f"rows-{rows}.parquet"
    if path.is_file():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {"id": np.arange(rows)}
    for j, name in enumerate(FEATURES):
        columns[name] = rng.normal(0.0, 1.0 + j / 10, rows)
    pq.write_table(pa.table(columns), path)
    return path


def register_model(home: Path) -> str:
    """Register (once) the LogisticRegression; its pinned URI."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from vigil.app import Vigil
    from vigil.settings import load_settings

    app = Vigil(load_settings(home=home))
    if not any(m.name == MODEL for m in app.registry.list_models()):
        rng = np.random.default_rng(1)
        frame = pd.DataFrame(rng.normal(size=(20_000, len(FEATURES))), columns=FEATURES)
        y = (frame.to_numpy() @ rng.normal(size=len(FEATURES)) > 0).astype(int)
        app.register(LogisticRegression(max_iter=500).fit(frame, y), name=MODEL)
    return f"models:/{MODEL}/1"


def baseline(home: Path, uri: str, source: Path, output: Path) -> dict[str, Any]:
    """The child: pandas read + predict + write, timed after the model is loaded."""
    import pandas as pd

    from vigil.app import Vigil
    from vigil.settings import load_settings

    estimator = Vigil(load_settings(home=home)).load(uri).model.estimator  # type: ignore[attr-defined]
    start = time.perf_counter()
    frame = pd.read_parquet(source)
    frame["prediction"] = estimator.predict(frame[FEATURES])
    frame.to_parquet(output, index=False)
    return {"seconds": time.perf_counter() - start, "rows": len(frame)}


def _run(cmd: list[str], env: dict[str, str]) -> tuple[str, float, int]:
    """Run ``cmd``; its stdout, wall seconds and peak RSS in bytes."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed: {err.strip()[-500:]}")
    return out, wall, usage.ru_maxrss * 1024


def measure(rows: int, repeat: int) -> dict[str, Any]:
    home = OUT / "home"
    source = write_data(rows)
    uri = register_model(home)
    env = {**os.environ, "VIGIL_HOME": str(home)}
    vigil_runs, base_runs = [], []
    for _ in range(repeat):
        out, wall, rss = _run(
            [sys.executable, "-m", "vigil.cli", "predict", uri, str(source),
             "-o", str(OUT / "scores-vigil.parquet"), "--json", "--no-progress"],
            env,
        )  # fmt: skip
        summary = json.loads(out)
        vigil_runs.append({"seconds": summary["seconds"], "wall": wall, "peak_rss": rss})
        out, wall, rss = _run(
            [sys.executable, "-m", "bench.batch", "--child", "--rows", str(rows)], env
        )
        child = json.loads(out.strip().splitlines()[-1])
        base_runs.append({"seconds": child["seconds"], "wall": wall, "peak_rss": rss})
    best_vigil = min(vigil_runs, key=lambda r: r["seconds"])
    best_base = min(base_runs, key=lambda r: r["seconds"])
    return {
        "rows": rows,
        "features": len(FEATURES),
        "file_bytes": source.stat().st_size,
        "repeat": repeat,
        "vigil": {**best_vigil, "rows_per_second": rows / best_vigil["seconds"]},
        "baseline": {**best_base, "rows_per_second": rows / best_base["seconds"]},
        "ratio": best_base["seconds"] / best_vigil["seconds"],
        "runs": {"vigil": vigil_runs, "baseline": base_runs},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100k rows, one repeat")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeat = 100_000, 1
    if args.child:
        home = Path(os.environ["VIGIL_HOME"])
        result = baseline(
            home, f"models:/{MODEL}/1", write_data(args.rows), OUT / "scores-baseline.parquet"
        )
        print(json.dumps(result))
        return 0
    result = measure(args.rows, args.repeat)
    mb = 1 << 20
    print(
        f"{result['rows']:,} rows × {result['features']} float features, "
        f"{result['file_bytes'] / mb:.0f} MB of Parquet; best of {result['repeat']}"
    )
    for name in ("vigil", "baseline"):
        r = result[name]
        print(
            f"{name:>9}: {r['rows_per_second']:>11,.0f} rows/s ({r['seconds']:.2f} s job, "
            f"{r['wall']:.2f} s process); peak RSS {r['peak_rss'] / mb:,.0f} MB"
        )
    print(f"    ratio: {result['ratio']:.2f}× the baseline's rows/s (goal ≥ 1)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
