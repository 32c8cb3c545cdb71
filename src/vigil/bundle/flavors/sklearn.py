"""scikit-learn models: skops files (preferred) and, only when trusted, pickle/joblib.

In-memory estimators (pipelines included) are saved as skops. A skops file may name types
outside skops' safe defaults (e.g. ``sklearn.tree._tree.Tree``): they load only when the
caller's :class:`~vigil.bundle.trust.TrustPolicy` names every one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.bundle.flavors._skops_trust import skops_io
from vigil.bundle.flavors.base import (
    InputTypesUnknownError,
    as_frame,
    as_matrix,
    mro_modules,
    output_dtype,
    python_values,
    read_head,
)
from vigil.bundle.flavors.sklearn_fast import linear_fast_path
from vigil.bundle.signature import OutputSpec, Signature
from vigil.bundle.trust import TrustPolicy
from vigil.errors import BundleError, VigilError

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    from vigil.bundle.model import LoadedModel

SKOPS_SUFFIXES = (".skops",)
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
_ZIP_MAGIC = b"PK\x03\x04"
MODEL_FILE = "model.skops"


class SklearnModel:
    """A scikit-learn estimator behind the :class:`~vigil.bundle.model.LoadedModel` protocol.

    Inputs are handed over the way the estimator was fitted, so scikit-learn never warns
    about feature names: estimators fitted on a frame get a frame (a bare array is wrapped
    with the fitted names, no copy), estimators fitted on an array get an array. A model
    that drops some of the columns it was fitted on (a ``ColumnTransformer`` with
    ``remainder="drop"``) also takes just the columns it reads.
    """

    def __init__(self, estimator: Any, flavor: str = "sklearn") -> None:
        self.flavor = flavor
        self.estimator = estimator
        names = getattr(estimator, "feature_names_in_", None)
        self.feature_names: list[str] | None = (
            [str(n) for n in names] if names is not None else None
        )
        n = getattr(estimator, "n_features_in_", None)
        self.n_features: int | None = int(n) if n is not None else None
        self._has_proba = hasattr(estimator, "predict_proba")
        self._read_names: list[str] | None = None
        self._fast = linear_fast_path(estimator)
        """scikit-learn's arithmetic without its input checks, for the linear models it
        covers (:mod:`.sklearn_fast`); ``None``: every call goes through the estimator."""

    @property
    def has_proba(self) -> bool:
        return self._has_proba

    def _prepare(self, X: pd.DataFrame | npt.NDArray[Any]) -> Any:
        names = self.feature_names
        if names is None:
            return as_matrix(X)
        columns = getattr(X, "columns", None)
        if columns is not None:
            if len(columns) != len(names):  # the columns it reads, in its order
                present = set(columns)
                return X[[n for n in names if n in present]]
            return as_frame(X, names)
        width = np.shape(X)[1] if np.ndim(X) == 2 else None
        if width is not None and width != len(names):
            return as_frame(X, self.read_names)
        return as_frame(X, names)

    @property
    def read_names(self) -> list[str]:
        """The fitted columns the model actually reads, in order."""
        if self._read_names is None:
            from vigil.bundle.flavors.sklearn_inputs import model_inputs

            inputs = model_inputs(self.estimator)
            self._read_names = inputs.names if inputs is not None else self.feature_names or []
        return self._read_names

    def predict(self, X: pd.DataFrame | npt.NDArray[Any]) -> np.ndarray[Any, Any]:
        if self._fast is not None:
            fast = self._fast.predict(X)
            if fast is not None:
                return fast
        out = np.asarray(self.estimator.predict(self._prepare(X)))
        return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out

    def predict_proba(self, X: pd.DataFrame | npt.NDArray[Any]) -> np.ndarray[Any, Any]:
        if not self._has_proba:
            raise NotImplementedError(f"{type(self.estimator).__name__} has no predict_proba")
        if self._fast is not None:
            fast = self._fast.predict_proba(X)
            if fast is not None:
                return fast
        return np.asarray(self.estimator.predict_proba(self._prepare(X)))


def estimator_signature(estimator: Any) -> Signature | None:
    """Inputs from the columns the model reads (names from ``feature_names_in_``, else
    ``f0, f1, ...``; types as :mod:`.sklearn_inputs` finds them); outputs from
    ``classes_``. :class:`InputTypesUnknownError` when a type cannot be known."""
    from sklearn.base import is_classifier, is_regressor

    from vigil.bundle.flavors.sklearn_inputs import model_inputs
    from vigil.bundle.signature import FeatureSpec

    found = model_inputs(estimator)
    if found is None:
        return None
    inputs = [
        found.specs.get(n) or FeatureSpec(name=n, dtype="float64")  # placeholder if unknown
        for n in found.names
    ]
    classes = getattr(estimator, "classes_", None)
    if is_classifier(estimator) and classes is not None:
        outputs = OutputSpec(
            task="classification",
            dtype=output_dtype(classes),
            classes=python_values(classes),
            has_proba=hasattr(estimator, "predict_proba"),
        )
    elif is_regressor(estimator):
        outputs = OutputSpec(task="regression", dtype="float64")
    else:
        outputs = OutputSpec(task="other")
    signature = Signature(inputs=inputs, outputs=outputs)
    if found.unknown:
        raise InputTypesUnknownError(signature, found.unknown)
    return signature


def skops_untrusted_types(path: Path, *, limit: int) -> list[str]:
    """The types a skops file needs beyond skops' defaults, read once the file is known to
    unpack to at most ``limit`` bytes (:func:`~vigil.bundle.archive.check_skops`: skops
    reads every array just to list the types)."""
    sio = skops_io()  # its trust lists from a cache: see _skops_trust

    from vigil.bundle.archive import check_skops

    check_skops(path, limit=limit, what=path.name)
    try:
        untrusted: list[str] = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise BundleError(f"{path.name} is not a readable skops file: {exc}") from exc
    return untrusted


def load_skops(path: Path, trust: TrustPolicy) -> Any:
    """Load a skops file once it is known to unpack within ``trust``'s limit and every type
    it needs beyond skops' defaults is trusted."""
    sio = skops_io()  # its trust lists from a cache: see _skops_trust

    untrusted = skops_untrusted_types(path, limit=trust.unpack_limit)
    allowed = trust.allowed_types(untrusted, what=path.name)
    try:
        return sio.load(path, trusted=allowed)
    except VigilError:
        raise
    except Exception as exc:
        raise BundleError(f"{path.name} could not be loaded with skops: {exc}") from exc


