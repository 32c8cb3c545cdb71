"""NannyML in its own virtualenv, for comparing vigil's CBPE with its CBPE.

NannyML pins its own stack (FLAML, xgboost, an older plotly...) that must not enter vigil's
environment, so it lives in ``.venvs/nannyml`` (``make nannyml-venv`` builds it, as
``make test`` does; the fixture builds it on first use otherwise, so the comparison never
skips). NannyML 0.13.1 imports statsmodels without declaring it, hence the second pin.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venvs" / "nannyml"
PACKAGES = ("nannyml==0.13.1", "statsmodels==0.15.0")
SCRIPT = Path(__file__).with_name("nannyml") / "cbpe.py"


def _tail(text: str) -> str:
    return " | ".join(text.strip().splitlines()[-3:]) or "no output"


def nannyml_python(venv: Path = VENV) -> Path:
    """The Python of the NannyML virtualenv, built when missing or outdated."""
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = " ".join(PACKAGES)
    if python.is_file() and stamp.is_file() and stamp.read_text().strip() == wanted:
        return python
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PACKAGES],
    ]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} failed: {_tail(done.stderr or done.stdout)}")
    stamp.write_text(wanted + "\n")
    return python


def nannyml_cbpe(python: Path, reference: Path, analysis: Path, chunk_size: int) -> Any:
    """NannyML's CBPE estimates of every chunk of ``analysis`` (Parquet files with columns
    ``proba``, ``pred`` and, in the reference, ``label``), as the script prints them."""
    done = subprocess.run(
        [str(python), str(SCRIPT), str(reference), str(analysis), str(chunk_size)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"NannyML failed: {_tail(done.stderr or done.stdout)}")
    return json.loads(done.stdout)
