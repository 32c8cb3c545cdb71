"""Tensors of the v2 gRPC protocol to and from the REST codec's JSON-shaped tensors.

A ``ModelInferRequest``'s inputs carry their values either as ``raw_input_contents`` (one
byte string per input: little-endian, row-major, BYTES elements each after a 4-byte
little-endian length) or in the typed field of ``contents`` that matches the datatype.
:func:`request_payload` turns either into the dictionary a v2 REST body decodes to, so
:func:`vigil.serving.codecs.v2.decode` validates gRPC requests with exactly the rules and
messages of REST; only what is gRPC's own (sizes of raw contents, which typed field holds
the values) is checked here, each error naming the tensor.

Outputs go back as raw contents when the request sent raw inputs (what tritonclient sends
and reads), else in the typed fields (:func:`add_outputs`).

>>> from vigil.serving.grpc import inference_v2_pb2 as pb
>>> req = pb.ModelInferRequest(model_name="m")
>>> t = req.inputs.add(name="x", datatype="FP64", shape=[2])
>>> req.raw_input_contents.append(np.array([1.5, 2.0]).tobytes())
>>> request_payload(req)["inputs"]
[{'name': 'x', 'shape': [2], 'datatype': 'FP64', 'data': [1.5, 2.0]}]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from vigil.errors import MalformedRequestError, ValidationError
from vigil.serving.codecs import native

if TYPE_CHECKING:
    from vigil.serving.grpc import inference_v2_pb2 as pb

_RAW_DTYPES: dict[str, str] = {
    "BOOL": "|b1",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "|u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BF16": "<u2",  # widened to float32 below: numpy has no bfloat16
}
_TYPED_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_FIELDS = frozenset(_TYPED_FIELD.values())
_MAX_DIMS = 2
"""Tabular tensors have one or two dimensions; the REST codec words the refusal."""


def _malformed(message: str, field: str | None) -> MalformedRequestError:
    return MalformedRequestError(message, detail={"field": field})


def _size(shape: list[int]) -> int | None:
    """Elements a shape holds, or ``None`` when the REST codec will refuse the shape (it
    says why): the product is only taken of the one or two sizes a table may have."""
    if not shape or len(shape) > _MAX_DIMS or any(d < 0 for d in shape):
        return None
    return math.prod(shape)


def _utf8(value: bytes, name: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed(
            f"input {name!r}: BYTES elements must be UTF-8 text for a tabular model", name
        ) from None


def _raw_bytes(raw: bytes, count: int, name: str) -> list[str]:
    """The elements of a raw BYTES tensor: ``count`` times a 4-byte length, then the bytes."""
    values: list[str] = []
    view = memoryview(raw)
    offset, end = 0, len(raw)
    for index in range(count):
        if offset + 4 > end:
            raise _malformed(
                f"input {name!r}: raw BYTES contents end after {index} of {count} elements; "
                "each element is a 4-byte little-endian length followed by its bytes",
                name,
            )
        length = int.from_bytes(view[offset : offset + 4], "little")
        offset += 4
        if offset + length > end:
            raise _malformed(
                f"input {name!r}: element {index} of the raw BYTES contents claims {length} "
                f"bytes but only {end - offset} remain",
                name,
            )
        values.append(_utf8(bytes(view[offset : offset + length]), name))
        offset += length
    if offset != end:
        raise _malformed(
            f"input {name!r}: raw BYTES contents hold {end - offset} bytes after its "
            f"{count} elements; the shape and the contents disagree",
            name,
        )
    return values


def raw_values(raw: bytes, datatype: str, shape: list[int], name: str) -> list[Any]:
    """The values of one input sent as raw contents, as a flat list of Python scalars.

    >>> raw_values(np.array([1, 2], "<i4").tobytes(), "INT32", [2], "x")
    [1, 2]
    >>> raw_values(b"\\x01\\x00\\x00\\x00a", "BYTES", [1, 1], "s")
    ['a']
    >>> raw_values(b"\\x00" * 12, "FP64", [2], "x")
    Traceback (most recent call last):
    ...
    vigil.errors.MalformedRequestError: input 'x': shape [2] of FP64 needs 16 bytes of raw contents, got 12
    """
    count = _size(shape)
    if count is None:
        return []  # the REST codec refuses the shape with its own words
    if datatype == "BYTES":
        return _raw_bytes(raw, count, name)
    dtype = _RAW_DTYPES.get(datatype)
    if dtype is None:
        return []  # an unknown datatype: refused by the REST codec, which lists the known
    need = count * np.dtype(dtype).itemsize
    if len(raw) != need:
        raise _malformed(
            f"input {name!r}: shape {shape} of {datatype} needs {need} bytes of raw "
            f"contents, got {len(raw)}",
            name,
        )
    if datatype == "BOOL":
        flags = np.frombuffer(raw, "|u1")
        if flags.size and int(flags.max()) > 1:
            raise _malformed(f"input {name!r}: raw BOOL contents hold bytes other than 0/1", name)
    array = np.frombuffer(raw, dtype)
    if datatype == "BF16":  # the high half of a float32
        array = (array.astype("<u4") << 16).view("<f4")
    values: list[Any] = array.tolist()
    return values


def typed_values(tensor: pb.ModelInferRequest.InferInputTensor, name: str) -> list[Any]:
    """The values of one input sent in the typed field of ``contents`` its datatype names.

    Values in any other field are refused (they would be ignored silently otherwise).
    """
    datatype = tensor.datatype
    contents = tensor.contents
    filled = [f.name for f, _ in contents.ListFields()]
    expected = _TYPED_FIELD.get(datatype)
    if expected is None and datatype in _RAW_DTYPES:
        raise _malformed(
            f"input {name!r}: {datatype} has no typed contents field; send it in "
            "raw_input_contents",
            name,
        )
    if expected is None:
        return []  # an unknown datatype: the REST codec lists the known ones
    others = [f for f in filled if f != expected and f in _FIELDS]
    if others:
        raise _malformed(
            f"input {name!r} has datatype {datatype}, whose values go in "
            f"contents.{expected}; got contents.{others[0]}",
            name,
        )
    values = getattr(contents, expected)
    if datatype == "BYTES":
        return [_utf8(v, name) for v in values]
    return list(values)


def _parameter(value: pb.InferParameter) -> Any:
    kind = value.WhichOneof("parameter_choice")
    return None if kind is None else getattr(value, kind)


def parameters(request: pb.ModelInferRequest) -> dict[str, Any]:
    """The request's parameters as plain values (a parameter set to nothing is ``None``)."""
    return {key: _parameter(value) for key, value in request.parameters.items()}


