"""OpenTelemetry spans of predictions (vigil.serving.tracing), read back from the SDK's
in-memory exporter behind a real server: REST (native, v2 JSON and binary, MLflow) and gRPC,
with the inference log on."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tests._waiting import wait_for
from tests.serving.conftest import (
    CLF_FEATURES,
    SETTINGS,
    Models,
    ServerThread,
    SklearnAdapter,
    bundles,
    clf_signature,
    records,
)
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from vigil.bundle.model import LoadedBundle
from vigil.capture.log import SegmentLog
from vigil.capture.sink import CaptureSink
from vigil.serving.app import create_app
from vigil.serving.grpc.server import GrpcServer
from vigil.serving.provider import StaticProvider
from vigil.serving.server import free_port
from vigil.serving.tracing import Tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
STAGES = ["decode", "validate", "batch wait", "encode"]


POISON = 12345.0


class Broken(SklearnAdapter):
    """A model that fails on rows holding :data:`POISON` (a 500 for the client); it
    answers its warm-up."""

    def predict(self, X: Any) -> np.ndarray:
        if np.any(np.asarray(X) == POISON):
            raise MemoryError("the model fell over")  # a broken server: 500
        return super().predict(X)


class Traced:
    """A server (REST and gRPC) whose spans land in an in-memory exporter."""

    def __init__(self, server: ServerThread, grpc_target: str, exporter: InMemorySpanExporter):
        self.server = server
        self.url = server.url
        self.grpc_target = grpc_target
        self.exporter = exporter

    def spans(self, count: int) -> list[ReadableSpan]:
        """The spans exported so far, once there are ``count`` of them (the batch's span
        may end a moment after the client has its answer)."""
        wait_for(lambda: len(self.exporter.get_finished_spans()) >= count, 10, what="spans")
        spans = list(self.exporter.get_finished_spans())
        self.exporter.clear()
        return spans


@pytest.fixture(scope="module")
def traced(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    served = StaticProvider(
        [
            *bundles(models),
            LoadedBundle(Broken(models.clf), clf_signature(), name="broken", version=1),
        ],
        aliases={"clf": {"production": 1}},
        settings=SETTINGS,
    )
    capture = CaptureSink(SegmentLog(tmp_path_factory.mktemp("capture")))
    app = create_app(served, capture=capture, tracing=Tracing(provider))
    grpc_port = free_port()
    app.grpc = GrpcServer(f"127.0.0.1:{grpc_port}")
    with ServerThread(app) as server:
        yield Traced(server, f"127.0.0.1:{grpc_port}", exporter)


@pytest.fixture(autouse=True)
def _fresh(traced: Traced) -> None:
    traced.exporter.clear()  # a failed test's spans are not the next one's


def _by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def _tree(spans: list[ReadableSpan], server: ReadableSpan) -> dict[str, ReadableSpan]:
    """The children of ``server`` by name (one each), the batch's capture included."""
    children = {
        s.name: s
        for s in spans
        if s.parent is not None and s.parent.span_id == server.context.span_id
    }
    predict = children.get("predict")
    if predict is not None:
        for s in spans:
            if s.parent is not None and s.parent.span_id == predict.context.span_id:
                children[f"predict/{s.name}"] = s
    return children


def _v2_binary(X: np.ndarray) -> tuple[bytes, dict[str, str]]:
    raw = np.ascontiguousarray(X, dtype="<f8").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(X.shape),
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    framing = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    return header + raw, framing


def test_a_native_request_continues_the_callers_trace(traced: Traced, models: Models) -> None:
    X = models.X_clf[:3]
    r = httpx.post(
        traced.url + "/v1/models/clf/predict",
        json={"instances": records(X, CLF_FEATURES)},
        headers={"traceparent": TRACEPARENT, "tracestate": "vendor=opaque"},
    )
    assert r.status_code == 200
    spans = traced.spans(7)
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.name == "POST /v1/models/{name}/predict"
    # The caller's trace and span are the parent; its tracestate goes along.
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert server.parent is not None and f"{server.parent.span_id:016x}" == PARENT_ID
    assert server.parent.is_remote
    assert server.context.trace_state.get("vendor") == "opaque"
    attributes = dict(server.attributes or {})
    assert attributes["vigil.model"] == "clf"
    assert attributes["vigil.model.version"] == 1
    assert attributes["vigil.rows"] == 3
    assert attributes["http.response.status_code"] == 200
    assert attributes["http.request.method"] == "POST"
    assert server.status.status_code is StatusCode.UNSET
    tree = _tree(spans, server)
    assert sorted(tree) == sorted([*STAGES, "predict", "predict/capture"])
    assert all(s.context.trace_id == server.context.trace_id for s in spans)
    # The stages follow one another in time, inside the request.
    stages = [tree[name] for name in STAGES]
    assert all(a.end_time <= b.start_time for a, b in itertools.pairwise(stages))
    assert server.start_time <= stages[0].start_time
    assert stages[-1].end_time <= server.end_time
    predict = tree["predict"]
    assert dict(predict.attributes or {})["vigil.batch.rows"] == 3
    assert tree["batch wait"].end_time <= predict.start_time
    assert [link.context.span_id for link in predict.links] == [server.context.span_id]
    assert dict(tree["predict/capture"].attributes or {})["vigil.capture.records"] == 1
    # The answer names the trace (W3C traceresponse: this server span's ids).
    assert r.headers["traceresponse"] == f"00-{TRACE_ID}-{server.context.span_id:016x}-01"


