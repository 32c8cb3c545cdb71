"""MLflow model directories (a directory with an ``MLmodel`` file), loaded without MLflow.

vigil reads ``MLmodel`` itself and loads the model through the matching inner flavor:
``sklearn`` (skops, or pickle/cloudpickle only with ``trust_pickle``), ``xgboost``,
``lightgbm``, ``onnx``, or ``python_function`` whose ``loader_module`` is one of
:data:`ALLOWED_LOADERS`. Nothing from the directory is ever imported: a ``code`` path or
another loader module is refused, since either would run the directory's own Python.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.bundle.archive import size_text
from vigil.bundle.flavors import get_flavor
from vigil.bundle.flavors.base import InputTypesUnknownError, default_feature_names, path_inside
from vigil.bundle.flavors.sklearn import (
    PICKLE_SUFFIXES,
    SklearnModel,
    check_estimator,
    load_pickle,
    load_skops,
    skops_untrusted_types,
)
from vigil.bundle.safe_yaml import load_untrusted_yaml
from vigil.bundle.signature import FeatureSpec, FeatureType, Signature
from vigil.bundle.trust import TrustPolicy
from vigil.errors import BundleError, UntrustedModelError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    from vigil.bundle.flavors.base import Flavor
    from vigil.bundle.model import LoadedModel

MLMODEL_FILE = "MLmodel"
MLMODEL_MAX_BYTES = 4 << 20
"""Largest ``MLmodel`` read (wide signatures take a few hundred KB)."""
ALLOWED_LOADERS: dict[str, str] = {
    "mlflow.sklearn": "sklearn",
    "mlflow.xgboost": "xgboost",
    "mlflow.lightgbm": "lightgbm",
    "mlflow.onnx": "onnx",
}
"""``python_function`` loader modules vigil understands, and the flavor each one means."""

_COLSPEC_TYPES: dict[str, FeatureType] = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "string": "string",
}
_TENSOR_DTYPES: dict[str, FeatureType] = {
    "float64": "float64",
    "float32": "float32",
    "int64": "int64",
    "int32": "int32",
    "bool": "bool",
    "object": "string",
    "str": "string",
}


class MLflowModel:
    """The inner flavor's model, presented as the ``mlflow`` flavor."""

    flavor = "mlflow"

    def __init__(self, inner: LoadedModel, inner_flavor: Flavor, mlmodel: dict[str, Any]) -> None:
        self.inner = inner
        self.inner_flavor = inner_flavor
        self.mlmodel = mlmodel

    @property
    def has_proba(self) -> bool:
        return self.inner.has_proba

    def predict(self, X: pd.DataFrame | npt.NDArray[Any]) -> np.ndarray[Any, Any]:
        return self.inner.predict(X)

    def predict_proba(self, X: pd.DataFrame | npt.NDArray[Any]) -> np.ndarray[Any, Any]:
        return self.inner.predict_proba(X)


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    """The parsed ``MLmodel`` YAML of an MLflow model directory, its size, its YAML
    (:mod:`vigil.bundle.safe_yaml`) and the fields vigil reads checked
    (:func:`check_mlmodel`)."""
    path = model_dir / MLMODEL_FILE
    try:
        with path.open("rb") as fh:
            raw = fh.read(MLMODEL_MAX_BYTES + 1)
            size = max(len(raw), path.stat().st_size)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"cannot read {MLMODEL_FILE} in {model_dir.name!r}: {exc}") from exc
    if size > MLMODEL_MAX_BYTES:
        raise BundleError(
            f"{MLMODEL_FILE} is {size_text(size)}, more than {size_text(MLMODEL_MAX_BYTES)}; "
            "an MLmodel file describes a model, it does not hold one"
        )
    data = load_untrusted_yaml(text, what=MLMODEL_FILE)
    if not isinstance(data, dict) or "flavors" not in data:
        raise BundleError(f"{MLMODEL_FILE} in {model_dir.name!r} has no 'flavors' section")
    check_mlmodel(data)
    return data


