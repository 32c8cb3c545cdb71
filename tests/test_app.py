"""The composition root end to end: register a model with its reference, load it back."""

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from vigil.app import Vigil
from vigil.bundle.trust import TrustPolicy
from vigil.errors import InvalidNameError, ReferenceDataError, UntrustedModelError
from vigil.settings import load_settings


@pytest.fixture
def data() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = make_classification(n_samples=300, n_features=5, random_state=0)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(5)]), y


@pytest.fixture
def v(vigil_home: Path) -> Vigil:
    return Vigil(load_settings())


def _store_is_empty(v: Vigil) -> bool:
    root = Path(v.settings.resolved_artifact_url) / "bundles"
    return not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def test_register_object_and_load_by_alias(v: Vigil, data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    model = LogisticRegression(max_iter=500).fit(X, y)
    mv = v.register(
        model,
        name="clf",
        reference=X.assign(label=y),
        target="label",
        alias="production",
        metrics={"auc": 0.9},
    )
    assert (mv.name, mv.version, mv.flavor) == ("clf", 1, "sklearn")
    assert mv.metrics == {"auc": 0.9}
    assert mv.signature["inputs"][0]["name"] == "f0"
    assert mv.lineage["source"].startswith("<in-memory sklearn")
    bundle = v.load("models:/clf@production")
    np.testing.assert_array_equal(bundle.predict(X), model.predict(X))
    np.testing.assert_allclose(bundle.predict_proba(X), model.predict_proba(X))
    assert bundle.profile is not None and bundle.profile.n_rows == 300
    assert bundle.profile.target is not None  # the label column is profiled, not a feature
    assert "label" not in bundle.profile.features
    assert (bundle.name, bundle.version) == ("clf", 1)


def test_trusted_types_are_recorded_at_registration(
    v: Vigil, data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = data
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    path = tmp_path / "forest.skops"
    sio.dump(forest, path)
    with pytest.raises(UntrustedModelError, match=r"sklearn\.tree\._tree\.Tree"):
        v.register(str(path), name="forest", reference=X)
    assert v.registry.list_models() == []
    assert _store_is_empty(v)
    needed = tuple(sio.get_untrusted_types(file=path))
    mv = v.register(str(path), name="forest", reference=X, trust=TrustPolicy(trusted_types=needed))
    assert mv.lineage["trust"]["types"] == sorted(needed)
    assert mv.lineage["source_sha256"] is not None
    # Loading later needs no flags: the approval is bound to this version's digest.
    np.testing.assert_array_equal(v.load("models:/forest/1").predict(X), forest.predict(X))


def test_pickle_needs_explicit_trust_and_nothing_is_left_behind(
    v: Vigil, data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = data
    path = tmp_path / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), path)
    with pytest.raises(UntrustedModelError, match="--trust-pickle"):
        v.register(str(path), name="pickled", reference=X)
    assert v.registry.list_models() == []
    assert _store_is_empty(v)
    assert not any((v.settings.home / "tmp").iterdir())
    mv = v.register(str(path), name="pickled", reference=X, trust=TrustPolicy(trust_pickle=True))
    assert mv.lineage["trust"]["pickle"] is True


def test_missing_reference_column_is_refused(
    v: Vigil, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = data
    model = LogisticRegression(max_iter=500).fit(X, y)
    with pytest.raises(ReferenceDataError, match="f3"):
        v.register(model, name="clf", reference=X.drop(columns=["f3"]))
    assert v.registry.list_models() == []
    assert _store_is_empty(v)


@pytest.mark.parametrize("bad", ["../escape", "a/b", "a\\b", "x\x00y"])
def test_bad_names_are_refused_before_any_work(
    v: Vigil, bad: str, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = data
    with pytest.raises(InvalidNameError):
        v.register(LogisticRegression().fit(X, y), name=bad)
    with pytest.raises(InvalidNameError):
        v.register(LogisticRegression().fit(X, y), name="ok", alias="latest")
    assert v.registry.list_models() == []


def test_python_api_uses_the_environment(
    vigil_home: Path, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    import vigil
    from vigil.app import reset_default

    reset_default()
    X, y = data
    model = LogisticRegression(max_iter=500).fit(X, y)
    mv = vigil.register(model, name="api", reference=X, alias="production")
    assert mv.version == 1
    assert (vigil_home / "vigil.db").is_file()
    np.testing.assert_array_equal(vigil.load("models:/api@production").predict(X), model.predict(X))
    reset_default()
