"""``vigil validate``: the gate a CI pipeline runs before registering or promoting a model.

A better candidate passes, a worse one is rejected, non-inferiority tolerates a stated loss,
the numbers are scikit-learn's and statsmodels' on the same rows, and the guards (inputs
clients send, prediction time) stop a candidate the metric alone would let through."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, roc_auc_score, root_mean_squared_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures
from statsmodels.stats.contingency_tables import mcnemar
from typer.testing import CliRunner

from vigil.app import Vigil, reset_default
from vigil.cli import app

runner = CliRunner()
FEATURES = [f"x{i}" for i in range(6)]


def _data(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 6)), columns=FEATURES)
    # An interaction of the two features clients send, which a linear model misses.
    logit = 1.5 * frame.x0 - frame.x1 + 2.0 * frame.x0 * frame.x1 + 0.8 * frame.x2
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


@pytest.fixture(autouse=True)
def _this_home(vigil_home: Path) -> None:
    reset_default()  # the CLI's Vigil reads this test's VIGIL_HOME


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    """A production model on two features, a better candidate on all six, a worse one on
    one feature, and a labelled holdout file."""
    v = Vigil()
    train, holdout = _data(0, 3000), _data(1, 2000)
    weak = LogisticRegression().fit(train[["x0", "x1"]], train.y)
    strong = LogisticRegression().fit(train[FEATURES], train.y)
    worse = LogisticRegression().fit(train[["x2"]], train.y)
    v.register(weak, name="m", reference=train[["x0", "x1", "y"]], target="y", alias="production")
    v.register(strong, name="m", reference=train[[*FEATURES, "y"]], target="y")
    v.register(worse, name="m", reference=train[["x2", "y"]], target="y")
    path = tmp_path / "holdout.csv"
    holdout.to_csv(path, index=False)
    return {"holdout": holdout, "path": path, "weak": weak, "strong": strong, "worse": worse}


def _validate(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["validate", *args, "--json"])
    assert (result.exit_code in (0, 1) and result.exception is None) or isinstance(
        result.exception, SystemExit
    ), (result.output, result.exception)
    return result.exit_code, json.loads(result.stdout)


def test_a_better_candidate_passes_with_the_numbers_of_sklearn_and_statsmodels(
    world: dict[str, Any],
) -> None:
    """A candidate reading features the production model's clients do not send is stopped
    by the signature guard, however good; one that models the interaction of the features
    clients send passes."""
    code, out = _validate(
        "models:/m/2", "--against", "models:/m@production", "--data", str(world["path"])
    )
    assert code == 1 and out["passed"] is False
    assert any("signature guard" in r and "'x2'" in r for r in out["reasons"])

    # A candidate on the same two inputs that models their interaction.
    holdout = world["holdout"]
    v = Vigil()
    train = _data(0, 3000)
    better = make_pipeline(PolynomialFeatures(2), LogisticRegression(max_iter=1000))
    better.fit(train[["x0", "x1"]], train.y)
    v.register(better, name="m", reference=train[["x0", "x1", "y"]], target="y")
    code, out = _validate(
        "models:/m/4", "--against", "models:/m@production", "--data", str(world["path"])
    )
    x = holdout[["x0", "x1"]]
    cur = world["weak"].predict(x)
    cand = better.predict(x)
    assert out["rows"] == 2000 and out["metric"] == "accuracy"
    assert out["current"] == pytest.approx(accuracy_score(holdout.y, cur))
    assert out["candidate"] == pytest.approx(accuracy_score(holdout.y, cand))
    assert out["improvement"]["value"] == pytest.approx(out["candidate"] - out["current"])
    right_a, right_b = cur == holdout.y, cand == holdout.y
    table = [
        [np.sum(right_a & right_b), np.sum(right_a & ~right_b)],
        [np.sum(~right_a & right_b), np.sum(~right_a & ~right_b)],
    ]
    assert table[1][0] > table[0][1]  # the candidate wins more of the discordant rows
    two_sided = mcnemar(table, exact=False, correction=True).pvalue
    # One-sided in the candidate's favour: half the two-sided p, as it is ahead.
    assert out["test"]["p_value"] == pytest.approx(two_sided / 2, rel=1e-9)
    assert out["test"]["p_value"] < 1e-6 and out["improvement"]["low"] > 0
    assert code == 0 and out["passed"] is True and out["reasons"] == [], out["reasons"]


def test_a_worse_candidate_is_rejected_and_the_text_says_why(world: dict[str, Any]) -> None:
    result = runner.invoke(
        app,
        ["validate", "models:/m/3", "--against", "models:/m/1", "--data", str(world["path"])],
    )
    assert result.exit_code == 1
    assert "rejected" in result.stdout and "not shown better" in result.stdout
    assert "McNemar p" in result.stdout


def test_non_inferiority_tolerates_a_stated_loss(world: dict[str, Any]) -> None:
    # The production model against itself (a retrain that changed nothing): not better,
    # so a superiority gate rejects it; a gate tolerating a loss of 0.02 lets it through.
    args = ["models:/m/1", "--against", "models:/m@production", "--data", str(world["path"])]
    code, out = _validate(*args)
    assert code == 1 and out["improvement"]["value"] == 0.0
    code, out = _validate(*args, "--min-improvement", "-0.02")
    assert code == 0 and out["passed"] is True
    assert out["improvement"]["low"] == 0.0  # identical answers: no spread at all


def test_roc_auc_and_a_slow_candidate(world: dict[str, Any], tmp_path: Path) -> None:
    v = Vigil()
    big = _data(6, 2000)
    forest = RandomForestClassifier(n_estimators=150, random_state=0).fit(big[["x0", "x1"]], big.y)
    v.register(forest, name="m", reference=big[["x0", "x1", "y"]].head(2000), target="y")
    code, out = _validate(
        "models:/m/4",
        "--against",
        "models:/m/1",
        "--data",
        str(world["path"]),
        "--metric",
        "auc",
        "--min-improvement",
        "-1",
    )
    holdout = world["holdout"]
    x = holdout[["x0", "x1"]]
    assert out["metric"] == "roc_auc"
    assert out["current"] == pytest.approx(
        roc_auc_score(holdout.y, world["weak"].predict_proba(x)[:, 1])
    )
    assert out["candidate"] == pytest.approx(
        roc_auc_score(holdout.y, forest.predict_proba(x)[:, 1])
    )
    assert out["test"] is None and out["improvement"]["method"] == "paired-bootstrap-percentile"
    latency = next(g for g in out["guards"] if g["name"] == "latency")
    # 150 trees against one dot product: far beyond twice the time per row.
    assert latency["passed"] is False and code == 1
    assert any("latency guard" in r for r in out["reasons"])


def test_regression_is_judged_on_rmse(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(4000, 3)), columns=["a", "b", "c"])
    frame["y"] = 2 * frame.a - frame.b + 0.5 * frame.c + rng.normal(0, 0.5, 4000)
    train, holdout = frame.iloc[:2000], frame.iloc[2000:]
    v = Vigil()
    ridge = Ridge(alpha=3000.0).fit(train[["a", "b", "c"]], train.y)
    ols = LinearRegression().fit(train[["a", "b", "c"]], train.y)
    v.register(ridge, name="r", reference=train, target="y", alias="production")
    v.register(ols, name="r", reference=train, target="y")
    path = tmp_path / "holdout.parquet"
    holdout.to_parquet(path)
    code, out = _validate("models:/r/2", "--against", "models:/r@production", "--data", str(path))
    x = holdout[["a", "b", "c"]]
    assert out["metric"] == "rmse"
    assert out["current"] == pytest.approx(root_mean_squared_error(holdout.y, ridge.predict(x)))
    assert out["candidate"] == pytest.approx(root_mean_squared_error(holdout.y, ols.predict(x)))
    # Lower error is better: the improvement is current minus candidate.
    assert out["improvement"]["value"] == pytest.approx(out["current"] - out["candidate"])
    assert code == 0 and out["improvement"]["low"] > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "nope"], "the label column 'nope' is not in holdout.csv"),
        (["--metric", "mse2"], "unknown metric 'mse2'"),
        (["--metric", "rmse"], "rmse is a regression metric"),
        (["--alpha", "2"], "alpha must be"),
    ],
)
def test_bad_input_is_one_clear_line(world: dict[str, Any], extra: list[str], message: str) -> None:
    result = runner.invoke(
        app,
        [
            "validate",
            "models:/m/1",
            "--against",
            "models:/m/1",
            "--data",
            str(world["path"]),
            *extra,
        ],
    )
    assert result.exit_code != 0
    assert message in str(result.exception) or message in result.output
