"""The admin REST API over update policies and their runs.

* ``GET /v1/admin/policies``: every policy (``read``);
* ``GET /v1/admin/policies/{model}``: one, with its runs (``read``);
* ``PUT /v1/admin/policies/{model}``: create (201) or replace (200) it from a JSON
  :class:`~vigil.policy.config.PolicyConfig` (``admin``);
* ``DELETE /v1/admin/policies/{model}`` (``admin``);
* ``POST /v1/admin/policies/{model}/runs``: start a run by hand (``admin``; 409 while one
  is in flight);
* ``GET /v1/admin/policies/{model}/runs``: its runs, newest first (``read``);
* ``POST /v1/admin/policies/{model}/candidate``: ``{"version": 5}`` hands an already
  registered version to the run waiting for its retraining job (``admin``): what
  ``vigil register --candidate-for`` does, for a job that registers elsewhere.

The serving layer knows nothing of policies: the composition root adds these routes to the
server it builds (:meth:`vigil.app.Vigil.serving_app`). Handlers block on the database, so
they run in a thread, off the event loop. The actor is the calling key (``key:<id>``), or
``http:anonymous`` with authentication off, as for the other admin routes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from vigil.errors import NotFoundError, ValidationError
from vigil.policy.config import parse_policy
from vigil.serving.admin_routes import ANONYMOUS, SMALL_BODY
from vigil.serving.http import Request, Response, Route, json_response

if TYPE_CHECKING:
    from vigil.policy.services import PolicyServices
    from vigil.serving.dataplane import DataPlane

__all__ = ["ROUTES"]

T = TypeVar("T")


def _vigil(dp: DataPlane, req: Request) -> PolicyServices:
    if dp.services is None:
        raise NotFoundError(
            "this server has no registry, so no policy admin API; use vigil serve",
            detail={"path": req.path[:100]},
        )
    return cast("PolicyServices", dp.services)


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


async def list_policies(dp: DataPlane, req: Request) -> Response:
    from vigil.policy.store import PolicyStore

    store = PolicyStore(_vigil(dp, req))
    stored = await _call(store.list)
    return json_response({"policies": [s.to_dict() for s in stored]})


async def show_policy(dp: DataPlane, req: Request) -> Response:
    from vigil.policy.runs import RunStore
    from vigil.policy.store import PolicyStore

    app = _vigil(dp, req)
    model = req.params["model"]

    def read() -> dict[str, Any]:
        stored = PolicyStore(app).get(model)
        runs = RunStore(app.database).list(model, limit=10)
        return {**stored.to_dict(), "runs": [r.to_dict() for r in runs]}

    return json_response(await _call(read))


async def put_policy(dp: DataPlane, req: Request) -> Response:
    from vigil.policy.store import PolicyStore

    app = _vigil(dp, req)
    model = req.params["model"]
    actor = _actor(req)

    def write() -> tuple[dict[str, Any], bool]:
        body = _object(req, '{"action": {...}, "triggers": {...}}')
        given = body.setdefault("model", model)
        if given != model:
            raise ValidationError(
                f"the body names model {str(given)[:80]!r} but the path names {model!r}",
                detail={"field": "model", "expected": model, "got": str(given)[:80]},
            )
        stored, created = PolicyStore(app).set(parse_policy(body), actor=actor, remote=True)
        return stored.to_dict(), created

    document, created = await _call(write)
    return json_response(document, 201 if created else 200)


async def delete_policy(dp: DataPlane, req: Request) -> Response:
    from vigil.policy.store import PolicyStore

    app = _vigil(dp, req)
    model = req.params["model"]
    actor = _actor(req)
    await _call(lambda: PolicyStore(app).delete(model, actor=actor))
    return json_response({"model": model, "deleted": True})


async def start_run(dp: DataPlane, req: Request) -> Response:
    from vigil.policy.engine import PolicyEngine

    app = _vigil(dp, req)
    model = req.params["model"]
    actor = _actor(req)

    def start() -> dict[str, Any]:
        run = PolicyEngine(app, actor=actor).start(model, {"kind": "manual"}, actor=actor)
        assert run is not None  # a manual start raises instead
        return run.to_dict()

    return json_response(await _call(start), 201)


async def list_runs(dp: DataPlane, req: Request) -> Response:
    from vigil.policy.runs import RunStore

    app = _vigil(dp, req)
    model = req.params["model"]
    runs = await _call(lambda: RunStore(app.database).list(model, limit=50))
    return json_response({"runs": [r.to_dict() for r in runs]})


async def candidate(dp: DataPlane, req: Request) -> Response:
    from vigil.policy.runs import RunStore

    app = _vigil(dp, req)
    model = req.params["model"]
    actor = _actor(req)
    body = _object(req, '{"version": 5}')
    version, run_id = body.get("version"), body.get("run_id")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValidationError(
            "'version' must be the registered candidate's version number, e.g. {\"version\": 5}",
            detail={"field": "version", "expected": "integer >= 1"},
        )
    if run_id is not None and not isinstance(run_id, str):
        raise ValidationError("'run_id' must be a string", detail={"field": "run_id"})

    def attach() -> dict[str, Any]:
        app.registry.get_version(model, version)  # 404 naming the versions when missing
        return (
            RunStore(app.database)
            .attach_candidate(model, version, actor=actor, run_id=run_id)
            .to_dict()
        )

    return json_response(await _call(attach))


_TAGS = ("admin",)
_ONE = "/v1/admin/policies/{model}"
_OK = {"200": {"description": "OK"}}

ROUTES: list[Route] = [
    Route("GET", "/v1/admin/policies", list_policies, "admin_list_policies", "native",
          "List update policies", responses=_OK, tags=_TAGS, role="read"),
    Route("GET", _ONE, show_policy, "admin_show_policy", "native",
          "Show an update policy and its recent runs", responses=_OK, tags=_TAGS, role="read"),
    Route("PUT", _ONE, put_policy, "admin_put_policy", "native",
          "Create (201) or replace (200) an update policy (validated and audited)",
          body="json", responses=_OK, tags=_TAGS, role="admin", max_body_bytes=SMALL_BODY),
    Route("DELETE", _ONE, delete_policy, "admin_delete_policy", "native",
          "Delete an update policy", responses=_OK, tags=_TAGS, role="admin"),
    Route("POST", _ONE + "/runs", start_run, "admin_start_policy_run", "native",
          "Start a run of the policy by hand (409 while one is in flight)",
          responses={"201": {"description": "Created"}}, tags=_TAGS, role="admin"),
    Route("GET", _ONE + "/runs", list_runs, "admin_list_policy_runs", "native",
          "The policy's runs, newest first: state machine and numbers",
          responses=_OK, tags=_TAGS, role="read"),
    Route("POST", _ONE + "/candidate", candidate, "admin_policy_candidate", "native",
          "Hand a registered version to the run waiting for its retraining job",
          body="json", responses=_OK, tags=_TAGS, role="admin", max_body_bytes=SMALL_BODY),
]  # fmt: skip
