"""Experiment endpoints: ``POST /v1/endpoints/{endpoint}/predict`` and its v2/MLflow twins.

Each route takes the same body as its protocol's model route, lets the worker's
:class:`~vigil.serving.endpoints.EndpointRouter` pick the variant, and answers as that
protocol does, plus where the answer came from:

* native: the usual body plus ``"endpoint"`` and ``"variant"``;
* v2 (``/v2/endpoints/{endpoint}/infer``): ``model_name`` / ``model_version`` are the model
  that answered (the v2 fields name a model, and clients compare them with their outputs),
  and ``parameters`` holds ``{"endpoint", "variant"}``;
* MLflow (``/v1/endpoints/{endpoint}/invocations``): ``{"predictions": [...]}`` unchanged,
  as MLflow clients expect.

All three also send ``X-Vigil-Endpoint`` and ``X-Vigil-Variant`` headers.

The unit id for sticky assignment is read from the header the endpoint names
(``X-Unit-Id`` by default), else from its ``unit.field``: a top-level key of the native
body, a key of the v2 request's ``parameters``; the field is removed before decoding.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

from vigil.errors import NotFoundError, VigilError
from vigil.serving.codecs import mlflow, native, v2, v2_binary, v2_explain
from vigil.serving.codecs.recording import records_failures
from vigil.serving.http import Request, Response, Route, dumps

if TYPE_CHECKING:
    from vigil.serving.dataplane import DataPlane, Prediction
    from vigil.serving.endpoints import EndpointRouter, Routed
    from vigil.serving.endpoints.live import LiveEndpoint


def _router(dp: DataPlane, req: Request) -> EndpointRouter:
    router = dp.endpoints
    if router is None:
        raise NotFoundError(
            "this server serves a fixed set of models without a registry, so it has no "
            "experiment endpoints; serve the registry (vigil serve) to route endpoints",
            detail={"path": req.path[:100]},
        )
    return router


def _headers(result: Prediction, routed: Routed) -> list[tuple[bytes, bytes]]:
    return [(b"x-request-id", result.request_id.encode()), *routed.headers]


def _tag(exc: VigilError, routed: Routed) -> None:
    exc.detail = {**exc.detail, "endpoint": routed.endpoint.name, "variant": routed.variant}


class _tagged:
    """Name the endpoint and variant in the error body of a request the variant rejects
    (its signature may differ from the other variants'). A class, not a generator: it is
    on every routed request's path."""

    __slots__ = ("routed",)

    def __init__(self, routed: Routed) -> None:
        self.routed = routed

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, trace: object) -> None:
        if isinstance(exc, VigilError):
            _tag(exc, self.routed)


async def _routed(dp: DataPlane, req: Request, unit_source: Any) -> tuple[EndpointRouter, Routed]:
    router = _router(dp, req)
    name = req.params["endpoint"]
    return router, _route(
        router, router.routed(name) or await router.lookup(name), req, unit_source
    )


def _route(router: EndpointRouter, live: LiveEndpoint, req: Request, unit_source: Any) -> Routed:
    routed = router.route(live, live.unit(req.headers, unit_source))
    req.model, req.version = routed.served.name, routed.served.version_label
    return routed


@records_failures("native")
async def predict(dp: DataPlane, req: Request) -> Response:
    # The busiest endpoint route: helpers inlined (each call costs a request about as much
    # as routing itself).
    payload = req.json()
    router = dp.endpoints
    live = None if router is None else router.routed(req.params["endpoint"])
    if router is not None and live is not None:
        routed = router.route(live, live.unit(req.headers, payload))
        served = routed.served
        req.model, req.version = served.name, served.version_label
    else:
        router, routed = await _routed(dp, req, payload)
        served = routed.served
    try:  # not `with _tagged(...)`: a try costs nothing unless it catches
        table, want_proba = native.decode(payload)  # a dict from here on
        passthrough = native.passthrough_of(payload) if native.PASSTHROUGH_KEY in payload else None
    except VigilError as exc:
        _tag(exc, routed)
        raise
    # The router's predict, unrolled here (call(), then answered() or failed()): one
    # coroutine fewer per request.
    request_id, route, key_id = req.request_id, req.route, req.key_id
    started = perf_counter()
    try:
        result = await router.call(
            routed,
            table,
            want_proba=want_proba,
            request_id=request_id,
            route=route,
            key_id=key_id,
            passthrough=passthrough,
        )
    except BaseException as exc:
        router.failed(routed, started, exc)
        raise
    router.answered(routed, started, table, want_proba, result.request_id, route, key_id)
    return Response(
        encode(result.request_id, routed, result.predictions, result.probabilities),
        headers=[(b"x-request-id", result.request_id.encode()), *routed.headers],
    )


