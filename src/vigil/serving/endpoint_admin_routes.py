"""The admin REST API over experiment endpoints: create, update, show, list, status, conclude.

* ``GET /v1/admin/endpoints``: every endpoint (``read``);
* ``GET /v1/admin/endpoints/{endpoint}``: its configuration, revision and live state
  (``read``);
* ``PUT /v1/admin/endpoints/{endpoint}``: create (201) or replace (200) it from a JSON
  :class:`~vigil.experiments.config.EndpointConfig` (``admin``); a body without ``salt``
  keeps the stored one, and a webhook given as the label it is shown as keeps its URL;
* ``DELETE /v1/admin/endpoints/{endpoint}`` (``admin``);
* ``GET /v1/admin/endpoints/{endpoint}/experiment``: per-variant results (``read``);
* ``POST /v1/admin/endpoints/{endpoint}/conclude``: ``{"promote": "b", "alias":
  "production"}`` ends the experiment (``admin``).

Every role sees an endpoint without its salt and with each alert webhook as its label
(``https://hooks.slack.com/…#1a2b3c4d``): both are secrets.

Every change goes through :class:`~vigil.experiments.store.EndpointStore` exactly like the
CLI, so it is validated the same way and audited; the actor is the calling key
(``key:<id>``), or ``http:anonymous`` with authentication off, as for the registry's admin
API. Serving workers pick a change up within their poll interval. The handlers block on
the database, so they run in a thread, off the event loop. The experiments stack they call
(SciPy behind the status) is imported by each handler, on first use: a server that is never
asked does not load it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

from vigil.errors import NotFoundError, ValidationError
from vigil.experiments.config import EndpointConfig, parse_endpoint
from vigil.serving.admin_routes import ANONYMOUS, SMALL_BODY, unknown_fields
from vigil.serving.http import Request, Response, Route, json_response

if TYPE_CHECKING:
    from vigil.experiments.services import ExperimentServices
    from vigil.serving.dataplane import DataPlane

T = TypeVar("T")


def _vigil(dp: DataPlane, req: Request) -> ExperimentServices:
    app = dp.services
    if app is None:
        raise NotFoundError(
            "this server serves a fixed set of models and has no registry, so it has no "
            "endpoint admin API; use a registry-backed server (vigil serve) or the vigil CLI",
            detail={"path": req.path[:100]},
        )
    return app


def _actor(req: Request) -> str:
    return f"key:{req.key_id}" if req.key_id else ANONYMOUS


async def _call(fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn)


def _object(req: Request, example: str) -> dict[str, Any]:
    body = req.json()
    if not isinstance(body, dict):
        raise ValidationError(
            f"send a JSON object such as {example}",
            detail={"field": None, "expected": "object", "got": type(body).__name__},
        )
    return body


def _config(req: Request, name: str) -> EndpointConfig:
    body = _object(req, '{"variants": [...], "policy": {...}}')
    given = body.setdefault("name", name)
    if given != name:
        raise ValidationError(
            f"the body names endpoint {str(given)[:80]!r} but the path names {name!r}; "
            "an endpoint cannot be renamed",
            detail={"field": "name", "expected": name, "got": str(given)[:80]},
        )
    return parse_endpoint(body)


async def list_endpoints(dp: DataPlane, req: Request) -> Response:
    from vigil.experiments.store import EndpointStore  # on first use (module docstring)

    store = EndpointStore(_vigil(dp, req))
    stored = await _call(store.list_stored)
    return json_response({"endpoints": [s.to_dict() for s in stored]})


async def show_endpoint(dp: DataPlane, req: Request) -> Response:
    # on first use (module docstring)
    from vigil.experiments.status import live_state
    from vigil.experiments.store import EndpointStore

    app = _vigil(dp, req)
    name = req.params["endpoint"]

    def read() -> dict[str, Any]:
        stored = EndpointStore(app).describe(name)
        return {**stored.to_dict(), "live": live_state(app, stored.config)}

    return json_response(await _call(read))


async def put_endpoint(dp: DataPlane, req: Request) -> Response:
    from vigil.experiments.store import EndpointStore  # on first use (module docstring)

    store = EndpointStore(_vigil(dp, req))
    name = req.params["endpoint"]
    actor = _actor(req)

    def write() -> tuple[dict[str, Any], bool]:
        # Checked here, off the event loop: a body may hold a great many variants.
        _, created = store.put(_config(req, name), actor=actor)
        return store.describe(name).to_dict(), created

    document, created = await _call(write)
    return json_response(document, 201 if created else 200)


async def delete_endpoint(dp: DataPlane, req: Request) -> Response:
    from vigil.experiments.store import EndpointStore  # on first use (module docstring)

    store = EndpointStore(_vigil(dp, req))
    name = req.params["endpoint"]
    actor = _actor(req)
    await _call(lambda: store.delete(name, actor=actor))
    return json_response({"endpoint": name, "deleted": True})


async def experiment(dp: DataPlane, req: Request) -> Response:
    from vigil.experiments.status import experiment_status  # on first use (module docstring)

    app = _vigil(dp, req)
    name = req.params["endpoint"]
    result = await _call(lambda: experiment_status(app, name))
    return json_response(result.to_dict())


async def conclude(dp: DataPlane, req: Request) -> Response:
    # on first use (module docstring)
    from vigil.experiments.status import conclude as conclude_experiment

    app = _vigil(dp, req)
    name = req.params["endpoint"]
    example = '{"promote": "b", "alias": "production"}'
    body = _object(req, example)
    unknown = unknown_fields(body, ("promote", "alias"))
    if unknown:
        raise ValidationError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; send {example}",
            detail={"field": unknown[0], "expected": ["promote", "alias"], "got": unknown},
        )
    promote, alias = body.get("promote"), body.get("alias")
    if not isinstance(promote, str):
        raise ValidationError(
            f"'promote' must name the winning variant; send {example}",
            detail={"field": "promote", "expected": "string", "got": type(promote).__name__},
        )
    if alias is not None and not isinstance(alias, str):
        raise ValidationError(
            "'alias' must be an alias name such as production, or null",
            detail={"field": "alias", "expected": "string", "got": type(alias).__name__},
        )
    actor = _actor(req)
    done = await _call(
        lambda: conclude_experiment(app, name, promote=promote, actor=actor, alias=alias)
    )
    return json_response(asdict(done))


# -- OpenAPI --------------------------------------------------------------------------------

_REF = "#/components/schemas/Endpoint{model}"


def _config_schemas() -> dict[str, Any]:
    """The pydantic schema of :class:`EndpointConfig`, its parts as ``Endpoint<Part>``."""
    schema = EndpointConfig.model_json_schema(ref_template=_REF)
    parts = schema.pop("$defs", {})
    out = {f"Endpoint{name}": part for name, part in parts.items()}
    out["EndpointConfig"] = schema
    stored = dict(schema, title="Endpoint")
    stored.pop("additionalProperties", None)
    # As shown: no salt, and each webhook as its label (which a PUT may send back).
    shown = {k: v for k, v in schema["properties"].items() if k != "salt"}
    shown["alert_webhooks"] = {
        "type": "array",
        "items": {"type": "string", "description": "scheme://host/…#digest of the URL"},
    }
    stored["properties"] = {
        **shown,
        "revision": {"type": "integer", "minimum": 1},
        "created_at": {"type": "string", "format": "date-time"},
        "created_by": {"type": "string"},
        "updated_at": {"type": "string", "format": "date-time"},
        "updated_by": {"type": "string"},
        "live": {"type": ["object", "null"]},
    }
    out["Endpoint"] = stored
    return out


_NUMBER = {"type": ["number", "null"]}

SCHEMAS: dict[str, Any] = {
    **_config_schemas(),
    "EndpointList": {
        "type": "object",
        "required": ["endpoints"],
        "properties": {
            "endpoints": {"type": "array", "items": {"$ref": "#/components/schemas/Endpoint"}}
        },
    },
    "EndpointDeleted": {
        "type": "object",
        "required": ["endpoint", "deleted"],
        "properties": {"endpoint": {"type": "string"}, "deleted": {"type": "boolean"}},
    },
    "ExperimentVariant": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "model": {"type": "string"},
            "expected_share": _NUMBER,
            "requests": {"type": "integer"},
            "share": _NUMBER,
            "errors": {"type": "integer"},
            "feedback": {"type": "integer"},
            "value": _NUMBER,
            "low": _NUMBER,
            "high": _NUMBER,
            "lift": _NUMBER,
            "lift_low": _NUMBER,
            "lift_high": _NUMBER,
            "p_value": _NUMBER,
            "always_valid_p_value": _NUMBER,
            "prob_best": _NUMBER,
            "recommendation": {"type": "string"},
        },
    },
    "ExperimentStatus": {
        "type": "object",
        "required": ["endpoint", "policy", "control", "variants", "decision"],
        "properties": {
            "endpoint": {"type": "string"},
            "policy": {"type": "string"},
            "control": {"type": "string"},
            "metric": {"type": ["string", "null"]},
            "source": {"type": "string", "enum": ["capture", "state"]},
            "variants": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/ExperimentVariant"},
            },
            "srm": {"type": ["object", "null"]},
            "decision": {"type": "string"},
            "live": {"type": ["object", "null"]},
            "summary": {"type": ["object", "null"]},
        },
    },
    "ExperimentConclusion": {
        "type": "object",
        "required": ["promote"],
        "properties": {
            "promote": {"type": "string", "description": "The winning variant."},
            "alias": {
                "type": ["string", "null"],
                "description": "Also point this alias of its model at its version.",
            },
        },
        "additionalProperties": False,
    },
    "ExperimentConcluded": {
        "type": "object",
        "properties": {
            "endpoint": {"type": "string"},
            "variant": {"type": "string"},
            "model": {"type": "string"},
            "version": {"type": "integer"},
            "alias": {"type": ["string", "null"]},
            "previous_policy": {"type": "object"},
        },
    },
}


def _ok(schema: str, status: str = "200") -> dict[str, dict[str, str]]:
    return {status: {"description": "OK", "schema": schema}}


_TAGS = ("experiments",)
_ONE = "/v1/admin/endpoints/{endpoint}"

ROUTES: list[Route] = [
    Route(
        "GET",
        "/v1/admin/endpoints",
        list_endpoints,
        "admin_list_endpoints",
        "native",
        "List experiment endpoints",
        responses=_ok("EndpointList"),
        tags=_TAGS,
        role="read",
    ),
    Route(
        "GET",
        _ONE,
        show_endpoint,
        "admin_show_endpoint",
        "native",
        "Show an endpoint: configuration, revision and live state (counters, canary step)",
        responses=_ok("Endpoint"),
        tags=_TAGS,
        role="read",
    ),
    Route(
        "PUT",
        _ONE,
        put_endpoint,
        "admin_put_endpoint",
        "native",
        "Create (201) or replace (200) an endpoint (validated and audited)",
        body="json",
        max_body_bytes=SMALL_BODY,
        request_schema={"$ref": "#/components/schemas/EndpointConfig"},
        responses={**_ok("Endpoint"), **_ok("Endpoint", "201")},
        tags=_TAGS,
        role="admin",
    ),
    Route(
        "DELETE",
        _ONE,
        delete_endpoint,
        "admin_delete_endpoint",
        "native",
        "Delete an endpoint (audited)",
        responses=_ok("EndpointDeleted"),
        tags=_TAGS,
        role="admin",
    ),
    Route(
        "GET",
        _ONE + "/experiment",
        experiment,
        "admin_experiment_status",
        "native",
        "Per-variant experiment results: traffic, metric with CI, lift, p-values, P(best)",
        responses=_ok("ExperimentStatus"),
        tags=_TAGS,
        role="read",
    ),
    Route(
        "POST",
        _ONE + "/conclude",
        conclude,
        "admin_conclude_experiment",
        "native",
        "End the experiment: route everything to one variant, optionally move an alias",
        body="json",
        max_body_bytes=SMALL_BODY,
        request_schema={"$ref": "#/components/schemas/ExperimentConclusion"},
        responses=_ok("ExperimentConcluded"),
        tags=_TAGS,
        role="admin",
    ),
]
