"""The one small protocol every model flavor implements, and the loaded-bundle object.

A flavor plugin (scikit-learn, ONNX, XGBoost, LightGBM, MLflow) turns a model file into a
:class:`LoadedModel`. Callers hold nothing flavor-specific: they call ``predict`` (and
``predict_proba`` when ``has_proba``) on a pandas DataFrame whose columns are the
signature's inputs in signature order, or on a 2-D NumPy array in that order when every
input is numeric (the serving hot path uses arrays: cheaper than building a frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    from vigil.bundle.signature import Signature
    from vigil.profile_schema import BaselineProfile

    Table = pd.DataFrame | npt.NDArray[Any]


@runtime_checkable
class LoadedModel(Protocol):
    """A model ready to predict."""

    flavor: str

    @property
    def has_proba(self) -> bool: ...

    def predict(self, X: Table) -> np.ndarray[Any, Any]:
        """One prediction per row (1-D array)."""
        ...

    def predict_proba(self, X: Table) -> np.ndarray[Any, Any]:
        """Class probabilities, shape ``(rows, classes)``, in ``signature.outputs.classes``
        order. Raises :class:`NotImplementedError` when ``has_proba`` is false."""
        ...


@dataclass
class LoadedBundle:
    """A bundle loaded from disk: the model plus everything registered with it."""

    model: LoadedModel
    signature: Signature
    profile: BaselineProfile | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    version: int | None = None

    def predict(self, X: Table) -> np.ndarray[Any, Any]:
        return self.model.predict(X)

    def predict_proba(self, X: Table) -> np.ndarray[Any, Any]:
        return self.model.predict_proba(X)
