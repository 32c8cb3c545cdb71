"""The binary tensor data extension of the Open Inference Protocol v2 (REST), both ways.

A request with an ``Inference-Header-Content-Length`` header carries that many bytes of
JSON, then the raw data of every input whose ``parameters.binary_data_size`` says so, in
the order of ``inputs``: little-endian, row-major, no padding; ``BOOL`` one byte (0 or 1),
``BYTES`` each element as a 4-byte little-endian length then its bytes (UTF-8 text here);
``FP16`` and ``BF16`` are widened to floats. :func:`read_inputs` turns each binary input
into the ``data`` list a JSON tensor would have held, so the decoded request goes through
the very path of a JSON one (the same checks, validation, batching, capture and metrics).

An output goes back as binary data when the request asks (``parameters.binary_data`` of
the output, else ``parameters.binary_data_output`` of the request): :func:`encode` puts
``parameters.binary_data_size`` in its place in the JSON and appends its bytes after it,
with the same header.

Every framing error is a 400 naming the tensor; every step costs time linear in the body
(the number of ``BYTES`` elements read is bounded by the tensor's size / 4 before any is).

>>> import struct
>>> inputs = [{"name": "f", "shape": [2], "datatype": "FP32",
...            "parameters": {"binary_data_size": 8}}]
>>> read_inputs(inputs, memoryview(struct.pack("<2f", 0.5, 2.0)))[0]["data"]
[0.5, 2.0]
>>> read_inputs(inputs, memoryview(b"1234567"))
Traceback (most recent call last):
...
vigil.errors.MalformedRequestError: input 'f': binary_data_size is 8 bytes but only 7 bytes of binary data follow the JSON (7 after the inputs before it); send each input's raw bytes after the JSON, in the order of 'inputs'
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np

from vigil.errors import MalformedRequestError, PayloadTooLargeError
from vigil.serving.http import Response, dumps

EXTENSION = "binary_tensor_data"
"""The extension's name in the server metadata."""

OCTET_STREAM = b"application/octet-stream"
HEADER = b"inference-header-content-length"

_FIXED: dict[str, str] = {
    "BOOL": "u1",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "BF16": "<u2",  # the upper half of a float32: widened in _fixed
    "FP32": "<f4",
    "FP64": "<f8",
}
_OUTPUT_DTYPE = {"BOOL": "u1", "INT64": "<i8", "FP32": "<f4", "FP64": "<f8"}


def _fail(
    message: str, field: str | None, expected: str | None = None, got: str | None = None
) -> MalformedRequestError:
    return MalformedRequestError(
        message, detail={"field": field, "row": None, "expected": expected, "got": got}
    )


def _shown_shape(shape: list[int]) -> str:
    text = str(shape)
    return text if len(text) <= 60 else text[:56] + " ...]"


def _count(shown: str, shape: Any, size: int) -> int:
    """The number of elements of ``shape``, or ``size + 1`` when it is larger than
    ``size`` (every element takes a byte at least): the product of many large sizes is
    never computed."""
    if not (
        isinstance(shape, list) and shape and all(type(d) is int and 0 <= d < 2**63 for d in shape)
    ):
        raise _fail(f"input {shown!r}: shape must be a list of sizes such as [2, 20]", shown)
    if 0 in shape:
        return 0
    count = 1
    for d in shape:
        count *= d
        if count > size:
            return size + 1
    return count