def encode(request_id: str, routed: Routed, predictions: Any, proba: Any) -> bytes:
    """The native endpoint route's answer: the model route's, plus the endpoint and the
    variant that answered."""
    served = routed.served
    body: dict[str, Any] = {
        "request_id": request_id,
        "endpoint": routed.endpoint.name,
        "variant": routed.variant,
        "model": served.name,
        "version": served.version,
        "predictions": predictions,
    }
    if served.classes is not None:
        body["classes"] = served.classes
    if proba is not None:
        body["probabilities"] = proba
    return dumps(body)


@records_failures("v2")
async def infer(dp: DataPlane, req: Request) -> Response:
    payload = v2.payload_of(req)
    v2_explain.refuse_on_endpoint(payload)
    parameters = payload.get("parameters") if isinstance(payload, dict) else None
    router, routed = await _routed(dp, req, parameters)
    with _tagged(routed):
        table, outputs, binary = await v2.decoded(dp, req, routed.served, payload)
        passthrough = v2.passthrough_of(payload)
    result = await router.predict(
        routed,
        table,
        want_proba="predict_proba" in outputs,
        request_id=req.request_id,
        route=req.route,
        key_id=req.key_id,
        passthrough=passthrough,
    )
    request_id = payload.get("id")
    body = {
        "model_name": routed.served.name,
        "model_version": routed.served.version_label,
        "id": request_id if isinstance(request_id, str) else result.request_id,
        "parameters": {"endpoint": routed.endpoint.name, "variant": routed.variant},
        "outputs": v2.output_tensors(result, outputs),
    }
    return v2_binary.response(body, binary, _headers(result, routed))


@records_failures("mlflow")
async def invocations(dp: DataPlane, req: Request) -> Response:
    router, routed = await _routed(dp, req, None)
    with _tagged(routed):
        table, passthrough = await mlflow.decoded(dp, req, routed.served.validator.max_columns)
    result = await router.predict(
        routed,
        table,
        want_proba=False,
        request_id=req.request_id,
        route=req.route,
        key_id=req.key_id,
        passthrough=passthrough,
    )
    return Response(dumps({"predictions": result.predictions}), headers=_headers(result, routed))


_TAGS = ("experiments",)

SCHEMAS: dict[str, Any] = {
    "EndpointPredictResponse": {
        "allOf": [
            {"$ref": "#/components/schemas/NativeResponse"},
            {
                "type": "object",
                "required": ["endpoint", "variant"],
                "properties": {"endpoint": {"type": "string"}, "variant": {"type": "string"}},
            },
        ]
    },
    "EndpointInferResponse": {
        "allOf": [
            {"$ref": "#/components/schemas/V2InferResponse"},
            {
                "type": "object",
                "required": ["parameters"],
                "properties": {
                    "parameters": {
                        "type": "object",
                        "required": ["endpoint", "variant"],
                        "properties": {
                            "endpoint": {"type": "string"},
                            "variant": {"type": "string"},
                        },
                    }
                },
            },
        ]
    },
}


def _ok(schema: str) -> dict[str, dict[str, str]]:
    return {"200": {"description": "OK", "schema": schema}}


ROUTES: list[Route] = [
    Route(
        "POST",
        "/v1/endpoints/{endpoint}/predict",
        predict,
        "endpoint_predict",
        "native",
        "Predict through an experiment endpoint (the policy picks the variant)",
        body="json",
        request_schema={"$ref": "#/components/schemas/NativeRequest"},
        responses=_ok("EndpointPredictResponse"),
        tags=_TAGS,
        role="predict",
        prediction=True,
    ),
    Route(
        "POST",
        "/v2/endpoints/{endpoint}/infer",
        infer,
        "endpoint_v2_infer",
        "v2",
        "Open Inference Protocol v2 inference through an experiment endpoint",
        body="json_or_tensors",
        request_schema={"$ref": "#/components/schemas/V2InferRequest"},
        responses=_ok("EndpointInferResponse"),
        tags=_TAGS,
        role="predict",
        prediction=True,
    ),
    Route(
        "POST",
        "/v1/endpoints/{endpoint}/invocations",
        invocations,
        "endpoint_mlflow_invocations",
        "mlflow",
        "MLflow scoring through an experiment endpoint",
        body="json_or_csv",
        request_schema={"$ref": "#/components/schemas/MlflowRequest"},
        responses=_ok("MlflowResponse"),
        tags=_TAGS,
        role="predict",
        prediction=True,
    ),
]
