"""Registry of model flavors: name -> plugin, imported only when needed.

Every flavor is registered the same way, by the import string of an object implementing
:class:`~vigil.bundle.flavors.base.Flavor` (``"package.module:attribute"``): vigil's own
below, with :func:`register_flavor`, and a third party's through the ``vigil.flavors``
entry-point group of its distribution, as MLServer finds its runtimes::

    [project.entry-points."vigil.flavors"]
    catboost = "vigil_catboost:flavor"

The entry points are read only when a name is not one of vigil's own (or when every
flavor is listed or tried), so loading a built-in flavor's model never scans the
installed distributions. vigil's own flavors are tried first when detecting a file or
accepting an object, and a plugin cannot take a built-in name.

>>> supported_flavors()[:5]
['sklearn', 'onnx', 'xgboost', 'lightgbm', 'mlflow']
>>> get_flavor("sklearn").name
'sklearn'
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from vigil.errors import ConfigurationError, UnknownFlavorError

if TYPE_CHECKING:
    from vigil.bundle.flavors.base import Flavor

__all__ = [
    "ENTRY_POINT_GROUP",
    "detect_flavor",
    "flavor_for_object",
    "get_flavor",
    "register_flavor",
    "supported_flavors",
]

log = logging.getLogger("vigil.bundle")

ENTRY_POINT_GROUP = "vigil.flavors"
"""The entry-point group third-party flavors are registered in."""

_BUILT_IN: dict[str, str] = {}
"""Name → import string of vigil's own flavors, in registration order."""
# Detection order matters: an MLflow directory is recognised before the files inside it.
_DETECT_ORDER = ("mlflow", "onnx", "xgboost", "lightgbm", "sklearn")
# The gradient-boosting wrappers subclass scikit-learn's BaseEstimator: ask them first.
_ACCEPT_ORDER = ("xgboost", "lightgbm", "onnx", "sklearn")


def register_flavor(name: str, target: str) -> None:
    """Register the flavor ``name`` as the object the import string ``target`` names
    (``"package.module:attribute"``), imported on first use."""
    _BUILT_IN[name] = target


register_flavor("sklearn", "vigil.bundle.flavors.sklearn:flavor")
register_flavor("onnx", "vigil.bundle.flavors.onnx:flavor")
register_flavor("xgboost", "vigil.bundle.flavors.xgboost:flavor")
register_flavor("lightgbm", "vigil.bundle.flavors.lightgbm:flavor")
register_flavor("mlflow", "vigil.bundle.flavors.mlflow:flavor")


def _plugins() -> dict[str, str]:
    """Name → import string of the flavors other distributions register (a built-in name
    is skipped, with a warning)."""
    # Here: importlib.metadata costs a serving worker's start, which loads built-ins only.
    from importlib.metadata import entry_points

    found: dict[str, str] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in _BUILT_IN:
            log.warning("flavor plugin %s ignored: %r is a built-in flavor", ep.value, ep.name)
            continue
        found.setdefault(ep.name, ep.value)
    return found


def _registered() -> dict[str, str]:
    return {**_BUILT_IN, **_plugins()}


def _load(name: str, target: str) -> Flavor:
    module_name, _, attribute = target.partition(":")
    try:
        plugin: Flavor = getattr(importlib.import_module(module_name), attribute or "flavor")
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"the flavor {name!r} cannot be loaded from {target!r} ({exc}); reinstall the "
            "package that provides it",
            detail={"flavor": name},
        ) from exc
    return plugin


def supported_flavors() -> list[str]:
    """Names of every flavor vigil can load: its own, then the plugins'."""
    return list(_registered())


def get_flavor(name: str) -> Flavor:
    """The plugin for ``name``; :class:`~vigil.errors.UnknownFlavorError` if there is none."""
    target = _BUILT_IN.get(name)
    if target is None:
        registered = _registered()
        target = registered.get(name)
        if target is None:
            raise UnknownFlavorError(
                f"unknown flavor {name!r}; supported flavors: {', '.join(registered)}",
                detail={"flavor": name, "supported": list(registered)},
            )
    return _load(name, target)


def _in_order(first: tuple[str, ...]) -> list[str]:
    """Built-in flavors in the order ``first`` gives, then every plugin."""
    return [*first, *_plugins()]


def detect_flavor(path: str | Path, flavor: str | None = None) -> Flavor:
    """The flavor of the model file or directory at ``path`` (``flavor`` overrides detection)."""
    if flavor is not None:
        return get_flavor(flavor)
    p = Path(path)
    for name in _in_order(_DETECT_ORDER):
        plugin = get_flavor(name)
        if plugin.detect(p):
            return plugin
    names = supported_flavors()
    raise UnknownFlavorError(
        f"cannot tell the flavor of {p.name!r}; supported flavors: {', '.join(names)} "
        "(files: .skops, .pkl/.joblib with --trust-pickle, .onnx, XGBoost .json/.ubj, "
        "LightGBM text model, MLflow model directory); pass flavor=... to say which",
        detail={"path": p.name, "supported": names},
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
    for name in _in_order(_ACCEPT_ORDER):
        plugin = get_flavor(name)
        if plugin.accepts(obj):
            return plugin
    names = supported_flavors()
    raise UnknownFlavorError(
        f"vigil cannot save a {type(obj).__module__}.{type(obj).__name__}; supported "
        f"in-memory models: scikit-learn estimators and pipelines, XGBoost and LightGBM "
        f"models, ONNX ModelProto (flavors: {', '.join(names)})",
        detail={"type": type(obj).__name__, "supported": names},
    )
