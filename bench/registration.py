"""Registration benchmark: building a bundle (profile included) from a large Parquet reference.

Goal: registering a model with a 1M-row x 25-column Parquet reference takes at most twice
what a bare ``pyarrow.parquet.read_table`` plus ``numpy.quantile`` of every numeric column
(101 points) and ``value_counts`` of every categorical column take in the same run.

Each measurement runs in a fresh child process (imports done before the clock starts),
which reports its wall time and its own peak RSS (``ru_maxrss``); the best of ``repeat``
runs is kept. Run it with ``python -m bench.registration``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
N_CATEGORICAL = 2
N_INT = 3
TRAIN_ROWS = 20_000


def _columns(cols: int) -> tuple[list[str], list[str], list[str]]:
    n_float = cols - N_CATEGORICAL - N_INT
    return (
        [f"f{i}" for i in range(n_float)],
        [f"i{i}" for i in range(N_INT)],
        [f"c{i}" for i in range(N_CATEGORICAL)],
    )


def write_data(path: Path, rows: int, cols: int, seed: int = 0) -> None:
    """A seeded table: floats of several scales, small counts and two text categories."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    floats, ints, cats = _columns(cols)
    data: dict[str, Any] = {}
    for i, name in enumerate(floats):
        data[name] = rng.normal(loc=i, scale=1 + i % 5, size=rows)
    for name in ints:
        data[name] = rng.poisson(3, size=rows).astype(np.int64)
    levels = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])
    for name in cats:
        data[name] = pa.array(levels[rng.integers(0, len(levels), size=rows)])
    pq.write_table(pa.table(data), path)


def train_model(path: Path, cols: int, model_path: Path) -> None:
    """A small pipeline (one-hot + logistic regression) fitted on the first rows."""
    import numpy as np
    import pyarrow.parquet as pq
    import skops.io as sio
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    _, _, cats = _columns(cols)
    frame = pq.read_table(path).slice(0, TRAIN_ROWS).to_pandas()
    y = (
        frame["f0"] + 0.3 * frame["f1"] - 0.2 * frame["i0"] + (frame["c0"] == "beta") > 0
    ).to_numpy(dtype=np.int64)
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), cats), remainder="passthrough"
        ),
        LogisticRegression(max_iter=500),
    ).fit(frame, y)
    sio.dump(model, model_path)


def _baseline(path: Path) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    probs = np.linspace(0, 1, 101)
    for name in table.column_names:
        column = table.column(name)
        if column.type.equals("string") or str(column.type) == "string":
            column.value_counts()
        else:
            np.quantile(column.to_numpy(), probs)


def _register(path: Path, model_path: Path, home: Path) -> None:
    """The whole registration a user runs: bundle + profile + artifact store + SQL rows."""
    import skops.io as sio

    from vigil.app import Vigil
    from vigil.settings import load_settings

    model = sio.load(model_path, trusted=sio.get_untrusted_types(file=model_path))
    v = Vigil(load_settings(home=home))
    v.registry  # noqa: B018 - create the database before the clock starts
    start = time.perf_counter()
    v.register(model, name="bench", reference=path)
    _report(time.perf_counter() - start)


def _report(seconds: float) -> None:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_kb / 1024}))


def _child(kind: str, workdir: Path) -> None:
    path, model_path = workdir / "reference.parquet", workdir / "model.skops"
    if kind == "baseline":
        import numpy  # noqa: F401 - warm imports before the clock starts
        import pyarrow.parquet  # noqa: F401

        start = time.perf_counter()
        _baseline(path)
        _report(time.perf_counter() - start)
    else:
        import sklearn.linear_model  # noqa: F401

        import vigil.bundle.bundle  # noqa: F401

        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            _register(path, model_path, Path(tmp) / "home")


def _measure(kind: str, workdir: Path, repeat: int) -> dict[str, float]:
    runs = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    for _ in range(repeat):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.registration",
                "--child",
                kind,
                "--workdir",
                str(workdir),
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "seconds": min(r["seconds"] for r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
    }


def run(
    rows: int = 1_000_000, cols: int = 25, workdir: str | Path | None = None, repeat: int = 3
) -> dict[str, Any]:
    """Write the data once (if absent), train the model, time both tasks; return the figures."""
    base = Path(workdir) if workdir is not None else Path(tempfile.gettempdir()) / "vigil-bench"
    work = base / f"registration-{rows}x{cols}"
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "reference.parquet").exists():
        write_data(work / "reference.parquet", rows, cols)
    if not (work / "model.skops").exists():
        train_model(work / "reference.parquet", cols, work / "model.skops")
    baseline = _measure("baseline", work, repeat)
    register = _measure("register", work, repeat)
    return {
        "rows": rows,
        "cols": cols,
        "baseline": baseline,
        "register": register,
        "ratio": register["seconds"] / baseline["seconds"],
        "goal_ratio": 2.0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=25)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["baseline", "register"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.workdir)
        return
    result = run(args.rows, args.cols, args.workdir, args.repeat)
    print(f"registration benchmark: {result['rows']:,} rows x {result['cols']} columns")
    print(f"{'task':<34}{'seconds':>10}{'peak RSS MB':>14}")
    for label, key in (
        ("read_table + quantiles (baseline)", "baseline"),
        ("vigil register (profile included)", "register"),
    ):
        print(f"{label:<34}{result[key]['seconds']:>10.3f}{result[key]['peak_rss_mb']:>14.0f}")
    verdict = "ok" if result["ratio"] <= result["goal_ratio"] else "over goal"
    print(f"ratio {result['ratio']:.2f} (goal <= {result['goal_ratio']:.1f}): {verdict}")


if __name__ == "__main__":
    main()
