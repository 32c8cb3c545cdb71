"""Drift benchmark: vigil's full report vs a plain SciPy loop vs Evidently's DataDriftPreset.

Run ``python -m bench.drift`` (``--rows N`` to scale down). The seeded data (20 numeric +
5 categorical columns, ``rows`` reference and ``rows`` current rows, columns
``num_00``-``num_02`` and ``cat_0`` shifted) is written once to Parquet under
``bench/out/drift-data/`` and every contender reads those same two files. Each runs in
its own child process, timed from the files to its result (imports done before the
clock starts):

* **vigil**: ``run_drift`` (read both files, compare every column, chart summaries) and
  ``render_html``, i.e. everything ``vigil drift --html`` does;
* **scipy**: ``pandas.read_parquet`` + ``ks_2samp`` and a NumPy PSI per numeric column,
  ``chi2_contingency`` per categorical one;
* **evidently**: ``pandas.read_parquet`` + ``Report([DataDriftPreset()]).run(...)``.
  Evidently 0.7 cannot be imported with pandas 3 (our environment), so it runs in its
  own virtualenv ``bench/.venvs/evidently`` (``evidently==0.7.*``, ``pandas<3``,
  ``pyarrow``), created by the first run and reused after; when that cannot be built
  (no network), Evidently is reported as not measured, with the reason.

Time is wall-clock and CPU (``process_time``, all threads of the child): on a shared
machine the CPU figure is the steadier one. Memory is the child's peak RSS during the
timed run (the kernel's high-water mark reset just before it, see :mod:`bench._rss`), set
against the data's in-memory size (float64 numeric columns + categorical codes, both
sides).

Goals: vigil ≥ 10× faster than Evidently, no slower than the SciPy loop, peak memory of
vigil's run ≤ 3× the data size.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench._rss import peak_rss, reset_peak, rss_now

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "bench" / "out" / "drift-data"
EVIDENTLY_VENV = REPO / "bench" / ".venvs" / "evidently"
EVIDENTLY_PACKAGES = ("evidently==0.7.*", "pandas<3", "pyarrow")
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


def write_data(rows: int, directory: Path = DATA_DIR) -> dict[str, Any]:
    """Write (once per size) the two Parquet files; return their paths and sizes."""
    meta_path = directory / f"meta-{rows}.json"
    if meta_path.is_file():
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if all(Path(meta[k]).is_file() for k in ("reference", "current")):
            return meta
    directory.mkdir(parents=True, exist_ok=True)
    ref, cur = build(rows)
    meta = {"rows": rows, "data_bytes": data_bytes(ref, cur)}
    for side, frame in (("reference", ref), ("current", cur)):
        path = directory / f"{side}-{rows}.parquet"
        frame.to_parquet(path, index=False)
        meta[side] = str(path)
    meta["file_bytes"] = sum(Path(meta[k]).stat().st_size for k in ("reference", "current"))
    meta_path.write_text(json.dumps(meta))
    return meta


# -- the contenders (each takes the two Parquet paths) ---------------------------------------


def run_vigil(ref: str, cur: str) -> dict[str, Any]:
    from vigil.report import render_html, run_drift

    run = run_drift(ref, cur)
    page = render_html(run.report, run.reference_summary, run.current_summary, title="bench")
    return {
        "drifted": sorted(run.report.drifted_columns),
        "dataset_drifted": run.report.dataset_drifted,
        "html_kib": len(page) // 1024,
    }


def run_scipy(ref_path: str, cur_path: str) -> dict[str, Any]:
    from scipy import stats

    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
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
    return {"drifted": sorted(drifted)}


def run_evidently(ref_path: str, cur_path: str) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    definition = DataDefinition(
        numerical_columns=[c for c in ref.columns if c.startswith("num_")],
        categorical_columns=[c for c in ref.columns if c.startswith("cat_")],
    )
    result = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    drifted = []
    methods = set()
    for metric in result.dict().get("metrics", []):
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            methods.add(str(config.get("method")))
            if float(metric["value"]) >= float(config["threshold"]):
                drifted.append(config["column"])
    return {"drifted": sorted(drifted), "methods": sorted(methods)}


RUNNERS = {"vigil": run_vigil, "scipy": run_scipy, "evidently": run_evidently}
IMPORTS = {
    "vigil": ("vigil.report", "vigil.drift", "scipy.stats", "pyarrow.parquet"),
    "scipy": ("scipy.stats", "pyarrow.parquet"),
    "evidently": ("evidently", "evidently.presets", "pyarrow.parquet"),
}


def child(name: str, ref: str, cur: str) -> dict[str, Any]:
    """Time one contender on the two files and measure its memory (its own process)."""
    import importlib

    for module in IMPORTS[name]:
        importlib.import_module(module)
    gc.collect()
    before = rss_now()
    reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    outcome = RUNNERS[name](ref, cur)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = peak_rss()
    return {
        "name": name,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rss_before": before,
        "peak_rss": peak,
        "outcome": outcome,
    }


# -- Evidently's own environment -------------------------------------------------------------


def _tail(text: str, lines: int = 2) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "no output"


def evidently_python(venv: Path = EVIDENTLY_VENV) -> tuple[Path | None, str]:
    """The Python of a virtualenv holding Evidently and pandas 2 (built on first use).

    Returns ``(python, note)``, or ``(None, reason)`` when it cannot be built.
    """
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = " ".join(EVIDENTLY_PACKAGES)
    if python.is_file() and stamp.is_file() and stamp.read_text().strip() == wanted:
        return python, f"reusing {venv.relative_to(REPO)}"
    print(f"building {venv.relative_to(REPO)} ({wanted}); this happens once", flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *EVIDENTLY_PACKAGES,
        ],
    ]
    for cmd in steps:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{' '.join(cmd[:3])} failed: {exc}"
        if done.returncode != 0:
            return None, f"{' '.join(cmd[:4])} failed: {_tail(done.stderr or done.stdout)}"
    stamp.write_text(wanted + "\n")
    return python, f"built {venv.relative_to(REPO)}"


def spawn(
    name: str, meta: dict[str, Any], timeout: float, python: Path | None = None
) -> dict[str, Any]:
    cmd = [
        str(python or sys.executable),
        "-m",
        "bench.drift",
        "--child",
        name,
        "--reference",
        meta["reference"],
        "--current",
        meta["current"],
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO
        )
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"name": name, "error": _tail(proc.stderr or proc.stdout, 3)}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", choices=sorted(RUNNERS))
    parser.add_argument("--reference")
    parser.add_argument("--current")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--json", type=Path, help="Also write the results to this file.")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.reference, args.current)))
        return 0
    meta = write_data(args.rows)
    results: dict[str, dict[str, Any]] = {}
    for name in ("vigil", "scipy"):
        results[name] = spawn(name, meta, args.timeout)
    if args.skip_evidently:
        results["evidently"] = {"name": "evidently", "error": "not measured: --skip-evidently"}
    else:
        python, note = evidently_python()
        print(note, flush=True)
        results["evidently"] = (
            spawn("evidently", meta, args.timeout, python)
            if python is not None
            else {"name": "evidently", "error": f"not measured: {note}"}
        )
    mb = 1024 * 1024
    size = meta["data_bytes"]
    print(
        f"rows per side: {args.rows:,}; columns: {N_NUMERIC} numeric + {N_CATEGORICAL} "
        f"categorical; data {size / mb:.0f} MB in memory, {meta['file_bytes'] / mb:.0f} MB "
        "of Parquet"
    )
    base = results["vigil"].get("seconds")
    base_cpu = results["vigil"].get("cpu_seconds")
    for name, res in results.items():
        if "error" in res:
            print(f"{name:>10}: {res['error']}")
            continue
        ratio = res["seconds"] / base if base else float("nan")
        cpu_ratio = res["cpu_seconds"] / base_cpu if base_cpu else float("nan")
        print(
            f"{name:>10}: {res['seconds']:8.2f} s wall ({ratio:6.2f}× vigil), "
            f"{res['cpu_seconds']:8.2f} s CPU ({cpu_ratio:6.2f}× vigil); peak RSS "
            f"{res['peak_rss'] / mb:7.0f} MB = {res['peak_rss'] / size:.2f}× data; added by "
            f"the run {(res['peak_rss'] - res['rss_before']) / mb:7.0f} MB = "
            f"{(res['peak_rss'] - res['rss_before']) / size:.2f}× data"
        )
        print(f"{'':>12}{res['outcome']}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return 0 if "error" not in results["vigil"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
