"""NannyML in its own virtualenv, for comparing vigil's CBPE with its CBPE.

NannyML pins its own stack (FLAML with xgboost and NCCL, an older plotly...), which must
not enter vigil's environment and would take minutes to install. So ``.venvs/nannyml`` is
a virtualenv that sees vigil's packages (NumPy, pandas, scikit-learn, SciPy, statsmodels,
matplotlib, ...) through a ``.pth`` file, read-only, and gets only NannyML and the small
packages it imports that vigil lacks, installed without their dependency pins
(``--no-deps``): about ten seconds. ``make nannyml-venv`` builds it, as ``make test`` does;
the fixture builds it on first use otherwise, so the comparison never skips.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venvs" / "nannyml"
PACKAGES = (
    "nannyml==0.13.1",
    "APScheduler==3.11.3",
    "backoff==2.2.1",
    "category_encoders==2.11.2",
    "FLAML==2.8.0",
    "monotonic==1.6",
    "plotly==5.24.1",
    "pyfiglet==1.0.4",
    "PyJWT==2.15.1",
    "seaborn==0.13.2",
    "segment-analytics-python==2.4.0",
)
SCRIPT = Path(__file__).with_name("nannyml") / "cbpe.py"
DLE_SCRIPT = Path(__file__).with_name("nannyml") / "dle.py"


def _tail(text: str) -> str:
    return " | ".join(text.strip().splitlines()[-3:]) or "no output"


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} failed: {_tail(done.stderr or done.stdout)}")


def nannyml_python(venv: Path = VENV) -> Path:
    """The Python of the NannyML virtualenv, built when missing or outdated."""
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = " ".join(PACKAGES)
    if python.is_file() and stamp.is_file() and stamp.read_text().strip() == wanted:
        return python
    base = Path(sys.base_prefix) / "bin" / "python3"
    ours = sysconfig.get_paths()["purelib"]  # vigil's environment: the packages to share
    cmd = [str(base), "-m", "venv", "--clear", str(venv)]
    _run(cmd)
    theirs = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(theirs) / "vigil-environment.pth").write_text(ours + "\n")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, "--no-deps", *PACKAGES])
    stamp.write_text(wanted + "\n")
    return python


def nannyml_cbpe(python: Path, reference: Path, analysis: Path, chunk_size: int) -> Any:
    """NannyML's CBPE estimates of every chunk of ``analysis`` (Parquet files with columns
    ``proba``, ``pred`` and, in the reference, ``label``), as the script prints them."""
    return _estimates(python, SCRIPT, reference, analysis, chunk_size)


def nannyml_dle(python: Path, reference: Path, analysis: Path, chunk_size: int) -> Any:
    """NannyML's DLE estimates (MAE, RMSE) of every chunk of ``analysis`` (Parquet files
    with the features, ``pred`` and, in the reference, ``label``)."""
    return _estimates(python, DLE_SCRIPT, reference, analysis, chunk_size)


def _estimates(python: Path, script: Path, reference: Path, analysis: Path, chunk: int) -> Any:
    done = subprocess.run(
        [str(python), str(script), str(reference), str(analysis), str(chunk)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"NannyML failed: {_tail(done.stderr or done.stdout)}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # the JSON is the last line