def _text(value: Any, where: str, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or len(value) > 4096:
        raise BundleError(
            f"{MLMODEL_FILE}: {where} must be text of at most 4096 characters, got "
            f"{type(value).__name__}"
        )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BundleError(f"{MLMODEL_FILE}: {where} must be a mapping, got {type(value).__name__}")
    return value


# The fields vigil reads from each flavor's section, all of them paths or names.
_FLAVOR_FIELDS = {
    "sklearn": ("pickled_model", "serialization_format", "code"),
    "xgboost": ("data", "model_class", "code"),
    "lightgbm": ("data", "model_class", "code"),
    "onnx": ("data", "code"),
    "python_function": ("loader_module", "model_path", "data", "code"),
}


def check_mlmodel(data: dict[str, Any]) -> None:
    """Refuse an ``MLmodel`` whose fields vigil reads have the wrong shape, with a
    :class:`~vigil.errors.BundleError` naming the field (nothing else is read)."""
    flavors = _mapping(data["flavors"], "flavors")
    for name, conf in flavors.items():
        _text(name, "a flavor's name", optional=False)
        section = _mapping(conf, f"flavors.{name}")
        for field in _FLAVOR_FIELDS.get(name, ("code",)):
            _text(section.get(field), f"flavors.{name}.{field}")
    for key in ("mlflow_version", "model_uuid", "artifact_path"):
        _text(data.get(key), key)
    info = data.get("saved_input_example_info")
    if info is not None:
        _mapping(info, "saved_input_example_info")
    signature = data.get("signature")
    if signature is not None:
        inputs = _mapping(signature, "signature").get("inputs")
        if inputs is not None:
            _input_specs(inputs)


def _input_specs(inputs: Any) -> list[dict[str, Any]]:
    """``signature.inputs``: a JSON list of column or tensor specs, each an object."""
    where = "signature.inputs"
    if not isinstance(inputs, str):
        raise BundleError(f"{MLMODEL_FILE}: {where} must be a JSON list of input specs as text")
    try:
        specs = json.loads(inputs)
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"{MLMODEL_FILE}: {where} is not valid JSON: {exc}") from None
    if not isinstance(specs, list):
        raise BundleError(
            f"{MLMODEL_FILE}: {where} must be a JSON list of input specs, got "
            f"{type(specs).__name__}"
        )
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise BundleError(
                f"{MLMODEL_FILE}: {where}[{i}] must be an object such as "
                f'{{"name": "age", "type": "double"}}, got {type(spec).__name__}'
            )
        for field in ("name", "type"):
            if field in spec and not isinstance(spec[field], str):
                raise BundleError(f"{MLMODEL_FILE}: {where}[{i}].{field} must be text")
        if "required" in spec and not isinstance(spec["required"], bool):
            raise BundleError(f"{MLMODEL_FILE}: {where}[{i}].required must be true or false")
        if spec.get("type") == "tensor":
            tensor = spec.get("tensor-spec")
            if not isinstance(tensor, dict):
                raise BundleError(f"{MLMODEL_FILE}: {where}[{i}].tensor-spec must be an object")
            shape = tensor.get("shape", [])
            if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) for d in shape
            ):
                raise BundleError(
                    f"{MLMODEL_FILE}: {where}[{i}].tensor-spec.shape must be a list of integers"
                )
    return specs


def _inside(model_dir: Path, name: Any) -> Path:
    return path_inside(model_dir, name, what=MLMODEL_FILE)


def _refuse_code(flavors: Mapping[str, Any]) -> None:
    for name, conf in flavors.items():
        if isinstance(conf, dict) and conf.get("code"):
            raise UntrustedModelError(
                f"the MLflow model's {name!r} flavor ships code ({conf['code']!r}) that would "
                "have to be imported to load it; vigil never imports a model's code. Save "
                "the model without code_paths (e.g. mlflow.sklearn.save_model with skops)",
                detail={"flavor": name, "code": conf["code"]},
            )
    pyfunc = flavors.get("python_function")
    if isinstance(pyfunc, dict):
        loader = pyfunc.get("loader_module")
        if loader is not None and loader not in ALLOWED_LOADERS:
            raise UntrustedModelError(
                f"the MLflow model is loaded by {loader!r}, which would run arbitrary code; "
                f"vigil loads only models of {', '.join(ALLOWED_LOADERS)}",
                detail={"loader_module": loader, "allowed": list(ALLOWED_LOADERS)},
            )


def load_inner(
    model_dir: Path, mlmodel: dict[str, Any], trust: TrustPolicy
) -> tuple[LoadedModel, Flavor]:
    """Load the model through the first inner flavor vigil understands."""
    flavors: dict[str, Any] = mlmodel["flavors"]
    _refuse_code(flavors)
    sk = flavors.get("sklearn")
    if isinstance(sk, dict):
        path = _inside(model_dir, sk.get("pickled_model"))
        fmt = sk.get("serialization_format", "cloudpickle")
        if fmt == "skops":
            obj = load_skops(path, trust)
        elif fmt in ("pickle", "cloudpickle"):
            obj = load_pickle(path, trust)
        else:
            raise BundleError(f"unknown scikit-learn serialization format {fmt!r} in MLmodel")
        return SklearnModel(check_estimator(obj, path.name)), get_flavor("sklearn")
    for name in ("xgboost", "lightgbm", "onnx"):
        conf = flavors.get(name)
        if isinstance(conf, dict):
            return _load_native(model_dir, name, conf.get("data"), conf, trust)
    pyfunc = flavors.get("python_function")
    if isinstance(pyfunc, dict) and pyfunc.get("loader_module") in ALLOWED_LOADERS:
        name = ALLOWED_LOADERS[pyfunc["loader_module"]]
        data = pyfunc.get("model_path") or pyfunc.get("data")
        return _load_native(model_dir, name, data, {}, trust)
    raise BundleError(
        f"the MLflow model has no flavor vigil can load (found: {', '.join(flavors)}); "
        "supported: sklearn, xgboost, lightgbm, onnx"
    )


