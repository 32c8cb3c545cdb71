"""``inference.GRPCInferenceService``: the Open Inference Protocol v2 over gRPC, as a thin
adapter over the same :class:`~vigil.serving.dataplane.DataPlane` as REST.

Each call goes the REST way: the API key from the ``authorization`` metadata (``Bearer
vk_...``) checked against the operation's role when authentication is on (``ModelInfer``
needs ``predict``; ``ModelMetadata`` and ``ModelReady`` need ``read``; the server probes
and ``ServerMetadata`` are open, as their REST twins are; ``ServerReady`` and
``ModelReady`` answer false whenever ``/readyz`` answers 503: loading, draining after
SIGTERM, a dependency down), the inputs turned into the REST
codec's tensors (:mod:`vigil.serving.grpc.tensors`) and validated by it with the same
messages, micro-batched, logged in the inference log before the answer goes out (rejected
calls too), and counted in the Prometheus metrics with ``protocol="grpc"``. Errors become
gRPC status codes (:mod:`vigil.serving.grpc.status`) with the REST message as details.

**Experiment endpoints** are reached through the request's ``parameters``: ``endpoint``
(a string) names the endpoint, whose policy picks the variant and so the model
(``model_name`` and ``model_version`` are then not used to pick it; send the endpoint's
name as ``model_name`` by convention). The unit id for sticky assignment is read from the
metadata key the endpoint names (``x-unit-id`` by default, as the REST header), else from
the parameter the endpoint's ``unit.field`` names, else from the ``unit_id`` parameter.
The response names the model that answered in ``model_name``/``model_version`` and the
endpoint and variant in its ``parameters``.

**Micro-batching** joins concurrent ``ModelInfer`` calls as it joins REST requests, but
they reach the batcher differently: ``grpc.aio`` takes one incoming call from its core at a
time, and each next one is a round trip through its completion-queue thread, so concurrent
calls arrive a few turns of the event loop apart (4, measured under 32 concurrent calls)
where HTTP requests read from ready sockets arrive in the same turn (so the batcher's one
quiet turn closed every batch on one call). While inference calls overlap, from their
start until gRPC has sent their answer (or did in the last :data:`OVERLAP_MEMORY`
seconds), a call asks the batcher to wait :data:`GATHER_TURNS` quiet turns for company
instead of one (about 4 µs each); a lone client's calls, which never overlap, are not held.

Every response carries the request id (the key feedback joins predictions by) in the
trailing metadata ``x-request-id``. A client chooses it with the ``x-request-id`` metadata,
as over REST, or with the request's ``id`` (tritonclient's ``request_id``) when that is a
safe token (letters, digits, ``._:-``, at most 128); ``ModelInferResponse.id`` echoes the
request's ``id``, else holds the request id.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

import grpc
import orjson

from vigil.errors import (
    MalformedRequestError,
    NotFoundError,
    ServiceUnavailableError,
    ValidationError,
    VigilError,
)
from vigil.experiments.assign import unit_id
from vigil.serving import metrics
from vigil.serving.batching import GATHER_TURNS as GATHER_TURNS_VAR
from vigil.serving.codecs import v2, v2_explain
from vigil.serving.dataplane import request_id_from
from vigil.serving.executors import INLINE_BODY_BYTES
from vigil.serving.grpc import inference_v2_pb2 as pb
from vigil.serving.grpc import tensors
from vigil.serving.grpc.status import grpc_code
from vigil.uri import version_number
from vigil.version import VERSION

if TYPE_CHECKING:
    from vigil.auth.authenticator import Authenticator
    from vigil.auth.roles import Role
    from vigil.serving.dataplane import DataPlane, Prediction
    from vigil.serving.provider import ServedModel
    from vigil.serving.tracing import RequestTrace
    from vigil.serving.validation import RawTable

log = logging.getLogger("vigil.serving")

SERVICE = "inference.GRPCInferenceService"
"""The protocol's service name: every method is ``/inference.GRPCInferenceService/<Name>``."""

GATHER_TURNS = 8
"""Quiet turns of the event loop a batch started by an overlapping ``ModelInfer`` call
waits for the next call (twice the spacing measured under load)."""
OVERLAP_MEMORY = 0.1
"""Seconds for which calls that overlapped make the next ones wait for company: between two
batches of a busy server, one call may find itself alone in the handler."""

_INTERNAL = "the server failed to answer this request; the error is in its log"
_UNIT_PARAMETER = "unit_id"