def request_payload(request: pb.ModelInferRequest) -> dict[str, Any]:
    """The v2 REST body equivalent to ``request``: ``inputs`` with flat ``data`` lists and
    ``outputs`` when the request names them."""
    raw = request.raw_input_contents
    inputs = request.inputs
    if raw:
        if len(raw) != len(inputs):
            raise _malformed(
                f"the request has {len(inputs)} inputs but {len(raw)} raw_input_contents; "
                "send one raw content per input, in the order of the inputs",
                "raw_input_contents",
            )
        typed = next((t.name for t in inputs if t.HasField("contents")), None)
        if typed is not None:
            raise _malformed(
                f"input {typed[:60]!r} has typed contents but the request also carries "
                "raw_input_contents; send every input one way",
                typed[:60],
            )
    tensors: list[dict[str, Any]] = []
    for index, tensor in enumerate(inputs):
        name = tensor.name[:60]  # echoed in errors: never a megabyte of it
        shape = list(tensor.shape)
        if raw:
            data = raw_values(raw[index], tensor.datatype, shape, name)
        else:
            data = typed_values(tensor, name)
        tensors.append(
            {"name": tensor.name, "shape": shape, "datatype": tensor.datatype, "data": data}
        )
    payload: dict[str, Any] = {"inputs": tensors}
    if request.outputs:
        payload["outputs"] = [{"name": o.name} for o in request.outputs]
    return payload


def _raw_output(values: np.ndarray[Any, Any], datatype: str) -> bytes:
    if datatype == "BYTES":
        parts: list[bytes] = []
        for value in values.tolist():
            data = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(len(data).to_bytes(4, "little"))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(values, dtype=_RAW_DTYPES[datatype]).tobytes()


def _typed_output(
    contents: pb.InferTensorContents, values: np.ndarray[Any, Any], datatype: str
) -> None:
    field = getattr(contents, _TYPED_FIELD[datatype])
    if datatype == "BYTES":
        field.extend(v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values.tolist())
    else:
        field.extend(values.astype(_RAW_DTYPES[datatype]).tolist())


def add_outputs(
    response: pb.ModelInferResponse, tensors: list[dict[str, Any]], *, raw: bool
) -> None:
    """Append the REST codec's output tensors (``name``, ``shape``, ``datatype``, ``data``
    as an array) to ``response``: as ``raw_output_contents`` or in typed contents."""
    for tensor in tensors:
        out = response.outputs.add(
            name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
        )
        values = np.asarray(tensor["data"]).ravel()
        if raw:
            response.raw_output_contents.append(_raw_output(values, tensor["datatype"]))
        else:
            _typed_output(out.contents, values, tensor["datatype"])


def passthrough(parameters: dict[str, Any]) -> dict[str, list[Any]] | None:
    """The fields logged beside the features but never given to the model: the request's
    ``passthrough`` parameter, a string holding the JSON object the REST routes take
    (``{"region": ["north", "south"]}``), checked as theirs are
    (:func:`vigil.serving.codecs.native.passthrough_of`). A gRPC parameter holds a
    scalar, so the object travels as JSON text; its size is bounded by the message's.

    >>> passthrough({"passthrough": '{"sex": ["f", "m"]}'})
    {'sex': ['f', 'm']}
    >>> passthrough({}) is None
    True
    """
    text = parameters.get(native.PASSTHROUGH_KEY)
    if text is None:
        return None
    where = "parameters.passthrough"
    if not isinstance(text, str):
        raise ValidationError(
            "the 'passthrough' parameter must be a string_param holding a JSON object of "
            'lists, one value per row, e.g. \'{"sex": ["f", "m"]}\'',
            detail={"field": where, "row": None, "expected": "a string", "got": "other"},
        )
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(
            f"the 'passthrough' parameter is not valid JSON ({str(exc)[:120]}); send a JSON "
            'object of lists, e.g. \'{"sex": ["f", "m"]}\'',
            detail={"field": where, "row": None, "expected": "JSON", "got": "invalid JSON"},
        ) from None
    return native.passthrough_of({native.PASSTHROUGH_KEY: value})