def _load_native(
    model_dir: Path, name: str, data: Any, conf: Mapping[str, Any], trust: TrustPolicy
) -> tuple[LoadedModel, Flavor]:
    path = _inside(model_dir, data)
    if name == "sklearn" or path.suffix.lower() in PICKLE_SUFFIXES:
        # mlflow.lightgbm pickles scikit-learn-API models: same rule as any pickle.
        return SklearnModel(load_pickle(path, trust)), get_flavor("sklearn")
    plugin = get_flavor(name)
    info = {"model_class": conf["model_class"]} if conf.get("model_class") else {}
    return plugin.load(path, trust=trust, model_info=info), plugin


def mlflow_signature(mlmodel: Mapping[str, Any]) -> list[FeatureSpec] | None:
    """Input features from ``MLmodel``'s ``signature.inputs`` (column or tensor specs)."""
    sig = mlmodel.get("signature")
    if not isinstance(sig, dict) or not sig.get("inputs"):
        return None
    specs = _input_specs(sig["inputs"])
    if len(specs) == 1 and specs[0].get("type") == "tensor":
        tensor = specs[0].get("tensor-spec", {})
        shape = tensor.get("shape", [])
        dtype = _TENSOR_DTYPES.get(str(tensor.get("dtype")))
        if len(shape) != 2 or not isinstance(shape[1], int) or shape[1] < 1 or dtype is None:
            raise BundleError(f"unsupported MLflow tensor input {tensor!r}")
        return [FeatureSpec(name=n, dtype=dtype) for n in default_feature_names(shape[1])]
    inputs = []
    for i, spec in enumerate(specs):
        kind = _COLSPEC_TYPES.get(str(spec.get("type")))
        if kind is None:
            raise BundleError(
                f"MLflow input column {spec.get('name', i)!r} has type {spec.get('type')!r}; "
                f"vigil supports {', '.join(_COLSPEC_TYPES)}"
            )
        inputs.append(
            FeatureSpec(
                name=str(spec.get("name", f"f{i}")),
                dtype=kind,
                required=bool(spec.get("required", True)),
            )
        )
    return inputs


class MLflowFlavor:
    """The ``mlflow`` flavor plugin (MLflow model directories)."""

    name = "mlflow"

    def detect(self, path: Path) -> bool:
        return path.is_dir() and (path / MLMODEL_FILE).is_file()

    def accepts(self, obj: object) -> bool:
        return False

    def save(self, obj: Any, dest_dir: Path) -> str:
        raise BundleError("vigil does not write MLflow directories; save the model itself")

    def model_info(self, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, MLflowModel):
            return {}
        info: dict[str, Any] = {
            "inner_flavor": obj.inner_flavor.name,
            "inner": obj.inner_flavor.model_info(obj.inner),
        }
        for key in ("mlflow_version", "model_uuid"):
            if obj.mlmodel.get(key) is not None:
                info[key] = obj.mlmodel[key]
        example = obj.mlmodel.get("saved_input_example_info")
        if isinstance(example, dict):
            # Information only: its plain values (where the example is, its format).
            info["saved_input_example_info"] = {
                str(k): v
                for k, v in example.items()
                if isinstance(v, str | int | float | bool) and len(str(v)) <= 4096
            }
        return info

    def required_trust(self, model_path: Path, *, trust: TrustPolicy | None = None) -> TrustPolicy:
        mlmodel = read_mlmodel(model_path)
        sk = mlmodel["flavors"].get("sklearn")
        if isinstance(sk, dict):
            path = _inside(model_path, sk.get("pickled_model"))
            if sk.get("serialization_format", "cloudpickle") != "skops":
                return TrustPolicy(trust_pickle=True)
            limit = (trust or TrustPolicy()).unpack_limit
            return TrustPolicy(trusted_types=tuple(skops_untrusted_types(path, limit=limit)))
        lgb = mlmodel["flavors"].get("lightgbm")
        if isinstance(lgb, dict) and str(lgb.get("data", "")).endswith(".pkl"):
            return TrustPolicy(trust_pickle=True)
        return TrustPolicy()

    def load(
        self,
        model_path: Path,
        *,
        trust: TrustPolicy,
        model_info: Mapping[str, Any] | None = None,
    ) -> MLflowModel:
        if not self.detect(model_path):
            raise BundleError(f"{model_path.name!r} is not an MLflow model directory")
        mlmodel = read_mlmodel(model_path)
        inner, plugin = load_inner(model_path, mlmodel, trust)
        return MLflowModel(inner, plugin, mlmodel)

    def infer_signature(self, model: LoadedModel) -> Signature | None:
        if not isinstance(model, MLflowModel):
            return None
        inputs = mlflow_signature(model.mlmodel)
        try:
            inner = model.inner_flavor.infer_signature(model.inner)
        except InputTypesUnknownError as exc:
            if inputs is None:
                raise
            inner = exc.signature  # the MLmodel's own signature gives the types
        if inputs is None:
            return inner
        if inner is None:
            return Signature(inputs=inputs)
        return Signature(inputs=inputs, outputs=inner.outputs)

    def versions(self) -> dict[str, str]:
        return {}


flavor = MLflowFlavor()
