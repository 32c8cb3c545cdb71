"""Cold start of ``vigil serve``: seconds from launching the command to ``/readyz`` 200.

One small model (a scikit-learn LogisticRegression on 20 features) is registered twice, in
two private temporary homes: as **ONNX** (converted with skl2onnx) and as a **skops** file.
Then, interleaved so that the machine's other jobs colour every figure alike, each repeat
times:

- **serve**: launch ``python -m vigil.cli serve`` (one worker, in-process) on each home and
  time it until ``/readyz`` answers 200; the server's CPU seconds at that moment are read
  too (they move less than wall time when other jobs share the cores);
- **floor**: a bare ``python -c "import M"`` of what any server loading that model pays:
  ``onnxruntime`` for the ONNX file, and the scikit-learn module defining the estimator
  (``sklearn.linear_model``, which imports scikit-learn, SciPy and pandas) for the skops
  file, whatever reads it; ``import sklearn`` alone is timed too (``floor_sklearn``);
  vigil's share is what the serve time has above the floor;
- **steps**: the server's start-up steps run in one fresh process, each timed (the
  breakdown, in wall and CPU seconds; the order is the server's, so each step pays only
  for what the earlier ones did not import).

With ``VIGIL_BENCH_BEFORE_SRC`` set to another checkout's ``src``, every repeat also
launches ``vigil serve`` from it on the same homes (``serve_before``, interleaved), so a
change is measured against its baseline in the same run.

vigil's own source is byte-compiled first (``compileall``), as a wheel install is: an
editable install under ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every vigil
module from source at every start.

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
from vigil.app import Vigil
import vigil.serving.app
mark("import the serving app and uvicorn")
root = Vigil()
provider = root.serving_provider()
app = root.serving_app(provider)
target = provider._discover()[0]
version = provider.vigil.registry.alias_table()[(target.name, target.alias)]
mark("open the registry (settings, schema check, aliases)")
import importlib
importlib.import_module(sys.argv[1])
mark("import the model runtime")
if sys.argv[2:]:
    exec(sys.argv[2])
    mark("skops.io, trust lists from vigil's cache")
served = provider._load(target.name, version)
mark("load the bundle (the rest)")
served.warm()
mark("warm (one prediction)")
print(json.dumps({b[0]: [b[1] - a[1], b[2] - a[2]] for a, b in zip(marks, marks[1:])}))
"""

KINDS = {"onnx": "onnxruntime", "sklearn": "sklearn.linear_model"}
"""Each registered flavor, and the runtime module whose import is its floor."""
EXTRA_STEP = {
    "sklearn": "from vigil.bundle.flavors._skops_trust import skops_io; skops_io()",
}
"""The flavor's reader on top of its floor, as the server imports it (a step of its own)."""


def register_small_models(homes: dict[str, Path]) -> None:
    """The same LogisticRegression, registered as ONNX and as skops, one home each."""
    import numpy as np
    import pandas as pd
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from vigil.app import Vigil
    from vigil.settings import load_settings

    X, y = make_classification(n_samples=500, n_features=20, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])  # ONNX: f0..f19
    model = LogisticRegression().fit(X, y)
    reference = frame.assign(y=y)
    onnx_file = homes["onnx"] / "model.onnx"
    homes["onnx"].mkdir(parents=True, exist_ok=True)
    proto = to_onnx(model, X[:1].astype(np.float32), options={id(model): {"zipmap": False}})
    onnx_file.write_bytes(proto.SerializeToString())
    sources: dict[str, Any] = {"onnx": str(onnx_file), "sklearn": model}
    for kind, home in homes.items():
        Vigil(load_settings(home=home)).register(
            sources[kind], name="churn", reference=reference, target="y", alias="production"
        )


