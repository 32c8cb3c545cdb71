"""Round trips through ONNX, XGBoost and LightGBM: the bundle predicts what the original did."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from skl2onnx import to_onnx
from sklearn.linear_model import LinearRegression, LogisticRegression

from vigil.bundle.bundle import build_bundle, load_bundle
from vigil.bundle.flavors import detect_flavor
from vigil.bundle.manifest import MANIFEST_FILE
from vigil.errors import UnknownFlavorError


@pytest.mark.parametrize("zipmap", [False, True])
def test_onnx_round_trip(blobs, tmp_path: Path, zipmap: bool) -> None:
    X, y = blobs
    model = LogisticRegression(max_iter=1000).fit(X.to_numpy(), y)
    onx = to_onnx(
        model, X.to_numpy()[:1].astype(np.float32), options={id(model): {"zipmap": zipmap}}
    )
    path = tmp_path / "m.onnx"
    path.write_bytes(onx.SerializeToString())
    assert detect_flavor(path).name == "onnx"
    manifest = build_bundle(path, tmp_path / "b", reference=X)
    assert manifest.signature.feature_names == list(X.columns)
    assert manifest.signature.outputs.classes == [0, 1, 2]
    bundle = load_bundle(tmp_path / "b")
    np.testing.assert_array_equal(bundle.predict(X), model.predict(X.to_numpy()))
    np.testing.assert_allclose(
        bundle.predict_proba(X.to_numpy()), model.predict_proba(X.to_numpy()), atol=1e-6
    )


@pytest.mark.parametrize("in_memory", [False, True])
def test_onnx_class_labels_are_recorded_and_older_bundles_still_load(
    blobs, tmp_path: Path, in_memory: bool
) -> None:
    # Loading reads the labels from the manifest (ONNX Runtime alone, no onnx package); a
    # bundle written before they were recorded reads them from the graph, as it used to.
    X, y = blobs
    labels = np.array(["low", "mid", "high"])[y]
    model = LogisticRegression(max_iter=1000).fit(X.to_numpy(), labels)
    onx = to_onnx(
        model, X.to_numpy()[:1].astype(np.float32), options={id(model): {"zipmap": False}}
    )
    path = tmp_path / "m.onnx"
    path.write_bytes(onx.SerializeToString())
    source = onx if in_memory else path
    manifest = build_bundle(source, tmp_path / "b", reference=X)
    assert manifest.model_info == {"classes": ["high", "low", "mid"]}
    expected = model.predict_proba(X.to_numpy())
    for info in ({"classes": ["high", "low", "mid"]}, {}):
        data = json.loads((tmp_path / "b" / MANIFEST_FILE).read_text())
        (tmp_path / "b" / MANIFEST_FILE).write_text(json.dumps({**data, "model_info": info}))
        bundle = load_bundle(tmp_path / "b")
        assert bundle.model.classes == ["high", "low", "mid"]
        np.testing.assert_array_equal(bundle.predict(X), model.predict(X.to_numpy()))
        np.testing.assert_allclose(bundle.predict_proba(X.to_numpy()), expected, atol=1e-6)


def test_onnx_in_memory_regressor(blobs, tmp_path: Path) -> None:
    X, _ = blobs
    y = X["x0"] * 3 + 1
    model = LinearRegression().fit(X.to_numpy(), y)
    onx = to_onnx(model, X.to_numpy()[:1].astype(np.float32))
    manifest = build_bundle(onx, tmp_path / "b")
    assert manifest.signature.outputs.task == "regression"
    assert manifest.signature.feature_names == [f"f{i}" for i in range(6)]
    bundle = load_bundle(tmp_path / "b")
    # float32 arithmetic inside ONNX Runtime: compare at float32 precision.
    np.testing.assert_allclose(
        bundle.predict(X.to_numpy()), model.predict(X.to_numpy()), rtol=1e-6, atol=1e-5
    )


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_xgboost_file_saved_by_the_user(cancer, tmp_path: Path, suffix: str) -> None:
    X, y = cancer
    model = xgb.XGBClassifier(n_estimators=8, max_depth=3, random_state=0).fit(X, y)
    path = tmp_path / f"model{suffix}"
    model.save_model(path)
    assert detect_flavor(path).name == "xgboost"
    manifest = build_bundle(path, tmp_path / "b", reference=X)
    assert manifest.model_info["model_class"] == "XGBClassifier"
    assert manifest.signature.outputs.classes == [0, 1]
    bundle = load_bundle(tmp_path / "b")
    np.testing.assert_array_equal(bundle.predict(X), model.predict(X))
    np.testing.assert_array_equal(bundle.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(bundle.predict(X.to_numpy()), model.predict(X))


def test_xgboost_booster_objective_decides_the_task(blobs, tmp_path: Path) -> None:
    X, y = blobs
    clf = xgb.XGBClassifier(n_estimators=5, random_state=0).fit(X, y)
    booster_file = tmp_path / "booster.json"
    clf.get_booster().save_model(booster_file)  # no scikit-learn attribute: objective only
    manifest = build_bundle(booster_file, tmp_path / "b")
    assert manifest.signature.outputs.task == "classification"
    bundle = load_bundle(tmp_path / "b")
    np.testing.assert_array_equal(bundle.predict(X), clf.predict(X))
    np.testing.assert_array_equal(bundle.predict_proba(X), clf.predict_proba(X))

    reg = xgb.XGBRegressor(n_estimators=5, random_state=0).fit(X, X["x1"])
    manifest = build_bundle(reg, tmp_path / "r")
    assert manifest.model_info == {"model_class": "XGBRegressor"}
    assert manifest.model_file == "model.ubj"
    bundle = load_bundle(tmp_path / "r")
    np.testing.assert_array_equal(bundle.predict(X), reg.predict(X))


def test_lightgbm_text_file(blobs, tmp_path: Path) -> None:
    X, y = blobs
    model = lgb.LGBMClassifier(n_estimators=10, verbose=-1, random_state=0).fit(X, y)
    path = tmp_path / "model.txt"
    model.booster_.save_model(path)
    assert detect_flavor(path).name == "lightgbm"
    build_bundle(path, tmp_path / "b", reference=X)
    bundle = load_bundle(tmp_path / "b")
    np.testing.assert_array_equal(bundle.predict(X), model.predict(X))
    np.testing.assert_allclose(bundle.predict_proba(X), model.predict_proba(X), rtol=1e-12)
    assert bundle.signature.outputs.classes == [0, 1, 2]


def test_lightgbm_in_memory_keeps_string_classes_and_names(cancer, tmp_path: Path) -> None:
    X, y = cancer
    labels = np.where(y == 1, "benign", "malignant")
    model = lgb.LGBMClassifier(n_estimators=10, verbose=-1, random_state=0).fit(X, labels)
    manifest = build_bundle(model, tmp_path / "b", reference=X)
    assert manifest.signature.feature_names == list(X.columns)  # spaces kept
    assert manifest.signature.outputs.classes == ["benign", "malignant"]
    bundle = load_bundle(tmp_path / "b")
    np.testing.assert_array_equal(bundle.predict(X), model.predict(X))
    np.testing.assert_allclose(bundle.predict_proba(X), model.predict_proba(X), rtol=1e-12)

    reg = lgb.LGBMRegressor(n_estimators=10, verbose=-1, random_state=0).fit(X, y * 1.5)
    build_bundle(reg, tmp_path / "r")
    np.testing.assert_array_equal(load_bundle(tmp_path / "r").predict(X), reg.predict(X))


def test_unknown_flavor_lists_supported(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x00\x01 definitely not a model")
    with pytest.raises(UnknownFlavorError, match="supported flavors: sklearn, onnx") as err:
        build_bundle(path, tmp_path / "b")
    assert err.value.detail["supported"] == ["sklearn", "onnx", "xgboost", "lightgbm", "mlflow"]
    assert not (tmp_path / "b").exists()
    with pytest.raises(UnknownFlavorError, match="unknown flavor 'torch'"):
        build_bundle(path, tmp_path / "b", flavor="torch")
    with pytest.raises(UnknownFlavorError, match="cannot save a"):
        build_bundle(object(), tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]