class _Call:
    """What one call's metrics, inference log and errors need to know of it."""

    __slots__ = ("endpoint", "key_id", "model", "payload", "request_id", "route", "version")

    def __init__(self, route: str, request_id: str) -> None:
        self.route = route
        self.request_id = request_id
        self.model = ""
        self.version = ""
        self.key_id: str | None = None
        self.endpoint: str | None = None
        self.payload: dict[str, Any] | None = None


Method = Callable[[Any, _Call, Any], Awaitable[Any]]


class InferenceService:
    """The v2 gRPC methods over ``dataplane``; ``authenticator`` checks API keys
    (``None``: authentication is off)."""

    def __init__(self, dataplane: DataPlane, authenticator: Authenticator | None) -> None:
        self.dataplane = dataplane
        self.authenticator = authenticator
        self._metrics = dataplane.settings.metrics
        self._tracing = dataplane.tracing
        """OpenTelemetry spans of ``ModelInfer`` calls; ``None``: off (one test per call)."""
        self._infers_in_flight = 0
        """``ModelInfer`` calls begun and not yet answered to the end."""
        self._overlap_until = 0.0

    def handler(self) -> grpc.GenericRpcHandler:
        """The method handlers, to add to a ``grpc.aio`` server."""
        methods: list[tuple[str, Method, Any, Any, Role | None]] = [
            ("ServerLive", self._server_live, pb.ServerLiveRequest, pb.ServerLiveResponse, None),
            (
                "ServerReady",
                self._server_ready,
                pb.ServerReadyRequest,
                pb.ServerReadyResponse,
                None,
            ),
            (
                "ServerMetadata",
                self._server_metadata,
                pb.ServerMetadataRequest,
                pb.ServerMetadataResponse,
                None,
            ),
            ("ModelReady", self._model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse, "read"),
            (
                "ModelMetadata",
                self._model_metadata,
                pb.ModelMetadataRequest,
                pb.ModelMetadataResponse,
                "read",
            ),
            (
                "ModelInfer",
                self._model_infer,
                pb.ModelInferRequest,
                pb.ModelInferResponse,
                "predict",
            ),
        ]
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                name: grpc.unary_unary_rpc_method_handler(
                    self._wrap(_route_name(name), method, role),
                    request_deserializer=request.FromString,
                    response_serializer=response.SerializeToString,
                )
                for name, method, request, response, role in methods
            },
        )

    def _wrap(
        self, route: str, method: Method, role: Role | None
    ) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            return await self._call(route, method, role, request, context)

        call.__name__ = route
        return call

    async def _call(
        self,
        route: str,
        method: Method,
        role: Role | None,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        started = perf_counter()
        if self._metrics:
            metrics.IN_FLIGHT.inc()
        # Set in this call's own task (grpc.aio runs each call in one): no other call sees it.
        joining = self._join_batches(context, started) if route == "grpc_model_infer" else None
        try:
            return await self._answer(route, method, role, request, context, started)
        finally:  # a call the client cancels leaves too
            if self._metrics:
                metrics.IN_FLIGHT.dec()
            if joining is not None:
                GATHER_TURNS_VAR.reset(joining)

    def _join_batches(
        self, context: grpc.aio.ServicerContext[Any, Any], now: float
    ) -> contextvars.Token[int] | None:
        """Count an inference call in flight until gRPC has sent its answer, and while such
        calls overlap (or did lately), have its batch wait :data:`GATHER_TURNS` quiet turns
        for company."""
        self._infers_in_flight += 1
        context.add_done_callback(self._infer_done)
        if self._infers_in_flight > 1:
            self._overlap_until = now + OVERLAP_MEMORY
        return GATHER_TURNS_VAR.set(GATHER_TURNS) if now < self._overlap_until else None

    def _infer_done(self, context: object) -> None:
        self._infers_in_flight -= 1

    async def _answer(
        self,
        route: str,
        method: Method,
        role: Role | None,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        started: float,
    ) -> Any:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        # The x-request-id metadata, else an inference request's own id (what tritonclient's
        # request_id sets), when either is a safe token; else a fresh one.
        chosen = metadata.get("x-request-id") or getattr(request, "id", None)
        call = _Call(route, request_id_from(chosen))
        status, failure, authorized = 200, None, False
        traced: RequestTrace | None = None
        if self._tracing is not None and route == "grpc_model_infer":
            traced = self._tracing.begin_grpc(SERVICE, "ModelInfer", metadata)
            traced.stage("decode")
        try:
            if role is not None and self.authenticator is not None:
                authorization = metadata.get("authorization")
                principal = await self.authenticator.authorize(
                    authorization.encode("latin-1") if authorization else None, role
                )
                call.key_id = principal.key_id
            authorized = True
            response = await method(request, call, metadata)
        except VigilError as exc:
            status, failure = exc.status, exc
            if status >= 500:
                log.error("%s: %s", exc.code, exc.message, exc_info=exc.__cause__)
            # As over REST, a call refused for its key is not logged: it was never judged,
            # and a stranger must not be able to fill the inference log.
            if authorized and route == "grpc_model_infer":  # or grpc_endpoint_infer by now
                await self._record_failure(call, exc)
            if traced is not None:
                traced.fail(exc, status)
        except Exception as exc:
            log.error("unexpected error while serving a gRPC call", exc_info=exc)
            status, failure = 500, None
            if traced is not None:
                traced.fail(exc, status)
        except BaseException as exc:  # cancelled: the client left or the server stops
            if traced is not None:
                traced.abandon(exc)
            raise
        trailers = self._trailers(call, failure, status)
        if traced is not None:
            trailers += (("traceresponse", traced.traceresponse()),)
            code = 0 if status == 200 else grpc_code(status).value[0]  # 0: OK
            traced.finish(code, "rpc.grpc.status_code")
        context.set_trailing_metadata(trailers)
        if self._metrics:
            if status != 200:
                kind = failure.code if failure is not None else "internal_error"
                metrics.record_error(call.route, kind, "grpc")
            metrics.record_request(
                call.route, call.model, call.version, status, perf_counter() - started, "grpc"
            )
        if status != 200:
            message = failure.message if failure is not None else _INTERNAL
            await context.abort(grpc_code(status), message)
        return response

    @staticmethod
    def _trailers(
        call: _Call, failure: VigilError | None, status: int
    ) -> tuple[tuple[str, str], ...]:
        trailers: tuple[tuple[str, str], ...] = (("x-request-id", call.request_id),)
        if status != 200:
            code = failure.code if failure is not None else "internal_error"
            trailers += (("vigil-error-code", code),)
        return trailers

    async def _record_failure(self, call: _Call, exc: VigilError) -> None:
        """Log a rejected inference (as :mod:`~vigil.serving.codecs.recording` does for
        REST), its inputs kept as the equivalent JSON body."""
        dp = self.dataplane
        if dp.capture is None or isinstance(exc, ServiceUnavailableError):
            return
        body = orjson.dumps(call.payload) if call.payload is not None else None

        def record() -> None:
            dp.record_failure(
                request_id=call.request_id,
                status=exc.status,
                error_code=exc.code,
                message=exc.message,
                body=body,
                route=call.route,
                model=call.model,
                version=version_number(call.version),
                key_id=call.key_id,
                variant=exc.detail.get("variant"),
                endpoint=call.endpoint,
            )

        if body is None or len(body) <= INLINE_BODY_BYTES:
            record()
        else:  # masking a large body means parsing it: on a worker thread
            await dp.executors.decoding(record)

    # -- the methods ---------------------------------------------------------------------

    async def _server_live(self, request: Any, call: _Call, metadata: Any) -> Any:
        return pb.ServerLiveResponse(live=self.dataplane.live)

    async def _server_ready(self, request: Any, call: _Call, metadata: Any) -> Any:
        # As /readyz: false while loading, draining or with a dependency down.
        return pb.ServerReadyResponse(ready=self.dataplane.takes_traffic)

    async def _server_metadata(self, request: Any, call: _Call, metadata: Any) -> Any:
        return pb.ServerMetadataResponse(name="vigil", version=VERSION, extensions=[])

    def _served(self, call: _Call, name: str, version: str) -> ServedModel:
        if not name:
            raise MalformedRequestError(
                "name the model: the request's model name is empty",
                detail={"field": "model_name"},
            )
        served = self.dataplane.model(name, version or None)
        call.model, call.version = served.name, served.version_label
        return served

    async def _model_ready(self, request: Any, call: _Call, metadata: Any) -> Any:
        served = self._served(call, request.name, request.version)
        return pb.ModelReadyResponse(ready=served.ready and self.dataplane.takes_traffic)

    async def _model_metadata(self, request: Any, call: _Call, metadata: Any) -> Any:
        served = self._served(call, request.name, request.version)
        body = v2.model_metadata_body(self.dataplane, served)
        return pb.ModelMetadataResponse(
            name=body["name"],
            versions=body["versions"],
            platform=body["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in body["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in body["outputs"]],
        )

    async def _model_infer(self, request: Any, call: _Call, metadata: dict[str, str]) -> Any:
        dp = self.dataplane
        parameters = tensors.parameters(request)
        endpoint = parameters.pop("endpoint", None)
        if endpoint is not None:
            return await self._endpoint_infer(request, call, metadata, parameters, endpoint)
        served = self._served(call, request.model_name, request.model_version)
        wants_explanation, label = v2_explain.requested({"parameters": parameters})
        table, outputs = await self._decode(request, call, served)
        passthrough = tensors.passthrough(parameters)
        # Explained first, as on REST: a refused explanation predicts nothing.
        found = await v2_explain.explain(dp, served, table, label) if wants_explanation else None
        result = await dp.predict(
            served.name,
            None,
            table,
            want_proba="predict_proba" in outputs,
            request_id=call.request_id,
            served=served,
            route=call.route,
            key_id=call.key_id,
            passthrough=passthrough,
        )
        if found is None:
            return _response(request, served, result, outputs)
        extra, explained = v2_explain.tensors(found)
        response = _response(request, served, result, outputs, extra)
        for key, value in explained.items():
            if isinstance(value, bool):
                response.parameters[key].bool_param = value
            else:
                response.parameters[key].string_param = value
        return response

    async def _decode(
        self, request: Any, call: _Call, served: ServedModel
    ) -> tuple[RawTable, list[str]]:
        large = request.ByteSize() > INLINE_BODY_BYTES
        if large:  # megabytes of tensor data: converted and checked on a worker thread
            call.payload = await self.dataplane.executors.decoding(tensors.request_payload, request)
            return await self.dataplane.executors.decoding(v2.decode, served, call.payload)
        call.payload = tensors.request_payload(request)
        return v2.decode(served, call.payload)

    async def _endpoint_infer(
        self,
        request: Any,
        call: _Call,
        metadata: dict[str, str],
        parameters: dict[str, Any],
        endpoint: Any,
    ) -> Any:
        dp = self.dataplane
        v2_explain.refuse_on_endpoint({"parameters": parameters})
        if not isinstance(endpoint, str) or not endpoint:
            raise ValidationError(
                "the 'endpoint' parameter names an experiment endpoint: send it as a string",
                detail={"field": "parameters.endpoint", "row": None, "expected": "a string"},
            )
        call.route, call.endpoint = "grpc_endpoint_infer", endpoint[:100]
        router = dp.endpoints
        if router is None:
            raise NotFoundError(
                "this server serves a fixed set of models without a registry, so it has no "
                "experiment endpoints; serve the registry (vigil serve) to route endpoints",
                detail={"field": "parameters.endpoint"},
            )
        live = router.routed(endpoint) or await router.lookup(endpoint)
        key = live.config.unit
        headers = {k.encode("latin-1"): v.encode("latin-1") for k, v in metadata.items()}
        unit = unit_id(key, headers, parameters)
        fallback = parameters.get(_UNIT_PARAMETER)
        if unit is None and isinstance(fallback, str | int) and not isinstance(fallback, bool):
            unit = str(fallback) or None
        routed = router.route(live, unit)
        served = routed.served
        call.model, call.version = served.name, served.version_label
        try:
            table, outputs = await self._decode(request, call, served)
            passthrough = tensors.passthrough(parameters)
        except VigilError as exc:
            exc.detail = {**exc.detail, "endpoint": routed.endpoint.name, "variant": routed.variant}
            raise
        result = await router.predict(
            routed,
            table,
            want_proba="predict_proba" in outputs,
            request_id=call.request_id,
            route=call.route,
            key_id=call.key_id,
            passthrough=passthrough,
        )
        response = _response(request, served, result, outputs)
        response.parameters["endpoint"].string_param = routed.endpoint.name
        response.parameters["variant"].string_param = routed.variant
        return response


def _response(
    request: Any,
    served: ServedModel,
    result: Prediction,
    outputs: list[str],
    extra: list[dict[str, Any]] | None = None,
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(
        model_name=served.name,
        model_version=served.version_label,
        id=request.id or result.request_id,
    )
    tensors.add_outputs(
        response,
        [*v2.output_tensors(result, outputs), *(extra or [])],
        raw=bool(request.raw_input_contents),
    )
    return response


def _route_name(method: str) -> str:
    """The operation's name in metrics and the inference log: ``grpc_model_infer``, ...

    >>> _route_name("ModelInfer"), _route_name("ServerLive")
    ('grpc_model_infer', 'grpc_server_live')
    """
    words = [c if c.islower() else "_" + c.lower() for c in method]
    return "grpc" + "".join(words)