def read_inputs(inputs: Any, binary: memoryview | None, max_values: int | None = None) -> Any:
    """``inputs`` with each binary tensor's ``data`` read from ``binary`` (the body after
    its JSON part; ``None`` without an ``Inference-Header-Content-Length`` header), as the
    flat list of Python values a JSON tensor holds. Anything else is returned unchanged
    for the JSON decoder to judge. Raises :class:`MalformedRequestError` (400) naming the
    tensor when the framing does not add up, and :class:`PayloadTooLargeError` (413) for a
    tensor of more than ``max_values`` elements (more values than validation would take)
    before reading it."""
    if not isinstance(inputs, list):
        return inputs
    offset = 0
    total = 0 if binary is None else len(binary)
    read: list[Any] = []
    for index, tensor in enumerate(inputs):
        parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
            read.append(tensor)
            continue
        name = tensor.get("name")
        shown = name[:60] if isinstance(name, str) else f"inputs[{index}]"
        size = parameters["binary_data_size"]
        if type(size) is not int or size < 0:
            raise _fail(
                f"input {shown!r}: parameters.binary_data_size must be the tensor's size in "
                f"bytes (an integer, 0 or more), got {str(size)[:40]!r}",
                shown,
                "an integer >= 0",
                str(size)[:40],
            )
        if binary is None:
            raise _fail(
                f"input {shown!r} has parameters.binary_data_size but the request has no "
                "Inference-Header-Content-Length header; send the length in bytes of the "
                "JSON part in that header, then the raw tensor data",
                shown,
                "Inference-Header-Content-Length",
                "no header",
            )
        if "data" in tensor:
            raise _fail(
                f"input {shown!r} has both 'data' and parameters.binary_data_size; send its "
                "values one way: in 'data' (JSON) or after the JSON (binary)",
                shown,
            )
        if size > total - offset:
            raise _fail(
                f"input {shown!r}: binary_data_size is {size} bytes but only {total} bytes of "
                f"binary data follow the JSON ({total - offset} after the inputs before it); "
                "send each input's raw bytes after the JSON, in the order of 'inputs'",
                shown,
                f"{size} bytes",
                f"{total - offset} bytes",
            )
        chunk = binary[offset : offset + size]
        offset += size
        data = _values(shown, tensor.get("datatype"), tensor.get("shape"), chunk, max_values)
        read.append({**tensor, "data": data})
    if offset != total:
        raise _fail(
            f"{total} bytes of binary data follow the JSON but the inputs' "
            f"parameters.binary_data_size add up to {offset}; give every binary input its "
            "size in bytes, and send nothing after the last one",
            "binary_data_size",
            f"{total} bytes",
            f"{offset} bytes",
        )
    return read


def _values(
    shown: str, datatype: Any, shape: Any, chunk: memoryview, max_values: int | None
) -> list[Any]:
    size = len(chunk)
    if datatype == "BYTES":
        return _strings(shown, shape, chunk, max_values)
    dtype = _FIXED.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        known = sorted([*_FIXED, "BYTES"])
        raise _fail(
            f"input {shown!r}: datatype must be one of {known}, got {str(datatype)[:40]!r}",
            shown,
        )
    itemsize = np.dtype(dtype).itemsize
    count = _count(shown, shape, size)
    if count * itemsize != size:
        needs = f"{count * itemsize}" if count <= size else f"more than {size}"
        raise _fail(
            f"input {shown!r}: binary_data_size is {size} bytes but shape "
            f"{_shown_shape(shape)} of {datatype} ({itemsize} bytes each) needs {needs}; "
            "send shape x the datatype's size bytes",
            shown,
            f"{needs} bytes",
            f"{size} bytes",
        )
    _check_values(shown, count, max_values)
    array = np.frombuffer(chunk, dtype=dtype)
    if datatype == "BOOL":
        if (array > 1).any():
            at = int(np.argmax(array > 1))
            raise _fail(
                f"input {shown!r}: element {at} is the byte {int(array[at])}; a BOOL is one "
                "byte, 0 (false) or 1 (true)",
                shown,
                "0 or 1",
                str(int(array[at])),
            )
        return array.astype(bool).tolist()  # type: ignore[no-any-return]
    if datatype == "BF16":
        array = (array.astype("<u4") << 16).view("<f4")
    return array.tolist()  # type: ignore[no-any-return]


def _check_values(shown: str, count: int, limit: int | None) -> None:
    if limit is not None and count > limit:
        raise PayloadTooLargeError(
            f"input {shown!r} holds {count} values; this server accepts at most {limit} "
            "values per request: send fewer rows per request (or raise VIGIL_SERVE_MAX_CELLS)",
            detail={"field": shown, "limit": limit, "values": count},
        )


