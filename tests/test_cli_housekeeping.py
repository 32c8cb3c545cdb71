"""`vigil alias list`, `vigil model archive|unarchive|delete` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import skops.io as sio
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

VIGIL = [sys.executable, "-m", "vigil.cli"]


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIGIL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [*VIGIL, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """churn versions 1 and 2, production on 1."""
    root = tmp_path_factory.mktemp("housekeeping")
    X, y = make_classification(
        n_samples=100, n_features=3, n_informative=2, n_redundant=0, random_state=0
    )
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame.assign(y=y).to_csv(root / "ref.csv", index=False)
    for c in (1.0, 0.1):
        sio.dump(LogisticRegression(C=c).fit(frame, y), root / f"m{c}.skops")
    home = root / "home"
    for c, extra in ((1.0, ["--alias", "production"]), (0.1, [])):
        r = run(
            "register", "churn", str(root / f"m{c}.skops"), "-r", str(root / "ref.csv"),
            "--target", "y", *extra, home=home,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
    return home


def test_alias_list_text_and_json(home: Path) -> None:
    r = run("alias", "list", home=home)
    assert r.returncode == 0, r.stderr
    assert "churn" in r.stdout and "production" in r.stdout
    listed = json.loads(run("alias", "list", "churn", "--json", home=home).stdout)
    assert [(a["name"], a["alias"], a["version"]) for a in listed] == [("churn", "production", 1)]
    missing = run("alias", "list", "nope", home=home)
    assert missing.returncode != 0 and "no model named 'nope'" in missing.stderr


def test_archive_delete_and_refusals(home: Path) -> None:
    refused = run("model", "archive", "churn", "1", home=home)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "alias churn@production (version 1)" in refused.stderr
    archived = json.loads(run("model", "archive", "churn", "2", "--json", home=home).stdout)
    assert archived["version"] == 2 and archived["archived_at"]
    assert "2 (archived)" in run("model", "show", "churn", home=home).stdout
    assert run("model", "unarchive", "churn", "2", home=home).returncode == 0
    deleted = run("model", "delete", "churn", "2", "--json", "--reason", "unused", home=home)
    assert json.loads(deleted.stdout)["deleted"] is True
    whole = run("model", "delete", "churn", home=home)
    assert whole.returncode != 0 and "--force" in whole.stderr
    forced = run("model", "delete", "churn", "--force", home=home)
    assert forced.returncode == 0, forced.stderr
    assert "deleted model churn (1 version(s)) and its aliases production→v1" in forced.stdout
    audit = json.loads(run("audit", "churn", "--json", home=home).stdout)
    assert [e["action"] for e in audit[:3]] == ["delete_model", "delete_alias", "delete_version"]
