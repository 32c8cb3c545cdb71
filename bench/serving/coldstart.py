"""Cold start of ``vigil serve``: seconds from launching the command to ``/readyz`` 200.

Registers one small scikit-learn model (skops) in a private temporary home, then repeats,
interleaved so that the machine's other jobs colour every figure alike:

- **serve**: launch ``python -m vigil.cli serve`` (one worker, in-process) and time it
  until ``/readyz`` answers 200; the server's CPU seconds at that moment are read too
  (they move less than wall time when other jobs share the cores);
- **floor**: a bare ``python -c "import skops.io"``. Loading a skops model needs skops,
  whose import builds its default trust list from every scikit-learn estimator, so it
  imports scikit-learn, SciPy and pandas: no server start can be faster than this;
- **steps**: the server's start-up steps run in one fresh process, each timed (the
  breakdown, in wall and CPU seconds; the order is the server's, so each step pays only
  for what the earlier ones did not import).

Prints the medians as JSON. Goal: serve under 1.5 s. Run:
``python -m bench.serving.coldstart [--repeats N]`` (``--quick``: 2 repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_STEPS = """
import json, sys, time
marks = [("start", time.perf_counter(), time.process_time())]
def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))
import vigil.cli
mark("import vigil.cli")
import uvicorn
from vigil.serving.app import create_app
from vigil.serving.registry_provider import from_environment
mark("import the serving app and uvicorn")
provider = from_environment()
app = create_app(provider)
target = provider._discover()[0]
version = provider.vigil.registry.alias_table()[(target.name, target.alias)]
mark("open the registry (settings, schema check, aliases)")
import skops.io
mark("import the model stack (skops.io: scikit-learn, SciPy, pandas)")
served = provider._load(target.name, version)
mark("load the bundle (the rest)")
served.warm()
mark("warm (one prediction)")
print(json.dumps({b[0]: [b[1] - a[1], b[2] - a[2]] for a, b in zip(marks, marks[1:])}))
"""


def register_small_model(home: Path) -> None:
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from vigil.app import Vigil
    from vigil.settings import load_settings

    X, y = make_classification(n_samples=200, n_features=4, random_state=0)
    frame = pd.DataFrame(X, columns=list("abcd"))
    model = LogisticRegression().fit(frame, y)
    Vigil(load_settings(home=home)).register(
        model, name="churn", reference=frame.assign(y=y), target="y", alias="production"
    )


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_to_ready(home: Path, timeout: float = 120) -> tuple[float, float | None]:
    """Seconds from ``vigil serve`` being launched to its ``/readyz`` answering 200, and
    the server's CPU seconds by then."""
    import httpx

    from vigil.serving.server import free_port

    port = free_port()
    env = {**os.environ, "VIGIL_HOME": str(home)}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigil.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(timeout=2) as http:
            while time.perf_counter() - started < timeout:
                try:
                    if http.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        return time.perf_counter() - started, _cpu_seconds(proc.pid)
                except httpx.TransportError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"vigil serve exited with {proc.returncode}")
                time.sleep(0.01)
        raise RuntimeError("vigil serve did not become ready")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def _timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall and CPU seconds of a child process run to its end, and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, out


def run(repeats: int = 5) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="vigil-coldstart-"))
    serve: list[float] = []
    cpu: list[float] = []
    floor: list[float] = []
    floor_cpu: list[float] = []
    steps: dict[str, list[float]] = {}
    steps_cpu: dict[str, list[float]] = {}
    env = {**os.environ, "VIGIL_HOME": str(home)}
    try:
        register_small_model(home)
        for _ in range(repeats):
            wall, seconds = time_to_ready(home)
            serve.append(wall)
            if seconds is not None:
                cpu.append(seconds)
            wall, seconds, _ = _timed([sys.executable, "-c", "import skops.io"])
            floor.append(wall)
            floor_cpu.append(seconds)
            _, _, out = _timed([sys.executable, "-c", _STEPS], env)
            for name, (wall, seconds) in json.loads(out).items():
                steps.setdefault(name, []).append(wall)
                steps_cpu.setdefault(name, []).append(seconds)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    median = statistics.median
    return {
        "repeats": repeats,
        "serve_to_ready_s": {"median": median(serve), "min": min(serve), "max": max(serve)},
        "serve_cpu_s_median": median(cpu) if cpu else None,
        "floor_import_skops_io_s_median": median(floor),
        "floor_cpu_s_median": median(floor_cpu),
        "ratio_serve_to_floor": median(serve) / median(floor),
        "steps_s_median": {name: median(values) for name, values in steps.items()},
        "steps_cpu_s_median": {name: median(values) for name, values in steps_cpu.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serving.coldstart")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repeats")
    args = parser.parse_args(argv)
    result = run(2 if args.quick else args.repeats)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
