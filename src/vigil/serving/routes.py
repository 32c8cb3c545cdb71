"""The route table: every operation the server answers, in one list.

The router, the OpenAPI document and the docs page are all built from :data:`ROUTES`.

Each route names the least API-key role it needs when authentication is on (``role``;
see :mod:`vigil.auth.roles`): predictions need ``predict``, model metadata ``read``.
Health probes, ``/version``, ``/openapi.json``, ``/docs`` and ``/metrics`` stay open:
orchestrators probe without credentials, and ``/metrics`` holds aggregate counts and
latencies only (never a payload), so Prometheus scrapes it without a secret to manage.
"""

from __future__ import annotations

import os
from functools import cache

import orjson

from vigil.errors import NotFoundError
from vigil.monitor import prometheus
from vigil.serving import docs_ui, metrics
from vigil.serving.codecs import mlflow, native, v2
from vigil.serving.dataplane import DataPlane
from vigil.serving.http import HTML, Request, Response, Route, json_response
from vigil.serving.openapi import SCHEMAS, document


def _ok(schema: str, description: str = "OK") -> dict[str, dict[str, str]]:
    return {"200": {"description": description, "schema": schema}}


async def livez(dp: DataPlane, req: Request) -> Response:
    # The pid tells which worker answered when several share the port.
    return json_response({"status": "live", "pid": os.getpid()})


async def readyz(dp: DataPlane, req: Request) -> Response:
    # Loading, draining or a dependency down: see vigil.serving.readiness.
    ready = dp.ready
    status, body = dp.readiness.answer(ready=ready, models=len(dp.models()) if ready else 0)
    return json_response(body, status)


async def metrics_endpoint(dp: DataPlane, req: Request) -> Response:
    if dp.settings.metrics:
        metrics.record_process_memory()
        metrics.record_process_cpu()
        metrics.flush()  # the requests of this loop turn, not yet added
    return Response(prometheus.exposition(), 200, prometheus.CONTENT_TYPE.encode())


@cache
def _openapi_bytes(routes: tuple[Route, ...]) -> bytes:
    return orjson.dumps(document([r for r in routes if r.in_api]))


async def openapi_json(dp: DataPlane, req: Request) -> Response:
    return Response(_openapi_bytes(dp.routes))


# The docs page runs only scripts of this origin (Swagger UI's files, no inline script), talks
# only to this origin, and may not be framed by another site's page (clickjacking).
_PAGE_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        b"form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_ASSET_HEADERS = [
    (b"cache-control", b"public, max-age=86400"),
    (b"x-content-type-options", b"nosniff"),
]


@cache
def _docs_bytes(routes: tuple[Route, ...]) -> bytes:
    return docs_ui.page([r for r in routes if r.in_api]).encode()


async def docs(dp: DataPlane, req: Request) -> Response:
    return Response(_docs_bytes(dp.routes), 200, HTML, headers=_PAGE_HEADERS)


async def docs_asset(dp: DataPlane, req: Request) -> Response:
    name = req.params["asset"]
    found = docs_ui.asset(name) if len(name) <= 64 else None
    if found is None:
        raise NotFoundError(
            f"no such docs asset: {name[:64]!r}; the page is GET /docs",
            detail={"asset": name[:64]},
        )
    body, content_type = found
    return Response(body, 200, content_type, headers=_ASSET_HEADERS)


_NATIVE_REQUEST = {"$ref": "#/components/schemas/NativeRequest"}
_V2_REQUEST = {"$ref": "#/components/schemas/V2InferRequest"}
_MLFLOW_REQUEST = {"$ref": "#/components/schemas/MlflowRequest"}
_TEXT_OK = {"200": {"description": "OK", "text": "text/plain"}}
_NATIVE = ("native",)
_V2 = ("open inference protocol v2",)
_MLFLOW = ("mlflow",)
_OPS = ("operations",)


def _predict(template: str, name: str, summary: str) -> Route:
    return Route(
        "POST",
        template,
        native.predict,
        name,
        "native",
        summary,
        body="json",
        request_schema=_NATIVE_REQUEST,
        responses=_ok("NativeResponse"),
        tags=_NATIVE,
        role="predict",
        prediction=True,
    )


def _infer(template: str, name: str, summary: str) -> Route:
    return Route(
        "POST",
        template,
        v2.infer,
        name,
        "v2",
        summary,
        body="json_or_tensors",
        request_schema=_V2_REQUEST,
        responses=_ok("V2InferResponse"),
        tags=_V2,
        role="predict",
        prediction=True,
    )


