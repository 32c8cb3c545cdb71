"""Fuzzing the gRPC tensor decoder: any ``ModelInferRequest`` (raw bytes of any size for
any datatype and shape, typed contents in any field, both at once) is either decoded and
validated or refused with one of vigil's typed 4xx errors, never another exception, with
a short message. Derandomized, so every run tries the same examples."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.errors import VigilError
from vigil.serving.codecs import v2
from vigil.serving.grpc import inference_v2_pb2 as pb
from vigil.serving.grpc import tensors
from vigil.serving.provider import ServedModel, StaticProvider

FUZZ = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
DATATYPES = st.sampled_from(
    [
        *("FP64", "FP32", "FP16", "BF16", "INT64", "INT32", "INT8", "UINT8", "UINT64", "BOOL"),
        *("BYTES", "STRING", "", "fp64"),
    ]
)
NAMES = st.sampled_from(["input-0", "f0", "f19", "age", "income", "city", "x", ""])
SHAPES = st.lists(st.integers(min_value=-2, max_value=2**40), max_size=4) | st.lists(
    st.integers(min_value=0, max_value=25), min_size=1, max_size=2
)
FIELDS = st.sampled_from(
    [f.name for f in pb.InferTensorContents.DESCRIPTOR.fields]  # every typed field
)


def _contents(field: str) -> st.SearchStrategy[list[Any]]:
    if field == "bool_contents":
        return st.lists(st.booleans(), max_size=30)
    if field == "bytes_contents":
        return st.lists(st.binary(max_size=8) | st.sampled_from([b"paris", b"lyon"]), max_size=30)
    if field in ("fp32_contents", "fp64_contents"):
        width = 32 if field == "fp32_contents" else 64
        return st.lists(st.floats(width=width), max_size=30)
    bounds = {
        "int_contents": (-(2**31), 2**31 - 1),
        "int64_contents": (-(2**63), 2**63 - 1),
        "uint_contents": (0, 2**32 - 1),
        "uint64_contents": (0, 2**64 - 1),
    }[field]
    return st.lists(st.integers(*bounds), max_size=30)


@st.composite
def requests(draw: st.DrawFn) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    count = draw(st.integers(min_value=1, max_value=4))
    raw = draw(st.booleans())
    for _ in range(count):
        tensor = request.inputs.add(name=draw(NAMES), datatype=draw(DATATYPES), shape=draw(SHAPES))
        if raw or draw(st.integers(0, 9)) == 0:  # sometimes both ways at once
            request.raw_input_contents.append(draw(st.binary(max_size=400)))
        if not raw or draw(st.integers(0, 9)) == 0:
            field = draw(FIELDS)
            getattr(tensor.contents, field).extend(draw(_contents(field)))
    if draw(st.booleans()):
        request.outputs.add(name=draw(st.sampled_from(["predict", "predict_proba", "x"])))
    return request


def _bytes_tensor(values: list[bytes]) -> bytes:
    return b"".join(len(v).to_bytes(4, "little") + v for v in values)


@st.composite
def near_valid(draw: st.DrawFn) -> pb.ModelInferRequest:
    """Requests shaped as the models take them (raw contents of the right sizes, values of
    any float, strings of any bytes), then perhaps cut or padded by a few bytes."""
    rows = draw(st.integers(min_value=0, max_value=4))
    request = pb.ModelInferRequest(model_name="m")
    floats = st.floats(allow_nan=True, allow_infinity=True)
    if draw(st.booleans()):
        values = draw(st.lists(floats, min_size=rows * 20, max_size=rows * 20))
        request.inputs.add(name="input-0", datatype="FP64", shape=[rows, 20])
        request.raw_input_contents.append(np.asarray(values, "<f8").tobytes())
    else:
        for name in ("age", "income"):
            values = draw(st.lists(floats, min_size=rows, max_size=rows))
            request.inputs.add(name=name, datatype="FP64", shape=[rows])
            request.raw_input_contents.append(np.asarray(values, "<f8").tobytes())
        cities = draw(
            st.lists(
                st.sampled_from([b"paris", b"nice", b""]) | st.binary(max_size=6),
                min_size=rows,
                max_size=rows,
            )
        )
        request.inputs.add(name="city", datatype="BYTES", shape=[rows, 1])
        request.raw_input_contents.append(_bytes_tensor(cities))
    cut = draw(st.integers(min_value=-3, max_value=3))
    if cut and draw(st.integers(0, 3)) == 0:
        last = request.raw_input_contents[-1]
        request.raw_input_contents[-1] = last[:cut] if cut < 0 else last + b"\0" * cut
    return request


@pytest.fixture(scope="module")
def served(provider: StaticProvider) -> list[ServedModel]:
    """A numeric model (a float matrix) and one with a categorical feature (a frame)."""
    return [provider.get("clf"), provider.get("shop")]


@given(request=requests() | near_valid())
@FUZZ
def test_any_request_is_decoded_or_refused_with_a_4xx(
    served: list[ServedModel], request: pb.ModelInferRequest
) -> None:
    for model in served:
        try:
            table, _ = v2.decode(model, tensors.request_payload(request))
            model.validator.validate(table)
        except VigilError as exc:
            assert 400 <= exc.status < 500, exc
            assert exc.message and len(exc.message) < 2_000, exc.message[:200]
