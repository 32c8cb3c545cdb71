"""Registry of model flavors: name -> plugin, imported only when needed.

>>> supported_flavors()
['sklearn', 'onnx', 'xgboost', 'lightgbm', 'mlflow']
>>> get_flavor("sklearn").name
'sklearn'
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from vigil.errors import UnknownFlavorError

if TYPE_CHECKING:
    from vigil.bundle.flavors.base import Flavor

# Detection order matters: an MLflow directory is recognised before the files inside it.
_MODULES: dict[str, str] = {
    "sklearn": "vigil.bundle.flavors.sklearn",
    "onnx": "vigil.bundle.flavors.onnx",
    "xgboost": "vigil.bundle.flavors.xgboost",
    "lightgbm": "vigil.bundle.flavors.lightgbm",
    "mlflow": "vigil.bundle.flavors.mlflow",
}
_DETECT_ORDER = ("mlflow", "onnx", "xgboost", "lightgbm", "sklearn")
# The gradient-boosting wrappers subclass scikit-learn's BaseEstimator: ask them first.
_ACCEPT_ORDER = ("xgboost", "lightgbm", "onnx", "sklearn")


def supported_flavors() -> list[str]:
    """Names of every flavor vigil can load."""
    return list(_MODULES)


def get_flavor(name: str) -> Flavor:
    """The plugin for ``name``; :class:`~vigil.errors.UnknownFlavorError` if there is none."""
    module = _MODULES.get(name)
    if module is None:
        raise UnknownFlavorError(
            f"unknown flavor {name!r}; supported flavors: {', '.join(_MODULES)}",
            detail={"flavor": name, "supported": list(_MODULES)},
        )
    plugin: Flavor = importlib.import_module(module).flavor
    return plugin


def detect_flavor(path: str | Path, flavor: str | None = None) -> Flavor:
    """The flavor of the model file or directory at ``path`` (``flavor`` overrides detection)."""
    if flavor is not None:
        return get_flavor(flavor)
    p = Path(path)
    for name in _DETECT_ORDER:
        plugin = get_flavor(name)
        if plugin.detect(p):
            return plugin
    raise UnknownFlavorError(
        f"cannot tell the flavor of {p.name!r}; supported flavors: {', '.join(_MODULES)} "
        "(files: .skops, .pkl/.joblib with --trust-pickle, .onnx, XGBoost .json/.ubj, "
        "LightGBM text model, MLflow model directory); pass flavor=... to say which",
        detail={"path": p.name, "supported": list(_MODULES)},
    )


def flavor_for_object(obj: object, flavor: str | None = None) -> Flavor:
    """The flavor that can save the in-memory model ``obj``."""
    if flavor is not None:
        plugin = get_flavor(flavor)
        if not plugin.accepts(obj):
            raise UnknownFlavorError(
                f"the {flavor} flavor cannot save a {type(obj).__name__}",
                detail={"flavor": flavor, "type": type(obj).__name__},
            )
        return plugin
    for name in _ACCEPT_ORDER:
        plugin = get_flavor(name)
        if plugin.accepts(obj):
            return plugin
    raise UnknownFlavorError(
        f"vigil cannot save a {type(obj).__module__}.{type(obj).__name__}; supported "
        f"in-memory models: scikit-learn estimators and pipelines, XGBoost and LightGBM "
        f"models, ONNX ModelProto (flavors: {', '.join(_MODULES)})",
        detail={"type": type(obj).__name__, "supported": list(_MODULES)},
    )
