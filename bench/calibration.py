"""Calibration table: false alarms of every decision statistic on unchanged data.

Run ``python -m bench.calibration`` (``--seeds N`` trials per cell, 1,000 by default;
``--quick`` for 200; ``--jobs`` worker processes). Each cell of
:mod:`tests.calibration.cells` is run over ``seeds`` null trials and a tenth as many
power trials; the streaming detectors run their defaults over stationary streams of
10,000 values. The table replaces the part of ``docs/statistics.md`` between its
``calibration-table`` markers (``--no-write`` only prints it).

A cell passes when its alarm count is at most the binomial 99.9 % quantile of the nominal
level (tests) or of 1 % (threshold rules); "conservative" marks a test whose count is
below the binomial 0.1 % quantile (ties and discreteness make KS and chi-squared so).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.calibration.cells import (  # noqa: E402
    Cell,
    Result,
    all_cells,
    detector_streams,
    experiment_cells,
    false_alarms_per_10k,
    run,
)

DOC = ROOT / "docs" / "statistics.md"
BEGIN, END = "<!-- calibration-table: begin -->", "<!-- calibration-table: end -->"
SCALE = {"domain classifier": 10, "dataset verdict": 5, "PCA": 2, "looks": 2}
"""Cells whose trials take a second or more run this many times fewer seeds."""


def _cells() -> list[Cell]:
    return [*all_cells(), *experiment_cells()]


def _run_one(args: tuple[int, int, int]) -> tuple[int, str, bool, int, int, int, int]:
    """One cell's counts (a Result holds the cell's closures, which cannot be pickled)."""
    index, seeds, power = args
    cell = _cells()[index]
    scale = next((k for g, k in SCALE.items() if g in cell.group), 1)
    seeds, power = max(seeds // scale, 20), max(power // scale, 20)
    r = run(cell, range(seeds), range(power))
    return index, r.method, r.is_test, r.trials, r.alarms, r.power_trials, r.detections


def _detector(args: tuple[str, int]) -> tuple[str, float, int]:
    name, streams = args
    if name.startswith("KSWIN"):  # a SciPy KS test at every value
        streams = max(streams // 10, 2)
    return name, false_alarms_per_10k(name, streams), streams


def _rate(r: Result) -> str:
    return f"{100 * r.rate:.2f} %"


def table(results: list[Result], detectors: list[tuple[str, float, int]], seeds: int) -> str:
    lines = [
        f"Measured by `python -m bench.calibration --seeds {seeds}` (trials per cell as shown:",
        "cells whose trials take seconds run fewer). *Level* is the test's nominal",
        "false-alarm rate, or the 1 % limit of a threshold rule; *bound* the most alarms",
        "consistent with it (binomial 99.9 % quantile).",
        "",
        "| statistic | data | window | method | false alarms | rate | level | bound | power | verdict |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        c = r.cell
        lines.append(
            f"| {c.group} | {c.data} | {c.window:,} | {r.method} | {r.alarms}/{r.trials} "
            f"| {_rate(r)} | {100 * r.level:g} % | {r.upper} | {r.power:.2f} | {r.verdict} |"
        )
    lines += [
        "",
        "Streaming detectors with their defaults, false alarms per 10,000 stationary values:",
        "",
        "| detector · stream | false alarms per 10,000 | streams of 10,000 |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {rate:.3f} | {streams} |" for name, rate, streams in detectors]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="200 seeds a cell")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    seeds = 200 if args.quick else args.seeds
    streams = 20 if args.quick else args.streams
    started = time.perf_counter()
    cells = _cells()
    jobs = [(i, seeds, max(seeds // 10, 20)) for i in range(len(cells))]
    results: list[Result] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for index, *counts in pool.map(_run_one, jobs):
            r = Result(cells[index], *counts)  # type: ignore[arg-type]
            results.append(r)
            print(
                f"{r.cell.label:75} {r.method:28} {r.alarms:4}/{r.trials:<5} "
                f"power {r.power:.2f}  {r.verdict}",
                flush=True,
            )
        detectors = list(pool.map(_detector, [(n, streams) for n in detector_streams()]))
    for name, rate, n in detectors:
        print(f"{name:40} {rate:.3f} false alarms per 10,000 ({n} streams)", flush=True)
    text = table(results, detectors, seeds)
    failed = [r for r in results if not r.calibrated]
    print(
        f"\n{len(results)} cells in {time.perf_counter() - started:.0f} s; {len(failed)} miscalibrated"
    )
    if not args.no_write:
        doc = DOC.read_text()
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
        print(f"table written to {DOC.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