def test_every_rest_protocol_is_traced(traced: Traced, models: Models) -> None:
    X = models.X_clf[:2]
    v2_json = {
        "inputs": [
            {"name": "input-0", "shape": [2, 20], "datatype": "FP64", "data": X.ravel().tolist()}
        ]
    }
    binary, framing = _v2_binary(X)
    calls = [
        ("/v2/models/clf/infer", {"json": v2_json}, "POST /v2/models/{name}/infer"),
        ("/v2/models/clf/infer", {"content": binary, "headers": framing}, None),
        (
            "/invocations",
            {"json": {"dataframe_split": {"columns": CLF_FEATURES, "data": X.tolist()}}},
            "POST /invocations",
        ),
    ]
    for path, request, name in calls:
        r = httpx.post(traced.url + path, **request)
        assert r.status_code == 200, r.text
        spans = traced.spans(7)
        (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
        assert server.name == (name or "POST /v2/models/{name}/infer")
        assert server.parent is None  # no traceparent: a trace of its own
        assert dict(server.attributes or {})["vigil.rows"] == 2
        assert sorted(_tree(spans, server)) == sorted([*STAGES, "predict", "predict/capture"])
        assert r.headers["traceresponse"].split("-")[1] == f"{server.context.trace_id:032x}"


def test_a_batch_links_every_request_it_served(traced: Traced, models: Models) -> None:
    # "slow" takes 30 ms a call: requests that arrive meanwhile join the next batch.
    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=traced.url, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/v1/models/slow/predict",
                        json={"instances": records(models.X_clf[i : i + 1], CLF_FEATURES)},
                    )
                    for i in range(8)
                )
            )

    answers = asyncio.run(send_all())
    assert [r.status_code for r in answers] == [200] * 8
    spans = traced.spans(8 * 5 + 2)
    by_name = _by_name(spans)
    servers = {s.context.span_id: s for s in by_name["POST /v1/models/{name}/predict"]}
    assert len(servers) == 8
    batches = by_name["predict"]
    linked = [link.context.span_id for batch in batches for link in batch.links]
    # Every request is linked from exactly one batch, whose rows are its requests'.
    assert sorted(linked) == sorted(servers)
    assert len(batches) < 8  # some requests shared a model call
    for batch in batches:
        served = [servers[link.context.span_id] for link in batch.links]
        attributes = dict(batch.attributes or {})
        assert attributes["vigil.batch.requests"] == len(served)
        assert attributes["vigil.batch.rows"] == len(served)
        # A child of the request that started it; the others reach it through the link.
        assert batch.parent is not None and batch.parent.span_id == served[0].context.span_id
        for request in served:
            (wait,) = [
                s
                for s in by_name["batch wait"]
                if s.parent is not None and s.parent.span_id == request.context.span_id
            ]
            assert wait.end_time <= batch.start_time
    assert len(by_name["capture"]) == len(batches)


def test_errors_set_the_span_status(traced: Traced, models: Models) -> None:
    bad = records(models.X_clf[:1], CLF_FEATURES)
    bad[0]["f3"] = "not a number"
    r = httpx.post(traced.url + "/v1/models/clf/predict", json={"instances": bad})
    assert r.status_code == 422
    spans = traced.spans(3)
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    tree = _tree(spans, server)
    assert sorted(tree) == ["decode", "validate"]
    assert tree["validate"].status.status_code is StatusCode.ERROR
    assert dict(tree["validate"].attributes or {})["error.type"] == "validation_error"
    assert tree["decode"].status.status_code is StatusCode.UNSET
    # A client's error is not the server's (OpenTelemetry's HTTP conventions).
    assert server.status.status_code is StatusCode.UNSET
    assert dict(server.attributes or {})["http.response.status_code"] == 422

    r = httpx.post(traced.url + "/v1/models/nope/predict", json={"instances": bad})
    assert r.status_code == 404
    (server,) = [s for s in traced.spans(2) if s.kind is SpanKind.SERVER]
    assert dict(server.attributes or {})["error.type"] == "model_not_found"

    row = records(models.X_clf[:1], CLF_FEATURES)
    row[0]["f0"] = POISON
    r = httpx.post(traced.url + "/v1/models/broken/predict", json={"instances": row})
    assert r.status_code == 500, r.text
    spans = traced.spans(5)
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert sorted(_tree(spans, server)) == ["batch wait", "decode", "predict", "validate"]
    assert server.status.status_code is StatusCode.ERROR
    assert dict(server.attributes or {})["http.response.status_code"] == 500
    (batch,) = _by_name(spans)["predict"]
    assert batch.status.status_code is StatusCode.ERROR
    assert dict(batch.attributes or {})["error.type"] == "prediction_failed"
    assert "capture" not in _by_name(spans)  # nothing answered, nothing logged


