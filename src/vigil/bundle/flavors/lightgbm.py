"""LightGBM models in LightGBM's own text format (a file whose first line is ``tree``).

Predictions go through the native ``Booster`` with scikit-learn semantics: for a
classifier, ``predict`` gives class labels (the wrapper's ``classes_``, recorded in the
manifest when vigil saved the model, else ``0..k-1``) and ``predict_proba`` probabilities;
the kind of model comes from the objective (``binary``, ``multiclass``... are classifiers).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.bundle.flavors.base import (
    as_matrix,
    booster_outputs,
    mro_modules,
    python_values,
    read_head,
)
from vigil.bundle.signature import FeatureSpec, Signature
from vigil.bundle.trust import TrustPolicy
from vigil.errors import BundleError, require

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    from vigil.bundle.model import LoadedModel

MODEL_FILE = "model.txt"
_BINARY = ("binary", "cross_entropy", "xentropy")
_MULTICLASS = ("multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr")


class LightGBMModel:
    """A LightGBM booster with scikit-learn ``predict`` / ``predict_proba`` semantics."""

    flavor = "lightgbm"

    def __init__(self, booster: Any, feature_names: list[str], classes: list[Any] | None) -> None:
        self.booster = booster
        self.feature_names = feature_names
        objective = str(booster.params.get("objective", "regression")).split()[0]
        self.objective = objective
        self.kind = (
            "binary" if objective in _BINARY else "multiclass" if objective in _MULTICLASS else ""
        )
        if self.kind and classes is None:
            n = 2 if self.kind == "binary" else int(booster.params.get("num_class", 2))
            classes = list(range(n))
        self.classes = classes if self.kind else None
        self._labels = np.asarray(self.classes) if self.classes is not None else None

    @property
    def has_proba(self) -> bool:
        return bool(self.kind)

    def _raw(self, X: pd.DataFrame | npt.NDArray[Any]) -> np.ndarray[Any, Any]:
        return np.asarray(self.booster.predict(as_matrix(X, dtype=np.float64)))

    def predict(self, X: pd.DataFrame | npt.NDArray[Any]) -> np.ndarray[Any, Any]:
        if not self.kind:
            return self._raw(X)
        assert self._labels is not None
        labels: np.ndarray[Any, Any] = self._labels[self.predict_proba(X).argmax(axis=1)]
        return labels

    def predict_proba(self, X: pd.DataFrame | npt.NDArray[Any]) -> np.ndarray[Any, Any]:
        if not self.kind:
            raise NotImplementedError(f"a LightGBM {self.objective} model has no predict_proba")
        p = self._raw(X)
        return np.column_stack([1.0 - p, p]) if self.kind == "binary" else p


class LightGBMFlavor:
    """The ``lightgbm`` flavor plugin."""

    name = "lightgbm"

    def detect(self, path: Path) -> bool:
        return path.suffix.lower() != ".json" and read_head(path, 5).rstrip(b"\r\n") == b"tree"

    def accepts(self, obj: object) -> bool:
        return "lightgbm" in mro_modules(obj) and (
            hasattr(obj, "booster_") or hasattr(obj, "save_model")
        )

    def save(self, obj: Any, dest_dir: Path) -> str:
        booster = obj.booster_ if hasattr(obj, "booster_") else obj
        booster.save_model(str(dest_dir / MODEL_FILE))
        return MODEL_FILE

    def model_info(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, LightGBMModel):
            loaded: dict[str, Any] = {
                "objective": obj.objective,
                "feature_names": obj.feature_names,
            }
            if obj.classes is not None:
                loaded["classes"] = obj.classes
            return loaded
        info: dict[str, Any] = {"model_class": type(obj).__name__}
        names = getattr(obj, "feature_names_in_", None)
        if names is not None:
            # LightGBM rewrites names in its file (spaces become underscores): keep the real ones.
            info["feature_names"] = [str(n) for n in names]
        classes = getattr(obj, "classes_", None)
        if classes is not None:
            info["classes"] = python_values(classes)
        return info

    def required_trust(self, model_path: Path, *, trust: TrustPolicy | None = None) -> TrustPolicy:
        return TrustPolicy()

    def load(
        self, model_path: Path, *, trust: TrustPolicy, model_info: Mapping[str, Any] | None = None
    ) -> LightGBMModel:
        lgb = require("lightgbm", "lightgbm")
        info = dict(model_info or {})
        return load_lightgbm(lgb, model_path, info)

    def infer_signature(self, model: LoadedModel) -> Signature | None:
        if not isinstance(model, LightGBMModel):
            return None
        inputs = [FeatureSpec(name=n, dtype="float64") for n in model.feature_names]
        outputs = booster_outputs(model.classes, is_classifier=bool(model.kind))
        return Signature(inputs=inputs, outputs=outputs)

    def versions(self) -> dict[str, str]:
        import lightgbm

        return {"lightgbm": lightgbm.__version__}


def load_lightgbm(lgb: Any, model_path: Path, info: dict[str, Any]) -> LightGBMModel:
    try:
        booster = lgb.Booster(model_file=str(model_path))
    except Exception as exc:
        raise BundleError(f"{model_path.name} is not a readable LightGBM model: {exc}") from exc
    names = list(info.get("feature_names") or booster.feature_name())
    classes = list(info["classes"]) if info.get("classes") else None
    return LightGBMModel(booster, names, classes)


flavor = LightGBMFlavor()
