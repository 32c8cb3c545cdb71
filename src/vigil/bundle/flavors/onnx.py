"""ONNX models, run with ONNX Runtime on the CPU.

Two input layouts are understood: one 2-D tensor holding every feature (what
``skl2onnx.to_onnx(model, X)`` writes), or one ``[N, 1]`` tensor per named feature.
Outputs follow skl2onnx's convention: a label tensor (``output_label`` / ``label``) and
class probabilities (``output_probability`` / ``probabilities``), either a tensor
(``zipmap=False``) or the ZipMap list of ``{class: probability}`` dicts. A model with a
single output is a regressor (or another numeric model).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.bundle.flavors.base import (
    as_frame,
    as_matrix,
    default_feature_names,
    mro_modules,
    output_dtype,
    read_head,
)
from vigil.bundle.signature import FeatureSpec, FeatureType, OutputSpec, Signature
from vigil.bundle.trust import TrustPolicy
from vigil.errors import BundleError, require

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    from vigil.bundle.model import LoadedModel

MODEL_FILE = "model.onnx"
INTRA_OP_THREADS = 1
"""Threads per prediction: serving runs many small batches side by side, so one is best."""

_TENSOR_TYPES: dict[str, tuple[FeatureType, Any]] = {
    "tensor(float)": ("float32", np.float32),
    "tensor(double)": ("float64", np.float64),
    "tensor(int64)": ("int64", np.int64),
    "tensor(int32)": ("int32", np.int32),
    "tensor(bool)": ("bool", np.bool_),
    "tensor(string)": ("string", np.object_),
}
_CLASS_ATTRIBUTES = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")


class ONNXModel:
    """An ONNX Runtime session behind the :class:`~vigil.bundle.model.LoadedModel` protocol."""

    flavor = "onnx"

    def __init__(self, session: Any, classes: list[Any] | None) -> None:
        self.session = session
        inputs = session.get_inputs()
        for i in inputs:
            if i.type not in _TENSOR_TYPES:
                raise BundleError(f"ONNX input {i.name!r} has unsupported type {i.type}")
        first = inputs[0]
        width = first.shape[1] if len(first.shape) == 2 else None
        self.matrix = len(inputs) == 1 and len(first.shape) == 2 and width != 1
        if self.matrix:
            if not isinstance(width, int):
                raise BundleError(
                    f"ONNX input {first.name!r} has no fixed number of columns; export it "
                    "with a fixed width (e.g. FloatTensorType([None, n_features]))"
                )
            self.feature_names = default_feature_names(width)
            self.feature_dtypes: list[FeatureType] = [_TENSOR_TYPES[first.type][0]] * width
        else:
            self.feature_names = [i.name for i in inputs]
            self.feature_dtypes = [_TENSOR_TYPES[i.type][0] for i in inputs]
        self._input_names = [i.name for i in inputs]
        self._input_dtypes = [_TENSOR_TYPES[i.type][1] for i in inputs]
        outputs = session.get_outputs()
        self._label = next((o.name for o in outputs if "label" in o.name.lower()), outputs[0].name)
        self._proba = next(
            (
                o.name
                for o in outputs
                if o.name != self._label and ("prob" in o.name.lower() or o.type.startswith("seq"))
            ),
            None,
        )
        self.classes = classes if self._proba is not None else None

    @property
    def has_proba(self) -> bool:
        return self._proba is not None

    def _feed(self, X: pd.DataFrame | npt.NDArray[Any]) -> dict[str, Any]:
        if self.matrix:
            return {self._input_names[0]: as_matrix(X, dtype=self._input_dtypes[0])}
        if hasattr(X, "columns"):
            frame = as_frame(X, self.feature_names)
            columns = [frame[name].to_numpy() for name in self.feature_names]
        else:
            arr = as_matrix(X)
            columns = [arr[:, j] for j in range(arr.shape[1])]
        return {
            name: np.asarray(col, dtype=dtype).reshape(-1, 1)
            for name, dtype, col in zip(self._input_names, self._input_dtypes, columns, strict=True)
        }

    def predict(self, X: pd.DataFrame | npt.NDArray[Any]) -> np.ndarray[Any, Any]:
        (out,) = self.session.run([self._label], self._feed(X))
        return np.asarray(out).ravel()

    def predict_proba(self, X: pd.DataFrame | npt.NDArray[Any]) -> np.ndarray[Any, Any]:
        if self._proba is None:
            raise NotImplementedError("this ONNX model has no probability output")
        (out,) = self.session.run([self._proba], self._feed(X))
        if isinstance(out, list):
            # ZipMap: one {class: probability} dict per row; slow, export with zipmap=False.
            keys = self.classes if self.classes is not None else list(out[0]) if out else []
            return np.array([[row[k] for k in keys] for row in out], dtype=np.float32)
        return np.asarray(out)


def _graph_classes(proto: Any) -> list[Any] | None:
    """Class labels from the classifier / ZipMap node attributes of a ``ModelProto``."""
    for node in proto.graph.node:
        for attr in node.attribute:
            if attr.name in _CLASS_ATTRIBUTES:
                if attr.name == "classlabels_strings":
                    return [s.decode() for s in attr.strings]
                return [int(v) for v in attr.ints]
    return None


def _file_classes(model_path: Path) -> list[Any] | None:
    onnx = require("onnx", "onnx")
    return _graph_classes(onnx.load(str(model_path), load_external_data=False))


class ONNXFlavor:
    """The ``onnx`` flavor plugin."""

    name = "onnx"

    def detect(self, path: Path) -> bool:
        # A ModelProto starts with field 1 (ir_version, a varint): tag byte 0x08.
        return path.suffix.lower() == ".onnx" and read_head(path, 1) == b"\x08"

    def accepts(self, obj: object) -> bool:
        return "onnx" in mro_modules(obj) and hasattr(obj, "SerializeToString")

    def save(self, obj: Any, dest_dir: Path) -> str:
        (dest_dir / MODEL_FILE).write_bytes(obj.SerializeToString())
        return MODEL_FILE

    def model_info(self, obj: Any) -> dict[str, Any]:
        # The class labels, so that loading needs ONNX Runtime only, not the onnx package
        # (whose import would add a tenth of a second to every server start).
        classes = obj.classes if isinstance(obj, ONNXModel) else _graph_classes(obj)
        return {"classes": classes}

    def required_trust(self, model_path: Path, *, trust: TrustPolicy | None = None) -> TrustPolicy:
        return TrustPolicy()

    def load(
        self, model_path: Path, *, trust: TrustPolicy, model_info: Mapping[str, Any] | None = None
    ) -> ONNXModel:
        ort = require("onnxruntime", "onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = INTRA_OP_THREADS
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            if model_info is not None and "classes" in model_info:
                classes = model_info["classes"]
            else:  # a bundle written before the classes were recorded
                classes = _file_classes(model_path)
        except Exception as exc:
            raise BundleError(f"{model_path.name} is not a loadable ONNX model: {exc}") from exc
        return ONNXModel(session, classes)

    def infer_signature(self, model: LoadedModel) -> Signature | None:
        if not isinstance(model, ONNXModel):
            return None
        inputs = [
            FeatureSpec(name=n, dtype=t)
            for n, t in zip(model.feature_names, model.feature_dtypes, strict=True)
        ]
        if model.has_proba:
            classes = model.classes or []
            outputs = OutputSpec(
                task="classification",
                dtype=output_dtype(np.asarray(classes)) if classes else "int64",
                classes=classes,
                has_proba=True,
            )
        else:
            outputs = OutputSpec(task="regression", dtype="float32")
        return Signature(inputs=inputs, outputs=outputs)

    def versions(self) -> dict[str, str]:
        import onnx
        import onnxruntime

        return {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__}


flavor = ONNXFlavor()