def byte_compile_vigil(before: str | None = None) -> None:
    """Write vigil's bytecode, as installing a wheel does (see the module docstring), and
    the baseline checkout's."""
    import compileall

    import vigil

    compileall.compile_dir(str(Path(vigil.__file__).parent), quiet=1)
    if before:
        compileall.compile_dir(str(Path(before) / "vigil"), quiet=1)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_to_ready(
    home: Path, timeout: float = 120, src: str | None = None
) -> tuple[float, float | None]:
    """Seconds from ``vigil serve`` being launched to its ``/readyz`` answering 200, and
    the server's CPU seconds by then; ``src``: serve from that checkout's source."""
    import httpx

    from vigil.serving.server import free_port

    port = free_port()
    env = {**os.environ, "VIGIL_HOME": str(home)}
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
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
                time.sleep(0.005)
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
    root = Path(tempfile.mkdtemp(prefix="vigil-coldstart-"))
    homes = {kind: root / kind for kind in KINDS}
    seen: dict[str, dict[str, list[float]]] = {
        kind: {"serve": [], "cpu": [], "floor": [], "floor_cpu": [], "before": [], "before_cpu": []}
        for kind in KINDS
    }
    before = os.environ.get("VIGIL_BENCH_BEFORE_SRC")
    sklearn_floor: dict[str, list[float]] = {"wall": [], "cpu": []}
    steps: dict[str, dict[str, list[float]]] = {kind: {} for kind in KINDS}
    steps_cpu: dict[str, dict[str, list[float]]] = {kind: {} for kind in KINDS}
    load_start = os.getloadavg()
    try:
        byte_compile_vigil(before)
        register_small_models(homes)
        for _ in range(repeats):
            for kind, runtime in KINDS.items():
                figures = seen[kind]
                wall, seconds = time_to_ready(homes[kind])
                figures["serve"].append(wall)
                if seconds is not None:
                    figures["cpu"].append(seconds)
                if before:
                    wall, seconds = time_to_ready(homes[kind], src=before)
                    figures["before"].append(wall)
                    if seconds is not None:
                        figures["before_cpu"].append(seconds)
                wall, seconds, _ = _timed([sys.executable, "-c", f"import {runtime}"])
                figures["floor"].append(wall)
                figures["floor_cpu"].append(seconds)
                if kind == "sklearn":
                    wall, seconds, _ = _timed([sys.executable, "-c", "import sklearn"])
                    sklearn_floor["wall"].append(wall)
                    sklearn_floor["cpu"].append(seconds)
                env = {**os.environ, "VIGIL_HOME": str(homes[kind])}
                extra = [EXTRA_STEP[kind]] if kind in EXTRA_STEP else []
                _, _, out = _timed([sys.executable, "-c", _STEPS, runtime, *extra], env)
                for name, (wall, cpu) in json.loads(out).items():
                    steps[kind].setdefault(name, []).append(wall)
                    steps_cpu[kind].setdefault(name, []).append(cpu)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    median = statistics.median
    result: dict[str, Any] = {
        "repeats": repeats,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "floor_import_sklearn": {
            "wall_s_median": median(sklearn_floor["wall"]),
            "cpu_s_median": median(sklearn_floor["cpu"]),
        },
    }
    for kind, runtime in KINDS.items():
        figures = seen[kind]
        serve, floor = median(figures["serve"]), median(figures["floor"])
        result[kind] = {
            "serve_to_ready_s": {
                "median": serve,
                "min": min(figures["serve"]),
                "max": max(figures["serve"]),
            },
            "serve_cpu_s_median": median(figures["cpu"]) if figures["cpu"] else None,
            f"floor_import_{runtime.replace('.', '_')}_s_median": floor,
            "floor_cpu_s_median": median(figures["floor_cpu"]),
            "vigil_above_floor_s": serve - floor,
            "ratio_serve_to_floor": serve / floor,
            "goal_under_1_5_s": serve < 1.5,
            **_before(figures, serve),
            "steps_s_median": {name: median(v) for name, v in steps[kind].items()},
            "steps_cpu_s_median": {name: median(v) for name, v in steps_cpu[kind].items()},
        }
    return result


def _before(figures: dict[str, list[float]], serve: float) -> dict[str, Any]:
    """The baseline checkout's figures (``VIGIL_BENCH_BEFORE_SRC``), if it ran."""
    if not figures["before"]:
        return {}
    median = statistics.median
    before = median(figures["before"])
    cpu, cpu_before = figures["cpu"], figures["before_cpu"]
    return {
        "serve_before_s": {
            "median": before,
            "min": min(figures["before"]),
            "max": max(figures["before"]),
        },
        "serve_before_cpu_s_median": median(cpu_before) if cpu_before else None,
        "ratio_serve_to_before": serve / before,
        "ratio_cpu_to_before": median(cpu) / median(cpu_before) if cpu and cpu_before else None,
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