ROUTES: list[Route] = [
    _predict("/v1/models/{name}/predict", "native_predict", "Predict with the default version"),
    _predict("/v1/models/{name}@{alias}/predict", "native_predict_alias", "Predict with an alias"),
    _predict(
        "/v1/models/{name}/versions/{version}/predict",
        "native_predict_version",
        "Predict with a version",
    ),
    Route(
        "GET",
        "/v1/models",
        native.list_models,
        "native_list_models",
        "native",
        "List the served models",
        responses=_ok("ModelList"),
        role="read",
        tags=_NATIVE,
    ),
    Route(
        "GET",
        "/v1/models/{name}",
        native.model_metadata,
        "native_model",
        "native",
        "Describe the default version of a model",
        responses=_ok("Model"),
        role="read",
        tags=_NATIVE,
    ),
    Route(
        "GET",
        "/v1/models/{name}@{alias}",
        native.model_metadata,
        "native_model_alias",
        "native",
        "Describe the version an alias points to",
        responses=_ok("Model"),
        role="read",
        tags=_NATIVE,
    ),
    Route(
        "GET",
        "/v1/models/{name}/versions/{version}",
        native.model_metadata,
        "native_model_version",
        "native",
        "Describe a model version",
        responses=_ok("Model"),
        role="read",
        tags=_NATIVE,
    ),
    Route(
        "GET",
        "/v2",
        v2.server_metadata,
        "v2_server_metadata",
        "v2",
        "Server metadata",
        responses=_ok("V2ServerMetadata"),
        tags=_V2,
    ),
    Route(
        "GET",
        "/v2/health/live",
        v2.server_live,
        "v2_live",
        "v2",
        "Server liveness",
        responses=_ok("Status"),
        tags=_V2,
    ),
    Route(
        "GET",
        "/v2/health/ready",
        v2.server_ready,
        "v2_ready",
        "v2",
        "Server readiness (400 when not ready)",
        responses=_ok("Status"),
        tags=_V2,
    ),
    Route(
        "GET",
        "/v2/models/{name}",
        v2.model_metadata,
        "v2_model_metadata",
        "v2",
        "Model metadata",
        responses=_ok("V2ModelMetadata"),
        role="read",
        tags=_V2,
    ),
    Route(
        "GET",
        "/v2/models/{name}/versions/{version}",
        v2.model_metadata,
        "v2_model_version_metadata",
        "v2",
        "Model version metadata",
        responses=_ok("V2ModelMetadata"),
        role="read",
        tags=_V2,
    ),
    Route(
        "GET",
        "/v2/models/{name}/ready",
        v2.model_ready,
        "v2_model_ready",
        "v2",
        "Model readiness (400 when not ready)",
        responses=_ok("Status"),
        role="read",
        tags=_V2,
    ),
    Route(
        "GET",
        "/v2/models/{name}/versions/{version}/ready",
        v2.model_ready,
        "v2_model_version_ready",
        "v2",
        "Model version readiness",
        responses=_ok("Status"),
        role="read",
        tags=_V2,
    ),
    _infer("/v2/models/{name}/infer", "v2_infer", "Inference with the default version"),
    _infer(
        "/v2/models/{name}/versions/{version}/infer", "v2_infer_version", "Inference with a version"
    ),
    Route(
        "POST",
        "/invocations",
        mlflow.invocations,
        "mlflow_invocations",
        "mlflow",
        "MLflow scoring of the default model",
        body="json_or_csv",
        request_schema=_MLFLOW_REQUEST,
        responses=_ok("MlflowResponse"),
        role="predict",
        prediction=True,
        tags=_MLFLOW,
    ),
    Route(
        "POST",
        "/v1/models/{name}/invocations",
        mlflow.model_invocations,
        "mlflow_model_invocations",
        "mlflow",
        "MLflow scoring of a named model",
        body="json_or_csv",
        request_schema=_MLFLOW_REQUEST,
        responses=_ok("MlflowResponse"),
        role="predict",
        prediction=True,
        tags=_MLFLOW,
    ),
    Route(
        "GET",
        "/ping",
        mlflow.ping,
        "mlflow_ping",
        "mlflow",
        "MLflow health check",
        responses=_TEXT_OK,
        tags=_MLFLOW,
    ),
    Route(
        "GET",
        "/health",
        mlflow.ping,
        "mlflow_health",
        "mlflow",
        "MLflow health check",
        responses=_TEXT_OK,
        tags=_MLFLOW,
    ),
    Route(
        "GET",
        "/version",
        mlflow.version,
        "mlflow_version",
        "mlflow",
        "Server version",
        responses=_TEXT_OK,
        tags=_MLFLOW,
    ),
    Route("GET", "/livez", livez, "livez", "ops", "Liveness", responses=_ok("Status"), tags=_OPS),
    Route(
        "GET",
        "/readyz",
        readyz,
        "readyz",
        "ops",
        "Readiness: 200 once every model is loaded and warmed, else 503 (loading, "
        "draining, or a dependency down past its grace period)",
        responses={
            **_ok("Status"),
            "503": {"description": "Loading, draining or unavailable", "schema": "Status"},
        },
        tags=_OPS,
    ),
    Route(
        "GET",
        "/metrics",
        metrics_endpoint,
        "metrics",
        "ops",
        "Prometheus metrics",
        responses={"200": {"description": "OK", "text": "text/plain"}},
        tags=_OPS,
    ),
    Route(
        "GET",
        "/openapi.json",
        openapi_json,
        "openapi",
        "ops",
        "This OpenAPI document",
        responses=_ok("Status"),
        tags=_OPS,
    ),
    Route(
        "GET",
        "/docs",
        docs,
        "docs",
        "ops",
        "Interactive API documentation (Swagger UI, served offline)",
        responses={"200": {"description": "OK", "text": "text/html"}},
        tags=_OPS,
    ),
    Route(
        "GET",
        "/docs/{asset}",
        docs_asset,
        "docs_asset",
        "ops",
        "An asset of the docs page (script, style sheet, icon)",
        responses={"200": {"description": "OK", "text": "application/octet-stream"}},
        tags=_OPS,
    ),
]

# Routes of the other capabilities live next to their handlers; each module contributes its
# operations and the JSON schemas they reference.
from vigil.serving import (  # noqa: E402
    admin_routes,
    alert_admin_routes,
    endpoint_admin_routes,
    endpoint_routes,
    explain_routes,
    feedback_routes,
)

for _module in (
    explain_routes,
    admin_routes,
    alert_admin_routes,
    feedback_routes,
    endpoint_routes,
    endpoint_admin_routes,
):
    ROUTES.extend(_module.ROUTES)
    SCHEMAS.update(_module.SCHEMAS)

assert all(
    s.get("schema") in SCHEMAS for r in ROUTES for s in r.responses.values() if "schema" in s
)
