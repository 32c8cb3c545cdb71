"""``vigil predict`` as a user runs it: a real process, a registered model, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from tests.batch._data import FEATURES, read, write

from vigil.app import Vigil
from vigil.settings import load_settings

VIGIL = [sys.executable, "-m", "vigil.cli"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VIGIL_HOME holding ``churn`` version 1, a LogisticRegression on FEATURES."""
    home = tmp_path_factory.mktemp("predict-home")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(400, len(FEATURES))), columns=FEATURES)
    target = (frame["f0"] + frame["f1"] > 0).astype(int)
    model = LogisticRegression().fit(frame, target)
    Vigil(load_settings(home=home)).register(
        model, name="churn", reference=frame.assign(y=target), target="y", alias="production"
    )
    return home


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(2500, len(FEATURES))), columns=FEATURES)
    return frame.assign(customer=[f"c{i}" for i in range(2500)])


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIGIL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [*VIGIL, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_predict_writes_scores_and_a_summary(
    tmp_path: Path, home: Path, rows: pd.DataFrame
) -> None:
    source = write(rows, tmp_path / "rows.csv")
    result = run(
        "predict", "models:/churn@production", str(source), "-o", str(tmp_path / "scores.parquet"),
        "--proba", "--chunk-rows", "1000", "--json", home=home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows"] == 2500 and summary["chunks"] == 3
    assert (summary["format"], summary["engine"]) == ("parquet", "local")
    assert summary["output"] == str(tmp_path / "scores.parquet")

    out = read(tmp_path / "scores.parquet")
    assert out.column_names == [*FEATURES, "customer", "prediction", "proba_0", "proba_1"]
    model = Vigil(load_settings(home=home)).load("models:/churn/1")
    expected = model.predict(rows[FEATURES].to_numpy())
    np.testing.assert_array_equal(out.column("prediction").to_numpy(), expected)

    plain = run("predict", "churn", str(source), "-o", str(tmp_path / "s.jsonl"), home=home)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith("scored 2,500 rows in ")
    assert plain.stdout.rstrip().endswith(f"with the local engine → {tmp_path / 's.jsonl'}")


def test_a_bad_row_is_one_line_naming_it_and_no_output(
    tmp_path: Path, home: Path, rows: pd.DataFrame
) -> None:
    bad = rows.astype({"f3": object})
    bad.loc[2222, "f3"] = "n/a?"
    source = write(bad.astype({"f3": str}), tmp_path / "rows.csv")
    result = run("predict", "churn", str(source), "-o", str(tmp_path / "out.csv"), home=home)
    assert one_line_error(result) == (
        "error: rows.csv: feature 'f3' in row 2222: expected a number (float64), "
        "got the string 'n/a?'"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["models:/nope/1", "{src}", "-o", "{out}"], "nope"),
        (["churn", "{src}", "-o", "{dir}/out.xlsx"], "cannot tell the format of 'out.xlsx'"),
        (["churn", "{dir}/missing.csv", "-o", "{out}"], "missing.csv' does not exist"),
        (["churn", "{src}", "-o", "{out}", "--num-cpus", "2"], "need --engine ray"),
        (
            ["churn", "{src}", "-o", "{dir}/o.parquet", "--engine", "ray",
             "--ray-address", "auto", "--num-cpus", "2"],
            "--num-cpus sizes a local Ray instance",
        ),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line(
    tmp_path: Path, home: Path, rows: pd.DataFrame, args: list[str], needle: str
) -> None:
    source = write(rows.head(10), tmp_path / "rows.csv")
    values = {"src": str(source), "out": str(tmp_path / "out.csv"), "dir": str(tmp_path)}
    result = run("predict", *[a.format(**values) for a in args], home=home)
    assert needle in one_line_error(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]
