"""vigil: take a trained model to production and keep watch over it.

>>> import vigil
>>> vigil.__version__
'0.1.0'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vigil.version import VERSION as __version__

if TYPE_CHECKING:
    from vigil.bundle.model import LoadedBundle
    from vigil.registry.registry import ModelVersion

__all__ = ["__version__", "load", "register"]


def register(model: Any, *, name: str, **kwargs: Any) -> ModelVersion:
    """Register ``model`` (estimator object, model file or MLflow directory) as a new version.

    Keyword arguments as :meth:`vigil.app.Vigil.register`: ``reference``, ``target``,
    ``alias``, ``tags``, ``metrics``, ``description``, ``flavor``, ``trust``, ``card``
    (the model card's ``purpose``, ``owner``, ``intended_use``, ``limitations``).
    """
    from vigil.app import default  # importing vigil (or vigil.errors) must not build the app

    return default().register(model, name=name, **kwargs)


def load(uri: str, **kwargs: Any) -> LoadedBundle:
    """Load a registered version, e.g. ``vigil.load("models:/churn@production")``."""
    from vigil.app import default  # importing vigil (or vigil.errors) must not build the app

    return default().load(uri, **kwargs)
