"""Commands that need no model start without the model stacks (scikit-learn, skops, SciPy,
pandas, NumPy): their start-up is Python's, typer's and, to read the registry,
SQLAlchemy's. How long that takes is measured by bench/startup.py, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ["numpy", "pandas", "pyarrow", "scipy", "sklearn", "skops", "httpx", "uvicorn"]

_RUN = """
import json, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["vigil", *json.loads(sys.argv[1])]
from vigil.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args", [["--help"], ["model", "list"], ["models", "list"], ["model", "list", "--json"]]
)
def test_commands_without_a_model_import_no_model_stack(tmp_path: Path, args: list[str]):
    done = subprocess.run(
        [sys.executable, "-c", _RUN, json.dumps(args), json.dumps(HEAVY)],
        env={**os.environ, "VIGIL_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(done.stderr.strip().splitlines()[-1]) == [], done.stderr
