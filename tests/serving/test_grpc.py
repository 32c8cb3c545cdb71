"""The Open Inference Protocol v2 over gRPC, on a real port, with tritonclient.grpc and
with the protocol's own messages sent by hand (typed contents, malformed requests)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tg
from tests.serving.conftest import CLF_FEATURES, Models, ServerThread, make_provider
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException, serialize_byte_tensor

from vigil.errors import ConfigurationError
from vigil.serving.app import create_app
from vigil.serving.grpc.server import GrpcServer
from vigil.serving.provider import StaticProvider
from vigil.serving.server import free_port
from vigil.serving.workers import serve


class GrpcServerThread(ServerThread):
    """The test server, also answering gRPC on a free port."""

    def __init__(self, app: Any) -> None:
        self.grpc_port = free_port()
        app.grpc = GrpcServer(f"127.0.0.1:{self.grpc_port}")
        super().__init__(app)
        self.target = f"127.0.0.1:{self.grpc_port}"


@pytest.fixture(scope="module")
def grpc_provider(models: Models) -> StaticProvider:
    # Its own provider: stopping this module's server stops the provider's executors, which
    # the session's HTTP server (tests/serving/conftest.py) must keep.
    return make_provider(models)


@pytest.fixture(scope="module")
def grpc_server(grpc_provider: StaticProvider) -> Iterator[GrpcServerThread]:
    with GrpcServerThread(create_app(grpc_provider)) as running:
        yield running


@pytest.fixture
def triton(grpc_server: GrpcServerThread) -> Iterator[tg.InferenceServerClient]:
    client = tg.InferenceServerClient(grpc_server.target)
    yield client
    client.close()


@pytest.fixture
def stub(grpc_server: GrpcServerThread) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(grpc_server.target) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def _input(name: str, array: np.ndarray, datatype: str) -> tg.InferInput:
    tensor = tg.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def test_probes_and_metadata(triton: tg.InferenceServerClient):
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("clf") and triton.is_model_ready("clf", "2")
    server = triton.get_server_metadata(as_json=True)
    assert server["name"] == "vigil"
    meta = triton.get_model_metadata("shop", as_json=True)
    assert meta["name"] == "shop" and meta["versions"] == ["3"]
    assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [
        ("age", "FP64"),
        ("income", "FP64"),
        ("city", "BYTES"),
    ]
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["outputs"]] == [
        ("predict", "BYTES", ["-1"]),
        ("predict_proba", "FP64", ["-1", "2"]),
    ]


def test_one_2d_tensor_raw(triton: tg.InferenceServerClient, models: Models):
    X = models.X_clf[:6]
    result = triton.infer("clf", [_input("input-0", X, "FP64")], model_version="2", request_id="r1")
    np.testing.assert_array_equal(result.as_numpy("predict"), models.clf2.predict(X))
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), models.clf2.predict_proba(X))
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("clf", "2", "r1")


def test_one_tensor_per_feature_raw_fp32(triton: tg.InferenceServerClient, models: Models):
    X = models.X_clf[:5].astype(np.float32)
    inputs = [_input(name, X[:, j], "FP32") for j, name in enumerate(CLF_FEATURES)]
    outputs = [tg.InferRequestedOutput("predict")]
    result = triton.infer("clf", inputs, outputs=outputs)
    expected = models.clf.predict(X.astype(np.float64))
    np.testing.assert_array_equal(result.as_numpy("predict"), expected)
    assert result.as_numpy("predict_proba") is None


def test_bytes_inputs_for_a_string_feature(triton: tg.InferenceServerClient, models: Models):
    frame = models.shop_frame.iloc[:7]
    inputs = [
        _input("age", frame["age"].to_numpy(), "FP64"),
        _input("income", frame["income"].to_numpy(), "FP64"),
        _input("city", frame["city"].to_numpy(dtype=object), "BYTES"),
    ]
    result = triton.infer("shop", inputs)
    got = [v.decode() for v in result.as_numpy("predict")]
    assert got == models.shop.predict(frame).tolist()
    np.testing.assert_array_equal(
        result.as_numpy("predict_proba"), models.shop.predict_proba(frame)
    )


def _typed_request(X: np.ndarray, model: str = "clf") -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(X.shape))
    tensor.contents.fp64_contents.extend(X.ravel().tolist())
    return request


def test_typed_contents_in_typed_contents_out(stub: Any, models: Models):
    X = models.X_clf[:3]
    response = stub.ModelInfer(_typed_request(X))
    assert not response.raw_output_contents
    predict, proba = response.outputs
    assert (predict.name, predict.datatype, list(predict.shape)) == ("predict", "INT64", [3])
    assert list(predict.contents.int64_contents) == models.clf.predict(X).tolist()
    assert list(proba.shape) == [3, 2]
    np.testing.assert_array_equal(
        np.reshape(proba.contents.fp64_contents, (3, 2)), models.clf.predict_proba(X)
    )


def test_typed_bytes_and_int_contents(stub: Any, models: Models):
    frame = models.shop_frame.iloc[:4]
    request = pb.ModelInferRequest(model_name="shop")
    for name in ("age", "income"):
        t = request.inputs.add(name=name, datatype="FP64", shape=[4])
        t.contents.fp64_contents.extend(frame[name].tolist())
    city = request.inputs.add(name="city", datatype="BYTES", shape=[4, 1])
    city.contents.bytes_contents.extend(c.encode() for c in frame["city"])
    response = stub.ModelInfer(request)
    assert [v.decode() for v in response.outputs[0].contents.bytes_contents] == (
        models.shop.predict(frame).tolist()
    )


def test_request_id_in_trailing_metadata(stub: Any, models: Models):
    _, call = stub.ModelInfer.with_call(
        _typed_request(models.X_clf[:1]), metadata=(("x-request-id", "trace-42"),)
    )
    assert ("x-request-id", "trace-42") in call.trailing_metadata()


def _error(stub: Any, request: Any, metadata: Any = None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, metadata=metadata)
    return caught.value


def _raw(model: str, *tensors: tuple[str, str, list[int], bytes]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    for name, datatype, shape, raw in tensors:
        request.inputs.add(name=name, datatype=datatype, shape=shape)
        request.raw_input_contents.append(raw)
    return request


_ROW = np.linspace(-1, 1, 20)
_GOOD = ("input-0", "FP64", [1, 20], _ROW.tobytes())

# (what, request, expected code, a phrase of the message)
MALFORMED: list[tuple[str, Any, grpc.StatusCode, str]] = [
    (
        "unknown model",
        _raw("nobody", _GOOD),
        grpc.StatusCode.NOT_FOUND,
        "nobody",
    ),
    (
        "unknown version",
        pb.ModelInferRequest(
            model_name="clf",
            model_version="9",
            inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[1])],
            raw_input_contents=[b"\0" * 8],
        ),
        grpc.StatusCode.NOT_FOUND,
        "9",
    ),
    (
        "empty model name",
        _raw("", _GOOD),
        grpc.StatusCode.INVALID_ARGUMENT,
        "model name is empty",
    ),
    (
        "no inputs",
        pb.ModelInferRequest(model_name="clf"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "'inputs' must be a non-empty array",
    ),
    (
        "raw size not shape x datatype",
        _raw("clf", ("input-0", "FP64", [1, 20], b"\0" * 150)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input-0': shape [1, 20] of FP64 needs 160 bytes of raw contents, got 150",
    ),
    (
        "fewer raw contents than inputs",
        pb.ModelInferRequest(
            model_name="clf",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(name="f0", datatype="FP64", shape=[1]),
                pb.ModelInferRequest.InferInputTensor(name="f1", datatype="FP64", shape=[1]),
            ],
            raw_input_contents=[b"\0" * 8],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "2 inputs but 1 raw_input_contents",
    ),
    (
        "raw BYTES element longer than its contents",
        _raw("shop", ("city", "BYTES", [1], b"\x09\0\0\0paris")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "claims 9 bytes but only 5 remain",
    ),
    (
        "BYTES that are not UTF-8",
        _raw("shop", ("city", "BYTES", [1], b"\x02\0\0\0\xff\xfe")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "UTF-8",
    ),
    (
        "unknown datatype",
        _raw("clf", ("input-0", "FP128", [1, 20], b"\0" * 320)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "datatype must be one of",
    ),
    (
        "three dimensions",
        _raw("clf", ("input-0", "FP64", [1, 1, 20], _ROW.tobytes())),
        grpc.StatusCode.INVALID_ARGUMENT,
        "got 3 dimensions",
    ),
    (
        "2-D tensor of the wrong width",
        _raw("clf", ("input-0", "FP64", [2, 10], _ROW.tobytes())),
        grpc.StatusCode.INVALID_ARGUMENT,
        "a 2-D input must have shape [N, 20]",
    ),
    (
        "a string for a numeric feature",
        _raw("shop", ("age", "BYTES", [1], b"\x02\0\0\0ab")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'age' has datatype BYTES but the feature is float64; send FP64",
    ),
    (
        "missing feature",
        _raw("shop", ("age", "FP64", [1], b"\0" * 8)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "income",
    ),
    (
        "NaN in a feature that may not be null",
        _raw("clf", ("input-0", "FP64", [1, 20], np.full(20, np.nan).tobytes())),
        grpc.StatusCode.INVALID_ARGUMENT,
        "f0",
    ),
    (
        "unknown output",
        pb.ModelInferRequest(
            model_name="clf",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="input-0", datatype="FP64", shape=[1, 20]
                )
            ],
            outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="embedding")],
            raw_input_contents=[_ROW.tobytes()],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown output 'embedding'",
    ),
    (
        "typed values in the wrong field",
        pb.ModelInferRequest(
            model_name="clf",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="input-0",
                    datatype="FP64",
                    shape=[1, 20],
                    contents=pb.InferTensorContents(fp32_contents=[0.0] * 20),
                )
            ],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "whose values go in contents.fp64_contents; got contents.fp32_contents",
    ),
    (
        "FP16 as typed contents",
        pb.ModelInferRequest(
            model_name="clf",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="input-0", datatype="FP16", shape=[1, 20]
                )
            ],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "FP16 has no typed contents field; send it in raw_input_contents",
    ),
    (
        "typed and raw contents mixed",
        pb.ModelInferRequest(
            model_name="clf",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="input-0",
                    datatype="FP64",
                    shape=[1, 20],
                    contents=pb.InferTensorContents(fp64_contents=[0.0] * 20),
                )
            ],
            raw_input_contents=[_ROW.tobytes()],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "send every input one way",
    ),
    (
        "a message over the body limit",
        _raw("clf", ("input-0", "FP64", [60_000, 20], np.zeros((60_000, 20)).tobytes())),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "larger than max",
    ),
    (
        "more input tensors than the column limit",
        _raw("clf", *[(f"x{i}", "FP64", [1], b"\0" * 8) for i in range(145)]),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "145",
    ),
    (
        "an endpoint on a server without a registry",
        pb.ModelInferRequest(
            model_name="checkout",
            parameters={"endpoint": pb.InferParameter(string_param="checkout")},
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="input-0", datatype="FP64", shape=[1, 20]
                )
            ],
            raw_input_contents=[_ROW.tobytes()],
        ),
        grpc.StatusCode.NOT_FOUND,
        "no experiment endpoints",
    ),
    (
        "an endpoint parameter that is not a string",
        pb.ModelInferRequest(
            model_name="checkout",
            parameters={"endpoint": pb.InferParameter(int64_param=3)},
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="input-0", datatype="FP64", shape=[1, 20]
                )
            ],
            raw_input_contents=[_ROW.tobytes()],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "send it as a string",
    ),
]


@pytest.mark.parametrize(
    ("request_", "code", "phrase"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_requests(stub: Any, request_: Any, code: grpc.StatusCode, phrase: str):
    error = _error(stub, request_)
    assert error.code() == code, error.details()
    assert phrase in error.details()
    if "larger than max" not in phrase:  # refused by gRPC itself, before vigil
        trailers = dict(error.trailing_metadata())
        assert trailers["vigil-error-code"] and len(trailers["x-request-id"]) > 0


def test_the_server_keeps_answering_after_errors(triton: tg.InferenceServerClient, models: Models):
    with pytest.raises(InferenceServerException) as caught:
        triton.infer("nobody", [_input("input-0", models.X_clf[:1], "FP64")])
    assert caught.value.status() == "StatusCode.NOT_FOUND"
    result = triton.infer("clf", [_input("input-0", models.X_clf[:1], "FP64")])
    assert result.as_numpy("predict").tolist() == models.clf.predict(models.X_clf[:1]).tolist()


def test_bytes_serialisation_matches_tritonclient():
    """Our raw BYTES parser reads what tritonclient writes, empty strings included."""
    from vigil.serving.grpc.tensors import raw_values

    values = np.array(["paris", "", "nice é"], dtype=object)
    raw = serialize_byte_tensor(values).item()
    assert raw_values(raw, "BYTES", [3], "city") == ["paris", "", "nice é"]


def _doc_table() -> dict[str, str]:
    """The malformed-request table of docs/serving.md: request → gRPC status."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text()
    section = text.split("Malformed requests and their answers", 1)[1].split("\n\n", 2)[1]
    rows = [line.split("|")[1:3] for line in section.splitlines()[2:]]
    return {what.strip(): code.strip().strip("`") for what, code in rows}


def test_the_documented_table_is_the_tested_one():
    assert _doc_table() == {case[0]: case[2].name for case in MALFORMED}


def test_a_grpc_port_in_use_stops_the_worker_with_what_to_do(grpc_provider: StaticProvider):
    app = create_app(grpc_provider)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        server = GrpcServer(f"127.0.0.1:{port}")
        with pytest.raises(ConfigurationError, match="choose another --grpc-port"):
            asyncio.run(server.start(app.dataplane, None))


def test_the_grpc_port_must_differ_from_the_http_port():
    with pytest.raises(ConfigurationError, match="--grpc-port must differ from --port"):
        serve("tests.serving.test_workers:provider", port=8123, grpc_port=8123)


def test_triton_methods_beyond_the_protocol_are_unimplemented(triton: tg.InferenceServerClient):
    with pytest.raises(InferenceServerException) as caught:
        triton.get_model_config("clf")
    assert caught.value.status() == "StatusCode.UNIMPLEMENTED"
    assert triton.is_server_live()  # and the server goes on
