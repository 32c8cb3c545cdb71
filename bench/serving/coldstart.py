"""Cold start of ``vigil serve``: seconds from launching the command to ``/readyz`` 200.

Registers one small scikit-learn model in a private temporary home, then starts
``python -m vigil.cli serve`` a few times and reports the median time to ready (goal: under
1.5 s). Run: ``python -m bench.serving.coldstart``.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


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


def time_to_ready(home: Path, timeout: float = 60) -> float:
    """Seconds from ``vigil serve`` being launched to its ``/readyz`` answering 200."""
    import httpx

    from vigil.serving.server import free_port

    port = free_port()
    env = {**os.environ, "VIGIL_HOME": str(home), "VIGIL_WORKER_POLL_INTERVAL": "0"}
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
                        return time.perf_counter() - started
                except httpx.TransportError:
                    pass
                time.sleep(0.01)
        raise RuntimeError("vigil serve did not become ready")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def run(repeats: int = 5) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="vigil-coldstart-"))
    try:
        register_small_model(home)
        times = [time_to_ready(home) for _ in range(repeats)]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


if __name__ == "__main__":
    print(run())
