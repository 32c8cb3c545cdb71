"""A model registered without reference data: its signature comes from what the model
records of its inputs, or registration is refused. Nothing is guessed.

Nullability: a feature is nullable when the model answers with it missing (probed on real
rows at registration), so a null the model cannot take is a 422 naming the feature rather
than an error inside the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from vigil.bundle.bundle import build_bundle, load_bundle
from vigil.bundle.trust import TrustPolicy
from vigil.errors import BundleError


@pytest.fixture(scope="module")
def churn() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(4)
    n = 300
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "tenure": rng.integers(1, 60, n).astype(float),
            "spend": rng.normal(50, 10, n),
            "plan": rng.choice(["basic", "pro", "team"], n),
            "region": rng.choice(["north", "south"], n),
        }
    )
    y = ((frame["plan"] == "basic") & (frame["tenure"] < 20)).to_numpy().astype(int)
    return frame, y


def _pipeline() -> Pipeline:
    return make_pipeline(
        ColumnTransformer(
            [
                ("num", StandardScaler(), ["tenure", "spend"]),
                (
                    "plan",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    ["plan"],
                ),
                ("region", OrdinalEncoder(), ["region"]),
            ],
            remainder="drop",  # customer_id is not used
        ),
        LogisticRegression(max_iter=500),
    )


def _specs(sig: object) -> list[tuple[str, str, list[object] | None]]:
    return [(f.name, f.dtype, f.categories) for f in sig.inputs]  # type: ignore[attr-defined]


def _trusting(path: Path) -> TrustPolicy:
    from vigil.bundle.manifest import read_manifest

    return TrustPolicy(trusted_types=tuple(read_manifest(path).required_trusted_types))


def test_column_transformer_gives_string_columns_with_their_categories(
    tmp_path: Path, churn: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, y = churn
    model = _pipeline().fit(frame, y)
    manifest = build_bundle(model, tmp_path / "b")
    assert _specs(manifest.signature) == [
        ("tenure", "float64", None),
        ("spend", "float64", None),
        ("plan", "string", ["basic", "pro", "team"]),
        ("region", "string", ["north", "south"]),
    ]
    assert manifest.signature.outputs.classes == [0, 1]
    # The model answers rows of exactly those columns (the dropped id is not needed).
    bundle = load_bundle(tmp_path / "b", trust=_trusting(tmp_path / "b"))
    rows = frame[["tenure", "spend", "plan", "region"]].iloc[:5]
    assert bundle.predict(rows).tolist() == model.predict(frame.iloc[:5]).tolist()


def test_column_selectors_and_passthrough_into_a_numeric_model(
    tmp_path: Path, churn: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, y = churn
    model = make_pipeline(
        ColumnTransformer(
            [("cat", OneHotEncoder(), make_column_selector(dtype_exclude="number"))],
            remainder="passthrough",
        ),
        LogisticRegression(max_iter=500),
    ).fit(frame.drop(columns="customer_id"), y)
    sig = build_bundle(model, tmp_path / "b").signature
    assert _specs(sig) == [
        ("tenure", "float64", None),
        ("spend", "float64", None),
        ("plan", "string", ["basic", "pro", "team"]),
        ("region", "string", ["north", "south"]),
    ]


def test_integer_categories_stay_integers(tmp_path: Path) -> None:
    frame = pd.DataFrame({"store": [3, 5, 7, 3, 5, 7] * 10, "x": np.linspace(0, 1, 60)})
    model = make_pipeline(
        ColumnTransformer([("s", OneHotEncoder(), ["store"])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, np.arange(60) % 2)
    sig = build_bundle(model, tmp_path / "b").signature
    assert _specs(sig) == [("store", "category", [3, 5, 7]), ("x", "float64", None)]


def test_a_plain_estimator_on_a_frame_takes_numbers(
    tmp_path: Path, churn: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, y = churn
    model = LogisticRegression(max_iter=500).fit(frame[["tenure", "spend"]], y)
    sig = build_bundle(model, tmp_path / "b").signature
    assert _specs(sig) == [("tenure", "float64", None), ("spend", "float64", None)]


def unchanged(X: object) -> object:
    return X


def first_column(X: np.ndarray) -> np.ndarray:
    return X[:, :1].astype(float)


@pytest.mark.parametrize(
    "first",
    [FunctionTransformer(unchanged), "passthrough-into-unknown"],
    ids=["function-transformer", "passthrough-into-unknown"],
)
def test_unknowable_input_types_are_refused_with_what_to_do(
    tmp_path: Path, churn: tuple[pd.DataFrame, np.ndarray], first: object
) -> None:
    frame, y = churn
    data = frame[["tenure", "plan"]]
    if first == "passthrough-into-unknown":
        model = make_pipeline(
            ColumnTransformer([("t", "passthrough", ["tenure", "plan"])]),
            FunctionTransformer(first_column),
            LogisticRegression(),
        ).fit(data, y)
    else:
        model = make_pipeline(
            first,
            ColumnTransformer([("p", OneHotEncoder(), ["plan"])], remainder="passthrough"),
            LogisticRegression(),
        ).fit(data, y)
    with pytest.raises(BundleError) as err:
        build_bundle(model, tmp_path / "b")
    message = str(err.value)
    assert "--reference" in message and "signature" in message
    assert "plan" in message
    assert err.value.detail["columns"] == ["tenure", "plan"]
    assert not (tmp_path / "b").exists()
    # With reference data the same model registers, typed by the data.
    sig = build_bundle(model, tmp_path / "c", reference=data).signature
    assert [(f.name, f.dtype) for f in sig.inputs] == [("tenure", "float64"), ("plan", "string")]


def test_reference_types_still_win_over_the_model(
    tmp_path: Path, churn: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, y = churn
    model = _pipeline().fit(frame, y)
    sig = build_bundle(model, tmp_path / "b", reference=frame.assign(churned=y), target="churned")
    # Only the columns the model reads (customer_id is dropped by it).
    assert [(f.name, f.dtype) for f in sig.signature.inputs] == [
        ("tenure", "float64"),
        ("spend", "float64"),
        ("plan", "string"),
        ("region", "string"),
    ]


# -- nullability ------------------------------------------------------------------------


def test_nullable_only_where_the_model_takes_a_missing_value(
    tmp_path: Path, churn: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, y = churn
    numeric = frame[["tenure", "spend"]]
    cases = {
        "logistic": LogisticRegression(max_iter=500),
        "hgb": HistGradientBoostingClassifier(max_iter=10),
        "imputed": make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500)),
        "one-imputed": make_pipeline(
            ColumnTransformer(
                [("t", SimpleImputer(), ["tenure"]), ("s", "passthrough", ["spend"])]
            ),
            LogisticRegression(max_iter=500),
        ),
    }
    found = {}
    for name, model in cases.items():
        model.fit(numeric, y)
        sig = build_bundle(model, tmp_path / name, reference=numeric).signature
        found[name] = {f.name: f.nullable for f in sig.inputs}
        # and the same without reference data, from the model alone
        alone = build_bundle(model, tmp_path / f"{name}-alone").signature
        assert {f.name: f.nullable for f in alone.inputs} == found[name], name
    assert found == {
        "logistic": {"tenure": False, "spend": False},
        "hgb": {"tenure": True, "spend": True},
        "imputed": {"tenure": True, "spend": True},
        "one-imputed": {"tenure": True, "spend": False},
    }


def test_categorical_nullability_follows_the_encoder(
    tmp_path: Path, churn: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, y = churn
    model = _pipeline().fit(frame, y)
    sig = build_bundle(model, tmp_path / "b").signature
    # plan is imputed before encoding; region's OrdinalEncoder never saw a missing value,
    # and the scaler passes NaN on to a LogisticRegression that cannot take it.
    assert {f.name: f.nullable for f in sig.inputs} == {
        "tenure": False,
        "spend": False,
        "plan": True,
        "region": False,
    }
