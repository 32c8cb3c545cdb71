from __future__ import annotations

import re
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from vigil.bundle.bundle import build_bundle, load_bundle
from vigil.bundle.flavors import detect_flavor
from vigil.bundle.trust import TrustPolicy
from vigil.errors import UntrustedModelError

TREE = "sklearn.tree._tree.Tree"


def _tree(cancer: tuple[pd.DataFrame, pd.Series]) -> DecisionTreeClassifier:
    X, y = cancer
    return DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)


def test_skops_file_refused_until_exactly_its_types_are_trusted(cancer, tmp_path: Path) -> None:
    X, _ = cancer
    model = _tree(cancer)
    path = tmp_path / "tree.skops"
    sio.dump(model, path)
    required = sio.get_untrusted_types(file=path)
    assert required == [TREE]

    with pytest.raises(UntrustedModelError) as err:
        build_bundle(path, tmp_path / "b1", reference=X)
    assert f"--trust-type {TREE}" in str(err.value)
    assert err.value.detail == {"untrusted_types": [TREE]}
    assert not (tmp_path / "b1").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tree.skops"]

    # Trusting some other type is not enough.
    with pytest.raises(UntrustedModelError, match=re.escape(f"types nobody trusted: {TREE}. ")):
        build_bundle(path, tmp_path / "b1", trust=TrustPolicy(trusted_types=("numpy.ndarray",)))

    trust = TrustPolicy(trusted_types=(TREE,))
    manifest = build_bundle(path, tmp_path / "b1", reference=X, trust=trust)
    assert manifest.flavor == "sklearn"
    assert manifest.required_trusted_types == [TREE]
    assert manifest.model_file == "model.skops"
    assert manifest.source.name == "tree.skops"
    assert (tmp_path / "b1" / "model.skops").read_bytes() == path.read_bytes()

    with pytest.raises(UntrustedModelError):
        load_bundle(tmp_path / "b1")
    bundle = load_bundle(tmp_path / "b1", trust=trust)
    np.testing.assert_array_equal(bundle.predict(X), model.predict(X))
    np.testing.assert_array_equal(bundle.predict_proba(X), model.predict_proba(X))
    # A bare array in signature order gives the same answer, without a feature-name warning.
    np.testing.assert_array_equal(bundle.predict(X.to_numpy()), model.predict(X))
    assert bundle.signature.feature_names == list(X.columns)
    assert bundle.signature.outputs.classes == [0, 1]


def test_in_memory_pipeline_round_trip(cancer, tmp_path: Path) -> None:
    X, y = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    manifest = build_bundle(model, tmp_path / "b")
    assert manifest.source.kind == "object"
    assert manifest.source.name == "sklearn.pipeline.Pipeline"
    assert manifest.signature.outputs.task == "classification"
    assert manifest.signature.outputs.has_proba
    bundle = load_bundle(tmp_path / "b")
    assert bundle.model.flavor == "sklearn"
    np.testing.assert_array_equal(bundle.predict(X), model.predict(X))
    np.testing.assert_array_equal(bundle.predict_proba(X), model.predict_proba(X))
    assert bundle.profile is None


def test_in_memory_model_trusts_its_own_types_only_while_registering(cancer, tmp_path) -> None:
    X, y = cancer
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    manifest = build_bundle(model, tmp_path / "b", reference=X)
    assert TREE in manifest.required_trusted_types
    with pytest.raises(UntrustedModelError, match="--trust-type"):
        load_bundle(tmp_path / "b")
    trust = TrustPolicy(trusted_types=tuple(manifest.required_trusted_types))
    bundle = load_bundle(tmp_path / "b", trust=trust)
    np.testing.assert_array_equal(bundle.predict(X), model.predict(X))


def test_pickle_needs_trust_pickle(cancer, tmp_path: Path) -> None:
    X, y = cancer
    model = LogisticRegression(max_iter=5000).fit(X.to_numpy(), y)  # fitted without names
    path = tmp_path / "model.pkl"
    joblib.dump(model, path)
    with pytest.raises(UntrustedModelError, match="--trust-pickle"):
        build_bundle(path, tmp_path / "b", reference=X)
    assert not (tmp_path / "b").exists()

    trust = TrustPolicy(trust_pickle=True)
    manifest = build_bundle(path, tmp_path / "b", reference=X, trust=trust)
    assert manifest.requires_pickle
    # The model knew only its width: names come from the reference, in order.
    assert manifest.signature.feature_names == list(X.columns)
    with pytest.raises(UntrustedModelError):
        load_bundle(tmp_path / "b")
    bundle = load_bundle(tmp_path / "b", trust=trust)
    np.testing.assert_array_equal(bundle.predict(X), model.predict(X.to_numpy()))
    np.testing.assert_array_equal(bundle.predict(X.to_numpy()), model.predict(X.to_numpy()))


def test_regressor_signature_and_predictions(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=100), "n": rng.integers(0, 5, size=100)})
    y = 2 * X["a"] + X["n"]
    model = LinearRegression().fit(X, y)
    manifest = build_bundle(model, tmp_path / "b", reference=X)
    assert manifest.signature.outputs.task == "regression"
    assert [f.dtype for f in manifest.signature.inputs] == ["float64", "int64"]
    bundle = load_bundle(tmp_path / "b")
    np.testing.assert_array_equal(bundle.predict(X), model.predict(X))
    assert not bundle.model.has_proba
    with pytest.raises(NotImplementedError):
        bundle.predict_proba(X)


def test_detect_sklearn_files(tmp_path: Path, cancer) -> None:
    model = _tree(cancer)
    sio.dump(model, tmp_path / "m.skops")
    assert detect_flavor(tmp_path / "m.skops").name == "sklearn"
    (tmp_path / "fake.skops").write_bytes(b"not a zip")
    with pytest.raises(Exception, match="cannot tell the flavor"):
        detect_flavor(tmp_path / "fake.skops")
