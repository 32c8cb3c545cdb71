"""MLflow model directories written by MLflow itself, loaded by vigil without MLflow."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.tree import DecisionTreeClassifier

from vigil.bundle.bundle import build_bundle, load_bundle
from vigil.bundle.flavors import detect_flavor
from vigil.bundle.trust import TrustPolicy
from vigil.errors import BundleError, UntrustedModelError

from .conftest import files_in

TREE = "sklearn.tree._tree.Tree"


@pytest.fixture(scope="module")
def tree(cancer) -> DecisionTreeClassifier:
    X, y = cancer
    return DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)


def _save_sklearn(model, path: Path, fmt: str, X) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    extra = {"skops_trusted_types": [TREE]} if fmt == "skops" else {}
    # MLflow's own writer warns (type hints, pickle advice); it is only the test's fixture.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            model,
            path,
            serialization_format=fmt,
            signature=infer_signature(X, model.predict(X)),
            pip_requirements=[],  # skip MLflow's slow requirement inference
            **extra,
        )
    return path


def test_mlflow_sklearn_skops(cancer, tree, tmp_path: Path) -> None:
    X, _ = cancer
    src = _save_sklearn(tree, tmp_path / "mlmodel", "skops", X)
    assert detect_flavor(src).name == "mlflow"
    with pytest.raises(UntrustedModelError, match=f"--trust-type {TREE}"):
        build_bundle(src, tmp_path / "b", reference=X)
    assert files_in(tmp_path / "b") == []

    trust = TrustPolicy(trusted_types=(TREE,))
    manifest = build_bundle(src, tmp_path / "b", reference=X, trust=trust)
    assert manifest.flavor == "mlflow"
    assert manifest.model_info["inner_flavor"] == "sklearn"
    assert manifest.required_trusted_types == [TREE]
    assert manifest.source.kind == "directory"
    assert [f.dtype for f in manifest.signature.inputs] == ["float64"] * 30
    bundle = load_bundle(tmp_path / "b", trust=trust)
    assert bundle.model.flavor == "mlflow"
    np.testing.assert_array_equal(bundle.predict(X), tree.predict(X))
    np.testing.assert_array_equal(bundle.predict_proba(X), tree.predict_proba(X))


def test_mlflow_sklearn_cloudpickle_needs_trust_pickle(cancer, tree, tmp_path: Path) -> None:
    X, _ = cancer
    src = _save_sklearn(tree, tmp_path / "mlmodel", "cloudpickle", X)
    with pytest.raises(UntrustedModelError, match="--trust-pickle"):
        build_bundle(src, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    trust = TrustPolicy(trust_pickle=True)
    manifest = build_bundle(src, tmp_path / "b", trust=trust)
    assert manifest.requires_pickle
    # Without reference data the MLmodel signature still names the inputs.
    assert manifest.signature.feature_names == list(X.columns)
    bundle = load_bundle(tmp_path / "b", trust=trust)
    np.testing.assert_array_equal(bundle.predict(X), tree.predict(X))


def test_mlflow_xgboost(cancer, tmp_path: Path) -> None:
    import mlflow.xgboost
    import xgboost as xgb

    X, y = cancer
    model = xgb.XGBClassifier(n_estimators=5, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.xgboost.save_model(model, tmp_path / "mlmodel", pip_requirements=[])
    manifest = build_bundle(tmp_path / "mlmodel", tmp_path / "b", reference=X)
    assert manifest.model_info["inner"]["model_class"] == "XGBClassifier"
    bundle = load_bundle(tmp_path / "b")
    np.testing.assert_array_equal(bundle.predict(X), model.predict(X))
    np.testing.assert_array_equal(bundle.predict_proba(X), model.predict_proba(X))


def _edit_mlmodel(src: Path, edit) -> None:
    data = yaml.safe_load((src / "MLmodel").read_text())
    edit(data)
    (src / "MLmodel").write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (
            lambda d: d["flavors"]["python_function"].update(loader_module="evil.loader"),
            UntrustedModelError,
            "loaded by 'evil.loader'",
        ),
        (
            lambda d: d["flavors"]["sklearn"].update(code="code"),
            UntrustedModelError,
            "ships code",
        ),
        (
            lambda d: d["flavors"]["sklearn"].update(pickled_model="../../outside.skops"),
            BundleError,
            "points outside",
        ),
        (
            lambda d: (
                d["flavors"].pop("sklearn")
                and d["flavors"]["python_function"].update(loader_module="mlflow.pyfunc.model")
            ),
            UntrustedModelError,
            "mlflow.pyfunc.model",
        ),
    ],
    ids=["loader_module", "code", "traversal", "pyfunc-only"],
)
def test_mlflow_refusals(cancer, tree, tmp_path: Path, edit, error, message) -> None:
    X, _ = cancer
    src = _save_sklearn(tree, tmp_path / "mlmodel", "skops", X)
    _edit_mlmodel(src, edit)
    trust = TrustPolicy(trust_pickle=True, trusted_types=(TREE,))
    with pytest.raises(error, match=message):
        build_bundle(src, tmp_path / "b", reference=X, trust=trust)
    assert not (tmp_path / "b").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlmodel"]
