"""No verdict depends on which BLAS kernel or how many threads ran.

NumPy's OpenBLAS picks a kernel for the CPU at start (``OPENBLAS_CORETYPE`` overrides
it). A PCA doctest once expected "not drifted" and got "drifted" on AMD EPYC machines:
with every component kept, only rounding noise was compared, and its sign followed the
kernel. The drift and statistics doctests and the multivariate tests run here under each
kernel this CPU can execute and under one and two threads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _kernels() -> list[str]:
    flags = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        flags = next((ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("flags")), "")
    kernels = ["Prescott"]  # SSE3: every x86-64 CPU this runs on
    if " avx2" in flags:
        kernels.append("Haswell")
    if " avx512f" in flags:
        kernels.append("SkylakeX")
    return kernels


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kernel", "threads"), [*((k, "1") for k in _kernels()), (_kernels()[-1], "2")]
)
def test_drift_verdicts_do_not_depend_on_the_blas_kernel(kernel: str, threads: str) -> None:
    env = {
        **os.environ,
        "OPENBLAS_CORETYPE": kernel,
        "OPENBLAS_NUM_THREADS": threads,
        "OMP_NUM_THREADS": threads,
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "src/vigil/drift",
            "src/vigil/stats",
            "tests/drift/test_multivariate_target.py",
            "tests/drift/test_degenerate.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
