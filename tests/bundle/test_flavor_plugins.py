"""A third-party flavor, installed as a distribution with a ``vigil.flavors`` entry point,
is found, registered and served like vigil's own: detected from its file, packaged into a
bundle, loaded back by name.

The distribution is real metadata on ``sys.path`` (a ``*.dist-info`` directory with an
``entry_points.txt``), read by :mod:`importlib.metadata` as ``pip install`` would leave it.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil.app import Vigil
from vigil.bundle.bundle import build_bundle, load_bundle
from vigil.bundle.flavors import ENTRY_POINT_GROUP, get_flavor, supported_flavors
from vigil.errors import ConfigurationError, UnknownFlavorError
from vigil.settings import load_settings

# A linear classifier stored as JSON in a ``.linear`` file: the smallest complete flavor.
PLUGIN = """
import json
from pathlib import Path

import numpy as np

from vigil.bundle.signature import FeatureSpec, OutputSpec, Signature
from vigil.bundle.trust import TrustPolicy


class LinearModel:
    flavor = "linear"
    has_proba = False

    def __init__(self, weights):
        self.weights = np.asarray(weights, dtype=float)

    def predict(self, X):
        return (np.asarray(X, dtype=float) @ self.weights > 0).astype(np.int64)

    def predict_proba(self, X):
        raise NotImplementedError


class LinearFlavor:
    name = "linear"

    def detect(self, path):
        return path.suffix == ".linear"

    def accepts(self, obj):
        return isinstance(obj, LinearModel)

    def save(self, obj, dest_dir):
        (Path(dest_dir) / "model.linear").write_text(json.dumps(obj.weights.tolist()))
        return "model.linear"

    def model_info(self, obj):
        return {"weights": len(obj.weights)}

    def required_trust(self, model_path, *, trust=None):
        return TrustPolicy()

    def load(self, model_path, *, trust, model_info=None):
        return LinearModel(json.loads(Path(model_path).read_text()))

    def infer_signature(self, model):
        return Signature(
            inputs=[FeatureSpec(name=f"x{i}", dtype="float64") for i in range(len(model.weights))],
            outputs=OutputSpec(task="classification", dtype="int64", classes=[0, 1]),
        )

    def versions(self):
        return {"linear": "1.0"}


flavor = LinearFlavor()
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The distribution ``vigil-linear`` on ``sys.path``, registering flavor ``linear``."""
    module = f"vigil_linear_{tmp_path.name.replace('-', '_')}"
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{module}.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "vigil_linear-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vigil-linear\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nlinear = {module}:flavor\n")
    monkeypatch.syspath_prepend(str(site))
    yield module
    sys.modules.pop(module, None)


def test_an_entry_point_flavor_is_listed_after_the_built_in_ones(installed: str) -> None:
    assert supported_flavors() == ["sklearn", "onnx", "xgboost", "lightgbm", "mlflow", "linear"]
    assert get_flavor("linear").name == "linear"


def test_a_plugin_model_is_detected_registered_loaded_and_served(
    installed: str, tmp_path: Path
) -> None:
    model_file = tmp_path / "churn.linear"
    model_file.write_text("[1.0, -2.0]")
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(rng.normal(size=(50, 2)), columns=["x0", "x1"])
    expected = (rows["x0"] - 2 * rows["x1"] > 0).astype(np.int64).to_numpy()

    # Packaged and loaded back by the bundle machinery, the flavor found from the file.
    manifest = build_bundle(model_file, tmp_path / "bundle", reference=rows)
    assert (manifest.flavor, manifest.signature.feature_names) == ("linear", ["x0", "x1"])
    np.testing.assert_array_equal(load_bundle(tmp_path / "bundle").predict(rows), expected)

    # Registered and loaded by name through the registry, as a server loads it.
    vigil = Vigil(load_settings(home=tmp_path / "home"))
    version = vigil.register(str(model_file), name="churn", reference=rows)
    assert version.flavor == "linear"
    loaded = vigil.load("models:/churn/1")
    np.testing.assert_array_equal(loaded.predict(rows.to_numpy()), expected)


def test_without_the_distribution_the_flavor_is_unknown() -> None:
    with pytest.raises(UnknownFlavorError, match="unknown flavor 'linear'"):
        get_flavor("linear")


def test_a_plugin_whose_module_is_gone_fails_with_what_to_do(
    installed: str, tmp_path: Path
) -> None:
    (tmp_path / "site" / f"{installed}.py").unlink()
    with pytest.raises(ConfigurationError, match="reinstall the package that provides it"):
        get_flavor("linear")
