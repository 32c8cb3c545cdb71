"""The ``vigil`` command as a user runs it: a real process, real files, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest
import skops.io as sio
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

VIGIL = [sys.executable, "-m", "vigil.cli"]


def run(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIGIL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [*VIGIL, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    text = " ".join(lines)
    assert text.startswith("error:"), result.stderr
    for needle in needles:
        assert needle in text, text


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    X, y = make_classification(n_samples=200, n_features=4, random_state=1)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame.assign(y=y).to_csv(root / "ref.csv", index=False)
    sio.dump(LogisticRegression().fit(frame, y), root / "lr.skops")
    sio.dump(DecisionTreeClassifier(random_state=0).fit(frame, y), root / "tree.skops")
    joblib.dump(LogisticRegression().fit(frame, y), root / "lr.pkl")
    (root / "weird.bin").write_bytes(b"\x00\x01not a model")
    return {p.stem if p.suffix != ".pkl" else "pkl": p for p in root.iterdir()}


def test_register_list_show_alias_rollback_audit(tmp_path: Path, files: dict[str, Path]) -> None:
    register = ["register", "churn", str(files["lr"]), "--reference", str(files["ref"])]
    register += ["--target", "y", "--alias", "production"]
    r = run(
        *register,
        "--tag",
        "team=risk",
        "--metric",
        "auc=0.91",
        "--json",
        home=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    assert (first["name"], first["version"], first["aliases"]) == ("churn", 1, ["production"])
    assert first["tags"] == {"team": "risk"} and first["metrics"] == {"auc": 0.91}
    assert run(*register, home=tmp_path).returncode == 0

    listed = json.loads(run("model", "list", "--json", home=tmp_path).stdout)
    assert listed[0]["name"] == "churn" and listed[0]["latest_version"] == 2
    assert listed[0]["aliases"] == {"production": 2}

    shown = run("model", "show", "models:/churn@production", home=tmp_path)
    assert (
        shown.returncode == 0
        and "models:/churn/2" in shown.stdout
        and "Signature (4 inputs)" in shown.stdout
    )

    back = json.loads(run("rollback", "churn", "--json", home=tmp_path).stdout)
    assert (back["from_version"], back["to_version"]) == (2, 1)
    assert_one_line_error(run("rollback", "churn", home=tmp_path), "roll")

    assert run("alias", "set", "churn", "staging", "2", home=tmp_path).returncode == 0
    deleted = json.loads(run("alias", "delete", "churn", "staging", "--json", home=tmp_path).stdout)
    assert deleted == {"model": "churn", "alias": "staging", "version": 2}
    events = json.loads(run("audit", "churn", "--json", home=tmp_path).stdout)
    actions = [e["action"] for e in events]
    assert (
        actions.count("register_version") == 2 and "rollback" in actions and "set_alias" in actions
    )


def test_refusals_are_one_line(tmp_path: Path, files: dict[str, Path]) -> None:
    assert_one_line_error(run("register", "p", str(files["pkl"]), home=tmp_path), "--trust-pickle")
    assert_one_line_error(
        run("register", "t", str(files["tree"]), home=tmp_path),
        "sklearn.tree._tree.Tree",
        "--trust-type",
    )
    assert_one_line_error(
        run("register", "../evil", str(files["lr"]), home=tmp_path), "invalid model name"
    )
    assert_one_line_error(run("register", "w", str(files["weird"]), home=tmp_path), "flavor")
    assert_one_line_error(
        run("register", "m", str(tmp_path / "missing.skops"), home=tmp_path), "does not exist"
    )
    assert_one_line_error(
        run("register", "m", str(files["lr"]), "--metric", "auc=high", home=tmp_path), "number"
    )
    assert_one_line_error(run("alias", "set", "nope", "production", "1", home=tmp_path), "nope")
    for command in (["report", "churn"], ["monitor", "run"], ["experiment", "status", "e"]):
        # One duration grammar, and a huge value is a refusal, not an OverflowError.
        assert_one_line_error(
            run(*command, "--since", "99999999999999d", home=tmp_path),
            "invalid --since '99999999999999d': a duration may last at most 36500d",
        )
    assert_one_line_error(run("model", "show", "models:/a/b/c", home=tmp_path), "invalid model URI")
    # Refusals wrote nothing; a trusted type is accepted once named exactly.
    assert (
        json.loads(run("models", "list", "--json", home=tmp_path).stdout) == []
    )  # the plural still works
    ok = run(
        "register",
        "t",
        str(files["tree"]),
        "--trust-type",
        "sklearn.tree._tree.Tree",
        "--json",
        home=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["lineage"]["trust"]["types"] == ["sklearn.tree._tree.Tree"]


def test_version_comes_from_the_package_metadata(tmp_path: Path) -> None:
    from importlib.metadata import version

    import vigil

    assert vigil.__version__ == version("vigil")
    for args in (("--version",), ("version",)):
        result = run(*args, home=tmp_path)
        assert result.returncode == 0 and result.stdout.strip() == version("vigil")