def test_grpc_model_infer_continues_the_callers_trace(traced: Traced, models: Models) -> None:
    X = models.X_clf[:4]
    request = pb.ModelInferRequest(model_name="clf")
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(X.shape))
    tensor.contents.fp64_contents.extend(X.ravel().tolist())
    with grpc.insecure_channel(traced.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        _, call = stub.ModelInfer.with_call(request, metadata=[("traceparent", TRACEPARENT)])
    spans = traced.spans(7)
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.name == "inference.GRPCInferenceService/ModelInfer"
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert server.parent is not None and f"{server.parent.span_id:016x}" == PARENT_ID
    attributes = dict(server.attributes or {})
    assert attributes["rpc.system"] == "grpc"
    assert attributes["rpc.grpc.status_code"] == 0
    assert attributes["vigil.rows"] == 4
    assert sorted(_tree(spans, server)) == sorted([*STAGES, "predict", "predict/capture"])
    trailers = dict(call.trailing_metadata())
    assert trailers["traceresponse"] == f"00-{TRACE_ID}-{server.context.span_id:016x}-01"

    request.model_name = "nope"
    with grpc.insecure_channel(traced.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError):
            stub.ModelInfer(request)
    (server,) = [s for s in traced.spans(2) if s.kind is SpanKind.SERVER]
    assert (
        dict(server.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    )


def test_probes_and_metadata_are_not_traced(traced: Traced) -> None:
    assert httpx.get(traced.url + "/readyz").status_code == 200
    assert httpx.get(traced.url + "/v1/models/clf").status_code == 200
    assert traced.exporter.get_finished_spans() == ()


_SERVE = textwrap.dedent(
    """
    import sys, numpy as np, httpx
    from sklearn.linear_model import LogisticRegression
    from tests.serving.conftest import SklearnAdapter, ServerThread, clf_signature
    from vigil.bundle.model import LoadedBundle
    from vigil.serving.app import create_app
    from vigil.serving.config import ServingSettings
    from vigil.serving.provider import StaticProvider

    X = np.random.default_rng(0).normal(size=(50, 20))
    model = LogisticRegression().fit(X, X[:, 0] > 0)
    settings = ServingSettings()  # VIGIL_SERVE_TRACING from the environment
    bundle = LoadedBundle(SklearnAdapter(model), clf_signature(), name="clf", version=1)
    body = {"instances": [dict(zip([f"f{i}" for i in range(20)], map(float, X[0])))]}
    with ServerThread(create_app(StaticProvider([bundle], settings=settings))) as server:
        for _ in range(3):
            r = httpx.post(server.url + "/v1/models/clf/predict", json=body)
            assert r.status_code == 200, r.text
        print(r.headers.get("traceresponse"))
    print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))
    """
)


def _serve(env: dict[str, str]) -> list[str]:
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    environ = {**os.environ, "PYTHONPATH": path, **env}
    done = subprocess.run(
        [sys.executable, "-c", _SERVE], env=environ, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_off_by_default_opentelemetry_is_never_imported() -> None:
    header, modules = _serve({"VIGIL_SERVE_TRACING": "false"})
    assert header == "None"
    assert modules == "[]"


def test_on_the_spans_go_to_the_otlp_endpoint_of_the_environment() -> None:
    """VIGIL_SERVE_TRACING=true and the standard OTEL_* variables: spans reach a real
    OTLP/HTTP receiver (protobuf over POST /v1/traces), named after the service vigil."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[ExportTraceServiceRequest] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            assert self.path == "/v1/traces"
            received.append(ExportTraceServiceRequest.FromString(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Receiver) as receiver:
        Thread(target=receiver.serve_forever, daemon=True).start()
        header, modules = _serve(
            {
                "VIGIL_SERVE_TRACING": "true",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_port}",
                "OTEL_SERVICE_NAME": "",
            }
        )
        receiver.shutdown()
    assert header.startswith("00-") and "opentelemetry.sdk" in modules
    spans = [
        (resource.resource, span)
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    names = [span.name for _, span in spans]
    assert names.count("POST /v1/models/{name}/predict") == 3
    assert names.count("predict") == 3 and names.count("validate") == 3
    services = {
        a.value.string_value for r, _ in spans for a in r.attributes if a.key == "service.name"
    }
    assert services == {"vigil"}
