"""Start-up benchmark: how long ``vigil`` commands take from launch to exit.

Times, interleaved over several rounds in one run (so a busy machine slows every command
alike), each in a fresh process:

* the floor: ``python -c "import sklearn"``, what any command that runs a scikit-learn
  model must pay;
* ``vigil --help`` and ``vigil model list`` (no model: they should start well under a
  second, and import no model stack);
* ``vigil predict`` of a 20-row CSV with a registered skops model (a LogisticRegression
  on four features, a file of a few kB): loading it should cost no more than the floor;
* ``vigil.load()`` of that model from Python (no CLI, no file to read): the load alone;
* the same ``vigil predict`` with skops computing its default trust lists itself (no
  usable cache), as every load did before ``vigil.bundle.flavors._skops_trust``.

vigil's source is byte-compiled first, as a wheel install is. Writes the table into
``docs/benchmarks.md`` (between the ``startup`` markers). Run:
``python -m bench.startup [--rounds N] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- startup-table: begin -->", "<!-- startup-table: end -->"
URI = "models:/startup@production"
HEADING = "## Start-up (issue 13) — `python -m bench.startup`"


def _vigil() -> list[str]:
    """The console script next to this interpreter, as a user runs it."""
    script = Path(sys.executable).parent / "vigil"
    return [str(script)] if script.exists() else [sys.executable, "-m", "vigil.cli"]


def _setup(home: Path) -> Path:
    """Register a small skops model in ``home``; returns a CSV of rows to score."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from vigil.app import Vigil
    from vigil.settings import load_settings

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=["a", "b", "c", "d"])
    y = (frame["a"] + frame["b"] > 0).astype(int)
    model = LogisticRegression().fit(frame, y)
    Vigil(load_settings(home=home)).register(
        model, name="startup", reference=frame.assign(y=y), target="y", alias="production"
    )
    rows = home / "rows.csv"
    frame.head(20).to_csv(rows, index=False)
    return rows


def _time(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``command``.

    CPU time is what the figures rest on: on a shared machine other jobs stretch the wall
    time of every start, but not the work a start does.
    """
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {errors.decode()[-2000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds

    import compileall

    import vigil

    compileall.compile_dir(str(Path(vigil.__file__).parent), quiet=1)
    with tempfile.TemporaryDirectory(prefix="vigil-startup-") as tmp:
        home = Path(tmp) / "home"
        rows = _setup(home)
        out = Path(tmp) / "scores.csv"
        cache = Path(tmp) / "cache"
        env = {**os.environ, "VIGIL_HOME": str(home), "XDG_CACHE_HOME": str(cache)}
        # A cache directory that cannot be created: skops computes its lists every time.
        no_cache = {**env, "XDG_CACHE_HOME": "/proc/vigil-no-cache"}
        vigil_cmd = _vigil()
        predict = [*vigil_cmd, "predict", URI, str(rows), "-o", str(out)]
        commands = {
            "floor": ([sys.executable, "-c", "import sklearn"], env),
            "vigil --help": ([*vigil_cmd, "--help"], env),
            "vigil model list": ([*vigil_cmd, "model", "list"], env),
            "vigil predict (skops model)": (predict, env),
            "python: vigil.load() of the skops model": (
                [sys.executable, "-c", f"import vigil; vigil.load({URI!r})"],
                env,
            ),
            "vigil predict, skops computing its trust lists": (predict, no_cache),
        }
        before = os.getloadavg()[0]
        # The first load in a new environment computes and keeps the lists: timed once.
        first = _time(predict, env)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(rounds):
            for name, (command, environment) in commands.items():
                times[name].append(_time(command, environment))
    text = _table(times, first, rounds, (before, os.getloadavg()[0]))
    print(text)
    if not args.no_write:
        _write(text)
    return 0


def _table(
    times: dict[str, list[tuple[float, float]]],
    first: tuple[float, float],
    rounds: int,
    load: tuple[float, float],
) -> str:
    floor_wall = statistics.median(w for w, _ in times["floor"])
    floor_cpu = statistics.median(c for _, c in times["floor"])
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} by `python -m bench.startup --rounds {rounds}` "
        f"(load average {load[0]:.1f} at the start, {load[1]:.1f} at the end, on 2 cores; each "
        f"command launched {rounds} times, interleaved). CPU is the process's user + system "
        "time, which other jobs on the machine stretch far less than wall time; *× floor* "
        'divides a median by the same median of a bare `python -c "import sklearn"` in the '
        "same run.",
        "",
        "| command | CPU, median (min–max) | × floor (CPU) | wall, median | × floor (wall) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in times.items():
        label = '`python -c "import sklearn"` (floor)' if name == "floor" else name
        cpu = [c for _, c in values]
        wall = statistics.median(w for w, _ in values)
        lines.append(
            f"| {label} | {statistics.median(cpu):.2f} s ({min(cpu):.2f}–{max(cpu):.2f}) | "
            f"{statistics.median(cpu) / floor_cpu:.2f} | {wall:.2f} s | {wall / floor_wall:.2f} |"
        )
    lines += [
        "",
        "The first `vigil predict` in a new environment (empty trust cache: skops computes "
        f"its lists, vigil keeps them) took {first[1]:.2f} s of CPU ({first[0]:.2f} s wall).",
    ]
    return "\n".join(lines)


def _write(text: str) -> None:
    doc = DOC.read_text()
    if BEGIN not in doc:
        doc = doc.rstrip("\n") + f"\n\n{HEADING}\n\n{BEGIN}\n{END}\n"
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    raise SystemExit(main())