def load_pickle(path: Path, trust: TrustPolicy) -> Any:
    """Load a pickle/joblib/cloudpickle file, only when the caller trusts pickle."""
    trust.check_pickle(what=path.name)
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:
        raise BundleError(f"{path.name} could not be unpickled: {exc}") from exc


def check_estimator(obj: Any, what: str) -> Any:
    if not callable(getattr(obj, "predict", None)):
        raise BundleError(f"{what} holds a {type(obj).__name__}, which has no predict method")
    return obj


class SklearnFlavor:
    """The ``sklearn`` flavor plugin."""

    name = "sklearn"

    def detect(self, path: Path) -> bool:
        suffix = path.suffix.lower()
        if suffix in SKOPS_SUFFIXES:
            return read_head(path, 4) == _ZIP_MAGIC
        return suffix in PICKLE_SUFFIXES and path.is_file()

    def accepts(self, obj: object) -> bool:
        mods = mro_modules(obj)
        return "sklearn" in mods and not mods & {"xgboost", "lightgbm"} and hasattr(obj, "predict")

    def save(self, obj: Any, dest_dir: Path) -> str:
        sio = skops_io()

        sio.dump(obj, dest_dir / MODEL_FILE)
        return MODEL_FILE

    def model_info(self, obj: Any) -> dict[str, Any]:
        estimator = obj.estimator if isinstance(obj, SklearnModel) else obj
        return {"estimator": type(estimator).__name__}

    def required_trust(self, model_path: Path, *, trust: TrustPolicy | None = None) -> TrustPolicy:
        if model_path.suffix.lower() in PICKLE_SUFFIXES:
            return TrustPolicy(trust_pickle=True)
        limit = (trust or TrustPolicy()).unpack_limit
        return TrustPolicy(trusted_types=tuple(skops_untrusted_types(model_path, limit=limit)))

    def load(
        self, model_path: Path, *, trust: TrustPolicy, model_info: Mapping[str, Any] | None = None
    ) -> SklearnModel:
        if model_path.suffix.lower() in PICKLE_SUFFIXES:
            obj = load_pickle(model_path, trust)
        else:
            obj = load_skops(model_path, trust)
        return SklearnModel(check_estimator(obj, model_path.name))

    def infer_signature(self, model: LoadedModel) -> Signature | None:
        if isinstance(model, SklearnModel):
            return estimator_signature(model.estimator)
        return None

    def versions(self) -> dict[str, str]:
        import sklearn
        import skops

        return {"scikit-learn": sklearn.__version__, "skops": skops.__version__}


flavor = SklearnFlavor()
