"""The small protocol every flavor plugin implements, and helpers they share.

A flavor knows one model format: how to recognise a file of it (``detect``), an in-memory
model object of it (``accepts``), how to write such an object in its safe native format
(``save``), what a file needs trusted before it loads (``required_trust``), how to load it
into a :class:`~vigil.bundle.model.LoadedModel` (``load``), and what the model itself
knows of its inputs and outputs (``infer_signature``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from vigil.bundle.signature import FeatureSpec, FeatureType, OutputSpec, Signature
from vigil.errors import BundleError

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    from vigil.bundle.model import LoadedModel
    from vigil.bundle.trust import TrustPolicy


class InputTypesUnknownError(BundleError):
    """The model records its inputs' names but not (all) their types.

    Raised by :meth:`Flavor.infer_signature`; ``signature`` holds what the model does
    know (every input's name in order, the outputs; unknown types are placeholders), so
    reference data or an explicit signature can supply the types instead. Without either,
    registration is refused with this message: a guessed type would make the model
    unusable (a string column read as a number refuses every real request).
    """

    code = "input_types_unknown"

    def __init__(self, signature: Signature, unknown: dict[str, str]) -> None:
        columns = list(unknown)
        shown = ", ".join(repr(c) for c in columns[:10]) + (", ..." if len(columns) > 10 else "")
        reasons = "; ".join(sorted(set(unknown.values())))
        super().__init__(
            f"cannot tell the type of the model's input(s) {shown}: {reasons}. Register it "
            "with reference data (`vigil register ... --reference FILE`, or reference= in "
            "Python) or with an explicit signature (signature=...), so vigil never guesses",
            detail={"columns": columns, "reasons": unknown},
        )
        self.signature = signature


class Flavor(Protocol):
    """One model format."""

    name: str

    def detect(self, path: Path) -> bool:
        """Whether ``path`` (a file or directory) holds a model of this flavor."""
        ...

    def accepts(self, obj: object) -> bool:
        """Whether ``obj`` is an in-memory model this flavor can save."""
        ...

    def save(self, obj: Any, dest_dir: Path) -> str:
        """Write ``obj`` into ``dest_dir`` in the safe native format; return the file name."""
        ...

    def model_info(self, obj: Any) -> dict[str, Any]:
        """Facts the native file loses, from an in-memory ``obj`` or a model this flavor
        loaded; recorded in the manifest and handed back to :meth:`load`."""
        ...

    def required_trust(self, model_path: Path, *, trust: TrustPolicy | None = None) -> TrustPolicy:
        """The least trust policy under which ``model_path`` loads (information only);
        reading the file stays within ``trust``'s unpacking limit."""
        ...

    def load(
        self, model_path: Path, *, trust: TrustPolicy, model_info: Mapping[str, Any] | None = None
    ) -> LoadedModel:
        """Load ``model_path`` under the caller's ``trust`` policy.

        ``model_info`` is what :meth:`model_info` recorded in the manifest, if anything.
        """
        ...

    def infer_signature(self, model: LoadedModel) -> Signature | None:
        """The signature the loaded model knows of itself, or None when it knows nothing;
        :class:`InputTypesUnknownError` when it knows its inputs' names but not all their
        types (never guess a type)."""
        ...

    def versions(self) -> dict[str, str]:
        """Versions of the libraries this flavor loads with (recorded in the manifest)."""
        ...


def read_head(path: Path, size: int = 4096) -> bytes:
    """The first ``size`` bytes of a file (empty for a directory or unreadable file)."""
    if not path.is_file():
        return b""
    with path.open("rb") as fh:
        return fh.read(size)


def mro_modules(obj: object) -> set[str]:
    """Top-level package names of ``obj``'s type and its bases (no import needed)."""
    return {cls.__module__.split(".")[0] for cls in type(obj).__mro__}


def default_feature_names(n: int) -> list[str]:
    """Names for a model that knows how many inputs it takes but not their names."""
    return [f"f{i}" for i in range(n)]


def numeric_inputs(names: list[str], dtype: FeatureType = "float64") -> list[FeatureSpec]:
    return [FeatureSpec(name=n, dtype=dtype) for n in names]


def output_dtype(values: npt.NDArray[Any]) -> str:
    """The signature's name for the dtype of a model's predictions."""
    kind = np.asarray(values).dtype.kind
    return {"i": "int64", "u": "int64", "f": "float64", "b": "bool"}.get(kind, "string")


def python_values(values: Any) -> list[Any]:
    """Plain Python scalars (JSON-friendly) from an array of labels."""
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values).tolist()]


def as_matrix(X: pd.DataFrame | npt.NDArray[Any], dtype: Any = None) -> npt.NDArray[Any]:
    """A 2-D array from a frame (columns in their given order) or an array."""
    # No frame exists unless pandas was imported: don't import it (a server start would pay).
    pd = sys.modules.get("pandas")
    arr: npt.NDArray[Any]
    if pd is not None and isinstance(X, pd.DataFrame):
        arr = X.to_numpy(dtype=dtype)
    else:
        arr = np.asarray(X, dtype=dtype)
    if arr.ndim != 2:
        from vigil.errors import ValidationError

        raise ValidationError(f"expected a 2-D table of rows, got an array of shape {arr.shape}")
    return arr


def as_frame(X: pd.DataFrame | npt.NDArray[Any], names: list[str]) -> pd.DataFrame:
    """A frame with ``names`` as columns (selected by name, or given to a bare array)."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        return X if list(X.columns) == names else X[names]
    return pd.DataFrame(as_matrix(X), columns=names, copy=False)


def path_inside(root: Path, name: Any, *, what: str) -> Path:
    """``name`` (from a file such as ``MLmodel``) resolved inside ``root``.

    A missing name, a path escaping ``root`` (``../``, absolute, or through a symlink) or a
    path that does not exist is refused: a model directory must not point elsewhere.
    """
    from vigil.errors import BundleError

    if not isinstance(name, str) or not name:
        raise BundleError(f"{what} names no model file (got {name!r})")
    base = root.resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        raise BundleError(f"{what} points outside its directory: {name!r}")
    if not path.exists():
        raise BundleError(f"{what} names {name!r}, which is not in the directory")
    return path


def booster_outputs(classes: list[Any] | None, *, is_classifier: bool) -> OutputSpec:
    """The outputs of a native booster (XGBoost, LightGBM) once its wrapper kind is known:
    class labels with probabilities for a classifier, a float for a regressor."""
    if not is_classifier:
        return OutputSpec(task="regression", dtype="float64")
    labels = list(classes or [])
    return OutputSpec(
        task="classification",
        dtype="int64" if all(isinstance(c, int) for c in labels) else "string",
        classes=labels,
        has_proba=True,
    )
