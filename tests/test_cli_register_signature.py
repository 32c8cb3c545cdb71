"""The first-hour trap of issue 13, item 4, as a user meets it: a pipeline with a text
column registered without ``--reference`` must take its text values (not record them as
numbers), and a model whose input types cannot be known is refused with what to pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
from tests.test_cli import assert_one_line_error, run


def _frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"tenure": rng.uniform(1, 60, 200), "plan": rng.choice(["basic", "pro", "team"], 200)}
    )
    return frame, (frame["plan"] == "pro").to_numpy().astype(int)


def test_a_pipeline_with_a_text_column_registers_and_predicts_without_reference(
    tmp_path: Path,
) -> None:
    frame, y = _frame()
    model = make_pipeline(
        ColumnTransformer([("plan", OneHotEncoder(), ["plan"])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, y)
    path = tmp_path / "churn.skops"
    sio.dump(model, path)
    trust = [a for t in sio.get_untrusted_types(file=path) for a in ("--trust-type", t)]
    registered = run("register", "churn", str(path), *trust, home=tmp_path)
    assert registered.returncode == 0, registered.stderr
    frame.head(5).to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "scores.csv"
    scored = run(
        "predict", "models:/churn/1", str(tmp_path / "rows.csv"), "-o", str(out), home=tmp_path
    )
    assert scored.returncode == 0, scored.stderr
    assert pd.read_csv(out)["prediction"].tolist() == model.predict(frame.head(5)).tolist()


def test_unknowable_input_types_are_a_one_line_refusal(tmp_path: Path) -> None:
    frame, y = _frame()
    model = make_pipeline(
        FunctionTransformer(np.asarray),
        ColumnTransformer([("plan", OneHotEncoder(), [1])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, y)
    path = tmp_path / "opaque.skops"
    sio.dump(model, path)
    trust = [a for t in sio.get_untrusted_types(file=path) for a in ("--trust-type", t)]
    assert_one_line_error(
        run("register", "opaque", str(path), *trust, home=tmp_path),
        "cannot tell the type",
        "'tenure', 'plan'",
        "--reference FILE",
    )
    frame.assign(churned=y).to_csv(tmp_path / "ref.csv", index=False)
    ok = run(
        "register",
        "opaque",
        str(path),
        *trust,
        "--reference",
        str(tmp_path / "ref.csv"),
        "--target",
        "churned",
        home=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