def _strings(shown: str, shape: Any, chunk: memoryview, max_values: int | None) -> list[str]:
    """The elements of a ``BYTES`` tensor, each a 4-byte little-endian length then as
    many bytes of UTF-8 text."""
    size = len(chunk)
    count = _count(shown, shape, size)
    if count > size // 4:
        held = str(count) if count <= size else f"more than {size}"  # size + 1: "too many"
        raise _fail(
            f"input {shown!r}: shape {_shown_shape(shape)} holds {held} BYTES elements but "
            f"binary_data_size is {size} bytes (each element takes a 4-byte length at "
            "least); send each element as its length, then its bytes",
            shown,
            f"at most {size // 4} elements",
            f"{held} elements",
        )
    _check_values(shown, count, max_values)
    values: list[str] = []
    offset = 0
    for k in range(count):
        if offset + 4 > size:
            raise _fail(
                f"input {shown!r}: BYTES element {k} of {count} starts at byte {offset} but "
                f"the tensor's {size} bytes leave no room for its 4-byte length",
                shown,
                f"{count} elements",
                f"{k} elements",
            )
        length = int.from_bytes(chunk[offset : offset + 4], "little")
        offset += 4
        if length > size - offset:
            raise _fail(
                f"input {shown!r}: BYTES element {k} says it is {length} bytes long but only "
                f"{size - offset} bytes of the tensor are left; each element is a 4-byte "
                "little-endian length, then that many bytes",
                shown,
                f"at most {size - offset} bytes",
                f"{length} bytes",
            )
        try:
            values.append(str(chunk[offset : offset + length], "utf-8"))
        except UnicodeDecodeError:
            raise _fail(
                f"input {shown!r}: BYTES element {k} is not UTF-8 text; send strings "
                "encoded as UTF-8",
                shown,
                "UTF-8 text",
                "other bytes",
            ) from None
        offset += length
    if offset != size:
        raise _fail(
            f"input {shown!r}: {size - offset} bytes are left after the {count} BYTES "
            f"elements of shape {_shown_shape(shape)}; binary_data_size must be the size of "
            "exactly those elements",
            shown,
            f"{offset} bytes",
            f"{size} bytes",
        )
    return values


def binary_outputs(payload: dict[str, Any], outputs: list[str]) -> frozenset[str]:
    """Which of ``outputs`` (already checked by name) go back as binary data: those whose
    ``parameters.binary_data`` is true, else all when the request's
    ``parameters.binary_data_output`` is true."""
    default = False
    parameters = payload.get("parameters")
    if isinstance(parameters, dict) and "binary_data_output" in parameters:
        default = _flag(parameters["binary_data_output"], "parameters.binary_data_output")
    chosen: dict[str, bool] = {}
    requested = payload.get("outputs")
    for output in requested if isinstance(requested, list) else ():
        asked = output.get("parameters")
        if not isinstance(asked, dict):
            continue
        name = output["name"]
        if asked.get("classification") not in (None, 0):
            raise _fail(
                f"output {name[:40]!r}: the classification extension is not supported; leave "
                "out parameters.classification (class_count) and read predict_proba",
                name[:40],
            )
        if "binary_data" in asked:
            chosen[name] = _flag(asked["binary_data"], f"output {name[:40]!r}: binary_data")
    return frozenset(n for n in outputs if chosen.get(n, default))


def _flag(value: Any, where: str) -> bool:
    if type(value) is not bool:
        raise _fail(
            f"{where} must be true or false, got {str(value)[:40]!r}",
            where,
            "true or false",
            str(value)[:40],
        )
    return value


def tensor_bytes(datatype: str, data: Any) -> bytes:
    """The raw bytes of an output tensor's flat ``data`` as the extension lays them out.

    >>> tensor_bytes("INT64", np.array([1, 2], dtype=np.int32)).hex()
    '01000000000000000200000000000000'
    >>> tensor_bytes("BYTES", np.array(["no", "yes"], dtype=object))
    b'\\x02\\x00\\x00\\x00no\\x03\\x00\\x00\\x00yes'
    """
    if datatype != "BYTES":
        return np.ascontiguousarray(data, dtype=_OUTPUT_DTYPE[datatype]).tobytes()
    encoded = [
        v if isinstance(v, bytes) else str(v).encode() for v in np.asarray(data).ravel().tolist()
    ]
    lengths = [len(e).to_bytes(4, "little") for e in encoded]
    return b"".join(chain.from_iterable(zip(lengths, encoded, strict=True)))


def response(
    body: dict[str, Any], binary: frozenset[str], headers: list[tuple[bytes, bytes]]
) -> Response:
    """The response for an inference ``body`` (its ``outputs`` holding ``data``): JSON
    alone when no output is ``binary``; else each such output gets
    ``parameters.binary_data_size`` instead of ``data``, and its bytes follow the JSON, in
    output order, with the ``Inference-Header-Content-Length`` header."""
    if not binary:
        return Response(dumps(body), headers=headers)
    chunks: list[bytes] = []
    for tensor in body["outputs"]:
        if tensor["name"] in binary:
            raw = tensor_bytes(tensor["datatype"], tensor.pop("data"))
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
    header = dumps(body)
    return Response(
        b"".join([header, *chunks]),
        content_type=OCTET_STREAM,
        headers=[*headers, (HEADER, str(len(header)).encode())],
    )
