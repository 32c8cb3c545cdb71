"""XGBoost models in XGBoost's own JSON / UBJSON formats.

The native file keeps the booster, not the scikit-learn wrapper around it, so the wrapper
class (and the classes of a classifier) are recorded in the manifest when vigil saves an
in-memory model. A file a user saved with ``XGBClassifier.save_model`` also loads: the
wrapper type then comes from the file's ``scikit_learn`` attribute or, failing that, from
``learner.objective`` (``binary:logistic`` / ``multi:softprob`` are classifiers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.bundle.flavors.base import (
    as_frame,
    as_matrix,
    booster_outputs,
    default_feature_names,
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

MODEL_FILE = "model.ubj"
CLASSIFIER_OBJECTIVES = ("binary:logistic", "multi:softprob")


class XGBoostModel:
    """A scikit-learn-style XGBoost model rebuilt from its native file."""

    flavor = "xgboost"

    def __init__(self, wrapper: Any, model_class: str, classes: list[Any] | None) -> None:
        self.wrapper = wrapper
        self.model_class = model_class
        self.is_classifier = model_class == "XGBClassifier"
        booster = wrapper.get_booster()
        self.feature_names: list[str] = booster.feature_names or default_feature_names(
            booster.num_features()
        )
        types = booster.feature_types or []
        # Categorical inputs need a frame with category dtype; numeric ones go as an array.
        self._needs_frame = "c" in types
        self.feature_types: list[str] = list(types)
        self.classes = classes

    @property
    def has_proba(self) -> bool:
        return self.is_classifier

    def _prepare(self, X: pd.DataFrame | npt.NDArray[Any]) -> Any:
        if self._needs_frame:
            return as_frame(X, self.feature_names)
        return as_matrix(X)

    def predict(self, X: pd.DataFrame | npt.NDArray[Any]) -> np.ndarray[Any, Any]:
        out = np.asarray(self.wrapper.predict(self._prepare(X)))
        if self.is_classifier and self.classes is not None:
            # The booster predicts class indexes; the wrapper's classes map them back.
            out = np.asarray(self.classes)[out.astype(np.intp)]
        return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out

    def predict_proba(self, X: pd.DataFrame | npt.NDArray[Any]) -> np.ndarray[Any, Any]:
        if not self.is_classifier:
            raise NotImplementedError(f"an {self.model_class} has no predict_proba")
        return np.asarray(self.wrapper.predict_proba(self._prepare(X)))


def _wrapper_class(booster: Any, info: dict[str, Any]) -> str:
    """XGBClassifier or XGBRegressor, from the manifest, the file's attribute or objective."""
    declared = str(info.get("model_class") or "").rsplit(".", 1)[-1]
    if declared in ("XGBClassifier", "XGBRegressor"):
        return declared
    attr = booster.attr("scikit_learn")
    if attr:
        kind = json.loads(attr).get("_estimator_type")
        if kind in ("classifier", "regressor"):
            return "XGBClassifier" if kind == "classifier" else "XGBRegressor"
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    return "XGBClassifier" if objective in CLASSIFIER_OBJECTIVES else "XGBRegressor"


class XGBoostFlavor:
    """The ``xgboost`` flavor plugin."""

    name = "xgboost"

    def detect(self, path: Path) -> bool:
        if path.suffix.lower() not in (".json", ".ubj", ".xgb"):
            return False
        head = read_head(path, 64)
        return head.startswith(b"{") and b"learner" in head

    def accepts(self, obj: object) -> bool:
        return "xgboost" in mro_modules(obj) and hasattr(obj, "save_model")

    def save(self, obj: Any, dest_dir: Path) -> str:
        obj.save_model(str(dest_dir / MODEL_FILE))
        return MODEL_FILE

    def model_info(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, XGBoostModel):
            loaded: dict[str, Any] = {"model_class": obj.model_class}
            if obj.classes is not None:
                loaded["classes"] = obj.classes
            return loaded
        name = type(obj).__name__
        info: dict[str, Any] = {"model_class": name}
        if name == "XGBClassifier":
            info["classes"] = python_values(obj.classes_)
        return info

    def required_trust(self, model_path: Path, *, trust: TrustPolicy | None = None) -> TrustPolicy:
        return TrustPolicy()

    def load(
        self, model_path: Path, *, trust: TrustPolicy, model_info: Mapping[str, Any] | None = None
    ) -> XGBoostModel:
        xgb = require("xgboost", "xgboost")
        info = dict(model_info or {})
        return load_xgboost(xgb, model_path, info)

    def infer_signature(self, model: LoadedModel) -> Signature | None:
        if not isinstance(model, XGBoostModel):
            return None
        inputs = [
            FeatureSpec(name=n, dtype="category" if t == "c" else "float64")
            for n, t in zip(
                model.feature_names,
                model.feature_types or ["float"] * len(model.feature_names),
                strict=True,
            )
        ]
        outputs = booster_outputs(model.classes, is_classifier=model.is_classifier)
        return Signature(inputs=inputs, outputs=outputs)

    def versions(self) -> dict[str, str]:
        import xgboost

        return {"xgboost": xgboost.__version__}


def load_xgboost(xgb: Any, model_path: Path, info: dict[str, Any]) -> XGBoostModel:
    """Rebuild the scikit-learn wrapper around the booster stored at ``model_path``."""
    try:
        booster = xgb.Booster(model_file=str(model_path))
    except Exception as exc:
        raise BundleError(f"{model_path.name} is not a readable XGBoost model: {exc}") from exc
    model_class = _wrapper_class(booster, info)
    wrapper = getattr(xgb, model_class)()
    wrapper.load_model(str(model_path))
    classes: list[Any] | None = None
    if model_class == "XGBClassifier":
        classes = list(info["classes"]) if info.get("classes") else python_values(wrapper.classes_)
    return XGBoostModel(wrapper, model_class, classes)


flavor = XGBoostFlavor()
