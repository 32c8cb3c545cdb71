"""Open Inference Protocol v2 (KServe / Triton "predict protocol v2"), REST, JSON tensors.

Both tabular conventions are accepted in ``POST /v2/models/{name}[/versions/{v}]/infer``:

* one 2-D tensor of shape ``[N, F]`` holding the features in signature order (any name);
* one tensor per feature, named after it, of shape ``[N]`` or ``[N, 1]``.

Tensor ``data`` may be flat (row-major) or nested. Outputs are ``predict`` (shape ``[N]``)
and, for classifiers, ``predict_proba`` (shape ``[N, C]``, columns in class order); the
request's ``outputs`` list picks among them (default: all). ``parameters.explain`` adds
the rows' feature attributions (:mod:`~vigil.serving.codecs.v2_explain`).

Tensors may also travel as raw bytes after the JSON, both ways (the binary tensor data
extension, tritonclient's default): see :mod:`~vigil.serving.codecs.v2_binary`.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.errors import MalformedRequestError, ValidationError
from vigil.serving.codecs import native, predict_served, v2_binary, v2_explain
from vigil.serving.codecs.recording import records_failures
from vigil.serving.executors import INLINE_BODY_BYTES
from vigil.serving.http import Request, Response, json_response
from vigil.serving.validation import Columns, Matrix, RawTable
from vigil.version import VERSION

if TYPE_CHECKING:
    from vigil.bundle.signature import FeatureSpec
    from vigil.serving.dataplane import DataPlane, Prediction
    from vigil.serving.provider import ServedModel

_NUMERIC = frozenset(
    {
        "FP16",
        "BF16",
        "FP32",
        "FP64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
    }
)
_DATATYPES = _NUMERIC | {"BOOL", "BYTES"}
_FEATURE_DATATYPE = {
    "float64": "FP64",
    "float32": "FP32",
    "int64": "INT64",
    "int32": "INT32",
    "bool": "BOOL",
    "string": "BYTES",
    "category": "BYTES",
}
OUTPUTS = ("predict", "predict_proba")


def feature_datatype(spec: FeatureSpec) -> str:
    """The v2 datatype of a feature (categories declared as integers are INT64)."""
    if (
        spec.dtype == "category"
        and spec.categories
        and all(type(c) is int for c in spec.categories)
    ):
        return "INT64"
    return _FEATURE_DATATYPE[spec.dtype]


def _datatype_of(array: np.ndarray[Any, Any]) -> str:
    kind = array.dtype.kind
    if kind == "f":
        return "FP32" if array.dtype.itemsize == 4 else "FP64"
    if kind in "iu":
        return "INT64"
    if kind == "b":
        return "BOOL"
    return "BYTES"


def _malformed(message: str, field: str | None = None) -> MalformedRequestError:
    return MalformedRequestError(message, detail={"field": field})


def _flat(tensor: dict[str, Any], index: int) -> tuple[str, list[int], list[Any]]:
    name, shape, datatype, data = (tensor.get(k) for k in ("name", "shape", "datatype", "data"))
    where = f"inputs[{index}]"
    if not isinstance(name, str):
        raise _malformed(f"{where}.name must be a string", f"{where}.name")
    shown = name[:60]  # a name is echoed in errors: never a megabyte of it
    if not (
        isinstance(shape, list) and shape and all(type(d) is int and 0 <= d < 2**63 for d in shape)
    ):
        raise _malformed(f"input {shown!r}: shape must be a list of sizes such as [2, 20]", shown)
    if len(shape) > 2:
        # Before math.prod: the product of many large sizes is a huge integer that takes
        # time quadratic in their number to compute.
        raise ValidationError(
            f"input {shown!r}: a tabular tensor has shape [N], [N, 1] or [N, F]; "
            f"got {len(shape)} dimensions",
            detail={"field": shown, "row": None, "expected": "1 or 2 dimensions", "got": "more"},
        )
    if not isinstance(datatype, str) or datatype not in _DATATYPES:
        raise _malformed(
            f"input {shown!r}: datatype must be one of {sorted(_DATATYPES)}, "
            f"got {str(datatype)[:40]!r}",
            shown,
        )
    if not isinstance(data, list):
        raise _malformed(
            f"input {shown!r}: data must be an array (or the tensor's raw bytes after the "
            "JSON, sized by parameters.binary_data_size)",
            shown,
        )
    while data and isinstance(data[0], list):
        if not all(isinstance(part, list) for part in data):
            raise _malformed(f"input {shown!r}: nested data is ragged", shown)
        data = list(chain.from_iterable(data))
    size = math.prod(shape)
    if len(data) != size:
        raise _malformed(
            f"input {shown!r}: shape {shape} needs {size} values, got {len(data)}", shown
        )
    return name, shape, data


def _check_datatype(served: ServedModel, name: str, datatype: str) -> None:
    spec = served.validator.feature(name)
    expected = feature_datatype(spec)
    compatible = (
        datatype == expected
        or (spec.is_numeric and spec.dtype != "bool" and datatype in _NUMERIC)
        or (spec.dtype == "category" and datatype in ("BYTES", "INT64", "INT32"))
    )
    if not compatible:
        raise ValidationError(
            f"input {name!r} has datatype {datatype} but the feature is {spec.dtype}; "
            f"send {expected}",
            detail={"field": name, "row": None, "expected": expected, "got": datatype},
        )


def decode(
    served: ServedModel, payload: Any, binary: memoryview | None = None
) -> tuple[RawTable, list[str]]:
    """The raw table and the requested output names of an inference request; ``binary``
    is the body after its JSON part when it has an ``Inference-Header-Content-Length``."""
    if not isinstance(payload, dict):
        raise _malformed("the inference request must be a JSON object with 'inputs'")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _malformed("'inputs' must be a non-empty array of tensors", "inputs")
    validator = served.validator
    validator.check_columns(len(inputs))  # one tensor per column at most: refuse early
    if not all(isinstance(t, dict) for t in inputs):
        raise _malformed("'inputs' must be a non-empty array of tensors", "inputs")
    inputs = v2_binary.read_inputs(inputs, binary, validator.max_cells)
    names = validator.feature_names
    outputs = _requested_outputs(served, payload.get("outputs"))
    first = inputs[0]
    if len(inputs) == 1 and isinstance(first.get("shape"), list) and len(first["shape"]) == 2:
        name, shape, data = _flat(first, 0)
        if shape[1] != 1 or not validator.has_feature(name):
            if shape[1] != len(names):
                raise ValidationError(
                    f"a 2-D input must have shape [N, {len(names)}] with the features in "
                    f"signature order {names}; got shape {shape}",
                    detail={
                        "field": name[:60],
                        "row": None,
                        "expected": f"[N, {len(names)}]",
                        "got": str(shape),
                    },
                )
            for feature in names:
                _check_datatype(served, feature, first["datatype"])
            width = shape[1]
            return Matrix([data[i : i + width] for i in range(0, len(data), width)]), outputs
    columns: dict[str, Any] = {}
    for index, tensor in enumerate(inputs):
        name, shape, data = _flat(tensor, index)
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise ValidationError(
                f"input {name[:60]!r}: per-feature tensors have shape [N] or [N, 1], got {shape}",
                detail={
                    "field": name[:60],
                    "row": None,
                    "expected": "[N] or [N, 1]",
                    "got": str(shape),
                },
            )
        if name in columns:
            raise _malformed(f"input {name[:60]!r} appears twice", name[:60])
        if validator.has_feature(name):
            _check_datatype(served, name, tensor["datatype"])
        columns[name] = data
    return Columns(columns), outputs


def _requested_outputs(served: ServedModel, outputs: Any) -> list[str]:
    available = list(OUTPUTS) if served.has_proba else ["predict"]
    if outputs is None:
        return available
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise _malformed("'outputs' must be an array of {\"name\": ...} objects", "outputs")
    requested = [o["name"] for o in outputs]
    for name in requested:
        if name not in available:
            raise ValidationError(
                f"unknown output {name[:40]!r}; this model has {available}",
                detail={"field": "outputs", "row": None, "expected": available, "got": name[:40]},
            )
    return requested


def _selector(req: Request) -> str | None:
    return req.params.get("version")


def output_tensors(result: Prediction, outputs: list[str]) -> list[dict[str, Any]]:
    """The response's output tensors, in the order ``outputs`` names them: ``predict``
    (shape ``[N]``) and ``predict_proba`` (shape ``[N, C]``, data row-major)."""
    tensors: list[dict[str, Any]] = []
    for name in outputs:
        if name == "predict":
            pred = result.predictions
            tensors.append(
                {"name": name, "shape": [len(pred)], "datatype": _datatype_of(pred), "data": pred}
            )
        else:
            proba = result.probabilities
            assert proba is not None
            tensors.append(
                {
                    "name": name,
                    "shape": list(proba.shape),
                    "datatype": _datatype_of(proba),
                    "data": proba.ravel(),
                }
            )
    return tensors


def payload_of(req: Request) -> Any:
    """The request's JSON (its JSON part, with the binary extension's header); a body that
    is not JSON without that header gets a hint about it."""
    try:
        return req.json()
    except MalformedRequestError as exc:
        if req.inference_header is not None:
            raise
        raise MalformedRequestError(
            exc.message + " (a body of JSON then raw tensor data needs the "
            "Inference-Header-Content-Length header: the length of its JSON part)",
            detail=exc.detail,
        ) from None


async def decoded(
    dp: DataPlane, req: Request, served: ServedModel, payload: Any
) -> tuple[RawTable, list[str], frozenset[str]]:
    """The raw table of an inference request, its requested outputs and those of them to
    send as binary data; a large body is decoded on a worker thread."""
    binary = req.binary_part()
    if len(req.body) <= INLINE_BODY_BYTES:
        table, outputs = decode(served, payload, binary)
    else:  # flattening megabytes of tensor data: on a worker thread
        table, outputs = await dp.executors.decoding(decode, served, payload, binary)
    return table, outputs, v2_binary.binary_outputs(payload, outputs)


def passthrough_of(payload: Any) -> dict[str, list[Any]] | None:
    """Fields logged beside the features but never given to the model, sent as the
    request's ``parameters.passthrough`` (checked as the native body's ``passthrough``:
    :func:`vigil.serving.codecs.native.passthrough_of`).

    >>> passthrough_of({"inputs": [], "parameters": {"passthrough": {"sex": ["f"]}}})
    {'sex': ['f']}
    """
    parameters = payload.get("parameters") if isinstance(payload, dict) else None
    return native.passthrough_of(parameters) if isinstance(parameters, dict) else None


@records_failures("v2")
async def infer(dp: DataPlane, req: Request) -> Response:
    served = dp.model(req.params["name"], _selector(req))
    req.model, req.version = served.name, served.version_label
    payload = payload_of(req)
    wants_explanation, label = v2_explain.requested(payload)
    table, outputs, binary = await decoded(dp, req, served, payload)
    # Explained first: a model that cannot be explained, or too many rows, predicts nothing.
    found = await v2_explain.explain(dp, served, table, label) if wants_explanation else None
    want_proba = "predict_proba" in outputs
    result = await predict_served(
        dp, req, served, table, want_proba=want_proba, passthrough=passthrough_of(payload)
    )
    request_id = payload.get("id")
    body: dict[str, Any] = {
        "model_name": served.name,
        "model_version": served.version_label,
        "id": request_id if isinstance(request_id, str) else result.request_id,
        "outputs": output_tensors(result, outputs),
    }
    if found is not None:
        extra, body["parameters"] = v2_explain.tensors(found)
        body["outputs"] += extra
        binary = v2_binary.binary_outputs(payload, [*outputs, *v2_explain.OUTPUTS])
    return v2_binary.response(body, binary, [(b"x-request-id", result.request_id.encode())])


async def server_metadata(dp: DataPlane, req: Request) -> Response:
    return json_response({"name": "vigil", "version": VERSION, "extensions": [v2_binary.EXTENSION]})


async def server_live(dp: DataPlane, req: Request) -> Response:
    return json_response({"live": True})


async def server_ready(dp: DataPlane, req: Request) -> Response:
    # The spec answers "not ready" with a 4xx status; draining or a dependency down is
    # "not ready" too, as on /readyz.
    ready = dp.takes_traffic
    return json_response({"ready": ready}, 200 if ready else 400)


def model_metadata_body(dp: DataPlane, served: ServedModel) -> dict[str, Any]:
    """The v2 model metadata of a served version (REST and gRPC answer the same)."""
    versions = sorted({m.version for m in dp.models() if m.name == served.name})
    out_type = _FEATURE_DATATYPE.get(served.signature.outputs.dtype, "BYTES")
    if served.signature.outputs.dtype.startswith(("int", "uint")):
        out_type = "INT64"
    outputs: list[dict[str, Any]] = [{"name": "predict", "datatype": out_type, "shape": [-1]}]
    if served.has_proba:
        width = len(served.classes) if served.classes else -1
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, width]})
    return {
        "name": served.name,
        "versions": [str(v) for v in versions],
        "platform": f"vigil_{served.bundle.model.flavor}",
        "inputs": [
            {"name": f.name, "datatype": feature_datatype(f), "shape": [-1]}
            for f in served.signature.inputs
        ],
        "outputs": outputs,
    }


async def model_metadata(dp: DataPlane, req: Request) -> Response:
    served = dp.model(req.params["name"], _selector(req))
    req.model, req.version = served.name, served.version_label
    return json_response(model_metadata_body(dp, served))


async def model_ready(dp: DataPlane, req: Request) -> Response:
    served = dp.model(req.params["name"], _selector(req))
    req.model, req.version = served.name, served.version_label
    ready = served.ready and dp.takes_traffic
    return json_response({"name": served.name, "ready": ready}, 200 if ready else 400)
