"""Drift benchmark: vigil's full report vs a plain SciPy loop vs Evidently's DataDriftPreset.

Run ``python -m bench.drift`` (``--rows N`` to scale down). Each contender runs in its own
child process that builds the same seeded data (20 numeric + 5 categorical columns,
``rows`` reference and ``rows`` current rows, columns ``num_00``-``num_02`` and ``cat_0``
shifted), times only the comparison, and reports the process's peak RSS during the
comparison (the kernel's high-water mark, reset after the data is built; ``ru_maxrss``
where that reset is unavailable) beside its RSS right before, so both the total and the
memory the comparison adds can be read against the data size.

Goals: vigil ≥ 10× faster than Evidently, no slower than the SciPy loop, peak memory of
vigil's run ≤ 3× the data size.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

N_NUMERIC = 20
N_CATEGORICAL = 5
SHIFTED = ("num_00", "num_01", "num_02", "cat_0")


def build(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded reference and current frames; categorical columns as pandas categories."""
    rng = np.random.default_rng(seed)
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    for j in range(N_NUMERIC):
        name = f"num_{j:02d}"
        ref[name] = rng.normal(0.0, 1.0 + j / 10, rows)
        shift = {"num_00": 0.5, "num_01": 0.2, "num_02": 0.05}.get(name, 0.0)
        cur[name] = rng.normal(shift * (1.0 + j / 10), 1.0 + j / 10, rows)
    cats = np.array([f"c{k}" for k in range(8)])
    base_p = np.full(8, 1 / 8)
    for j in range(N_CATEGORICAL):
        name = f"cat_{j}"
        p_cur = np.array([0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05]) if name == "cat_0" else base_p
        ref[name] = pd.Categorical.from_codes(rng.choice(8, rows, p=base_p).astype(np.int8), cats)
        cur[name] = pd.Categorical.from_codes(rng.choice(8, rows, p=p_cur).astype(np.int8), cats)
    return pd.DataFrame(ref), pd.DataFrame(cur)


def data_bytes(ref: pd.DataFrame, cur: pd.DataFrame) -> int:
    return int(ref.memory_usage(deep=True).sum() + cur.memory_usage(deep=True).sum())


def _rss_now() -> int:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize()


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux), so the peak is the comparison's own."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _peak_rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_vigil(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, Any]:
    from vigil.drift import compare

    report = compare(ref, cur)
    return {"drifted": report.drifted_columns, "dataset_drifted": report.dataset_drifted}


def run_scipy(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, Any]:
    from scipy import stats

    drifted = []
    for name in ref.columns:
        if isinstance(ref[name].dtype, pd.CategoricalDtype):
            k = len(ref[name].cat.categories)
            table = np.vstack(
                [
                    np.bincount(ref[name].cat.codes.to_numpy(), minlength=k),
                    np.bincount(cur[name].cat.codes.to_numpy(), minlength=k),
                ]
            )
            table = table[:, table.sum(axis=0) > 0]
            if stats.chi2_contingency(table).pvalue < 0.05:
                drifted.append(name)
            continue
        r, c = ref[name].to_numpy(), cur[name].to_numpy()
        p = stats.ks_2samp(r, c).pvalue
        edges = np.quantile(r, np.linspace(0, 1, 11))[1:-1]
        rp = np.bincount(np.searchsorted(edges, r, side="right"), minlength=10) / r.size
        cp = np.bincount(np.searchsorted(edges, c, side="right"), minlength=10) / c.size
        rp, cp = np.where(rp > 0, rp, 1e-4), np.where(cp > 0, cp, 1e-4)
        psi = float(np.sum((cp - rp) * np.log(cp / rp)))
        if p < 0.05 or psi > 0.2:
            drifted.append(name)
    return {"drifted": drifted}


def run_evidently(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[c for c in ref.columns if c.startswith("num_")],
        categorical_columns=[c for c in ref.columns if c.startswith("cat_")],
    )
    result = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    return {"n_metrics": len(result.dict().get("metrics", []))}


RUNNERS = {"vigil": run_vigil, "scipy": run_scipy, "evidently": run_evidently}


def child(name: str, rows: int) -> dict[str, Any]:
    """Build the data, time one contender, and measure memory (runs in its own process)."""
    ref, cur = build(rows)
    size = data_bytes(ref, cur)
    gc.collect()
    before = _rss_now()
    # Building the frames peaks above the comparison; without a reset ru_maxrss shows that.
    reset = _reset_peak()
    start = time.perf_counter()
    outcome = RUNNERS[name](ref, cur)
    seconds = time.perf_counter() - start
    peak = _peak_rss() if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "name": name,
        "seconds": seconds,
        "data_bytes": size,
        "rss_before": before,
        "peak_rss": peak,
        "outcome": outcome,
    }


def spawn(name: str, rows: int, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.drift", "--child", name, "--rows", str(rows)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"name": name, "error": " | ".join(tail)}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", choices=sorted(RUNNERS))
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.rows)))
        return 0
    names = ["vigil", "scipy"]
    try:
        import evidently  # noqa: F401

        if not args.skip_evidently:
            names.append("evidently")
    except ImportError as exc:
        # Evidently 0.7.23 imports pandas internals removed in pandas 3
        # (pandas.core.dtypes.common.infer_dtype_from_object), so it cannot run here.
        print(f"evidently cannot be imported ({exc}); contender (c) is off")
    results = {n: spawn(n, args.rows, args.timeout) for n in names}
    base = results["vigil"].get("seconds")
    print(
        f"rows per side: {args.rows:,}; columns: {N_NUMERIC} numeric + {N_CATEGORICAL} categorical"
    )
    for name, res in results.items():
        if "error" in res:
            print(f"{name:>10}: failed: {res['error']}")
            continue
        ratio = res["seconds"] / base if base else float("nan")
        mb = 1024 * 1024
        print(
            f"{name:>10}: {res['seconds']:8.2f} s  ({ratio:5.2f}× vigil)  peak RSS "
            f"{res['peak_rss'] / mb:7.0f} MB = {res['peak_rss'] / res['data_bytes']:.2f}× data "
            f"({res['data_bytes'] / mb:.0f} MB); added by the run "
            f"{(res['peak_rss'] - res['rss_before']) / mb:7.0f} MB = "
            f"{(res['peak_rss'] - res['rss_before']) / res['data_bytes']:.2f}× data"
        )
        print(f"{'':>12}{res['outcome']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
