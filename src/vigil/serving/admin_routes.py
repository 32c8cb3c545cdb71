"""The admin REST API over the registry: list, show, move and delete aliases, roll back,
archive and delete versions, delete models.

Reads need the ``read`` role; changes need ``admin``, and so does the audit trail, which
names who did what (see :mod:`vigil.auth.roles`). Every change goes through :class:`~vigil.registry.Registry`
exactly like ``vigil alias set`` / ``vigil rollback``, so it lands in the alias history
and the audit log; the actor is the calling key (``key:<id>``), or ``http:anonymous`` on a
loopback server with authentication off.

Moving an alias here is all it takes to switch what is served: every worker of every
server following that alias (:mod:`vigil.serving.registry_provider`) loads, warms and
switches to the new version within its poll interval.

The handlers only translate HTTP to registry calls; those block on the database, so they
run in a thread, off the event loop. A server without a registry (a fixed set of models)
answers 404 with what to do instead.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from vigil.errors import NotFoundError, ValidationError
from vigil.names import check_alias, check_model_name
from vigil.serving.http import Request, Response, Route, json_response
from vigil.uri import MAX_VERSION

if TYPE_CHECKING:
    from vigil.audit import AuditEvent
    from vigil.registry.entities import ModelVersion, RegisteredModel
    from vigil.registry.registry import Registry
    from vigil.serving.dataplane import DataPlane

T = TypeVar("T")

ANONYMOUS = "http:anonymous"
"""The audit actor of a change made with authentication off (loopback only)."""

AUDIT_LIMIT = 100
SMALL_BODY = 64 * 1024
"""Largest body an admin operation reads: its bodies are a few fields (an endpoint's
configuration, a few kilobytes); parsing and checking megabytes of them is only cost."""
_MAX_REASON = 1000


def _registry(dp: DataPlane, req: Request) -> Registry:
    """The registry of the server's installation, acting as the calling key."""
    app = dp.services
    if app is None:
        raise NotFoundError(
            "this server serves a fixed set of models and has no registry, so it has no "
            "admin API; use a registry-backed server (vigil serve) or the vigil CLI",
            detail={"path": req.path[:100]},
        )
    actor = f"key:{req.key_id}" if req.key_id else ANONYMOUS
    return app.registry.acting_as(actor)


async def _call(fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn)


def _model(m: RegisteredModel) -> dict[str, Any]:
    return {
        "name": m.name,
        "description": m.description,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "latest_version": m.latest_version,
        "version_count": m.version_count,
        "aliases": m.aliases,
    }


def _version(v: ModelVersion) -> dict[str, Any]:
    return {
        "version": v.version,
        "flavor": v.flavor,
        "sha256": v.sha256,
        "size_bytes": v.size_bytes,
        "created_at": v.created_at,
        "created_by": v.created_by,
        "description": v.description,
        "tags": v.tags,
        "metrics": v.metrics,
        "aliases": v.aliases,
        "archived_at": v.archived_at,
    }


def _event(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at,
        "actor": e.actor,
        "action": e.action,
        "entity_type": e.entity_type,
        "entity_name": e.entity_name,
        "model_name": e.model_name,
        "before": e.before,
        "after": e.after,
    }


def unknown_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> list[str]:
    """The first five fields of ``body`` not in ``allowed``, cut to 40 characters: one
    pass, and an answer of bounded size however many a body holds.

    >>> unknown_fields({"version": 1, "x" * 50: 2, "b": 3}, ("version",))
    ['xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 'b']
    """
    return [key[:40] for key in itertools.islice((k for k in body if k not in allowed), 5)]


def _alias_change(req: Request) -> tuple[int, str | None]:
    """``version`` and ``reason`` of a ``PUT .../aliases/{alias}`` body."""
    body = req.json()
    example = 'send a JSON object such as {"version": 3, "reason": "better AUC"}'
    if not isinstance(body, dict):
        raise ValidationError(
            example, detail={"field": None, "expected": "object", "got": type(body).__name__}
        )
    unknown = unknown_fields(body, ("version", "reason"))
    if unknown:
        raise ValidationError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; {example}",
            detail={"field": unknown[0], "expected": ["version", "reason"], "got": unknown},
        )
    version = body.get("version")
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise ValidationError(
            f"'version' must be a version number (a positive integer); {example}",
            detail={"field": "version", "expected": "integer >= 1", "got": repr(version)[:40]},
        )
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > _MAX_REASON):
        raise ValidationError(
            f"'reason' must be text of at most {_MAX_REASON} characters",
            detail={"field": "reason", "expected": "string", "got": type(reason).__name__},
        )
    return version, reason


def _options(req: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The optional body of a housekeeping operation (``reason``, ``force``): none, or an
    object with only ``allowed`` fields of the right types."""
    if not req.body:
        return {}
    body = req.json()
    example = "send no body, or a JSON object with " + " and ".join(map(repr, allowed))
    if not isinstance(body, dict):
        raise ValidationError(
            example, detail={"field": None, "expected": "object", "got": type(body).__name__}
        )
    unknown = unknown_fields(body, allowed)
    if unknown:
        raise ValidationError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; {example}",
            detail={"field": unknown[0], "expected": list(allowed), "got": unknown},
        )
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > _MAX_REASON):
        raise ValidationError(
            f"'reason' must be text of at most {_MAX_REASON} characters",
            detail={"field": "reason", "expected": "string", "got": type(reason).__name__},
        )
    if "force" in body and type(body["force"]) is not bool:
        raise ValidationError(
            "'force' must be true or false",
            detail={"field": "force", "expected": "boolean", "got": repr(body["force"])[:40]},
        )
    return body


def _version_param(req: Request) -> int:
    text = req.params["version"]
    if not text.isdigit() or not 1 <= int(text[:12]) <= MAX_VERSION:
        raise ValidationError(
            f"version must be a version number (a positive integer), got {text[:40]!r}",
            detail={"field": "version", "expected": "integer >= 1", "got": text[:40]},
        )
    return int(text)


async def list_aliases(dp: DataPlane, req: Request) -> Response:
    registry = _registry(dp, req)
    name = req.params.get("name")
    if name is not None:
        check_model_name(name)
    aliases = await _call(lambda: registry.list_aliases(name))
    return json_response(
        {
            "aliases": [
                {
                    "model": a.name,
                    "alias": a.alias,
                    "version": a.version,
                    "updated_at": a.updated_at,
                }
                for a in aliases
            ]
        }
    )


async def archive_version(dp: DataPlane, req: Request) -> Response:
    registry = _registry(dp, req)
    name = check_model_name(req.params["name"])
    version = _version_param(req)
    reason = _options(req, ("reason",)).get("reason")
    mv = await _call(lambda: registry.archive_version(name, version, reason=reason))
    return json_response(_version(mv))


async def unarchive_version(dp: DataPlane, req: Request) -> Response:
    registry = _registry(dp, req)
    name = check_model_name(req.params["name"])
    version = _version_param(req)
    reason = _options(req, ("reason",)).get("reason")
    mv = await _call(lambda: registry.unarchive_version(name, version, reason=reason))
    return json_response(_version(mv))


async def delete_version(dp: DataPlane, req: Request) -> Response:
    registry = _registry(dp, req)
    name = check_model_name(req.params["name"])
    version = _version_param(req)
    reason = _options(req, ("reason",)).get("reason")
    mv = await _call(lambda: registry.delete_version(name, version, reason=reason))
    return json_response({"model": name, "version": version, "sha256": mv.sha256, "deleted": True})


async def delete_model(dp: DataPlane, req: Request) -> Response:
    registry = _registry(dp, req)
    name = check_model_name(req.params["name"])
    options = _options(req, ("force", "reason"))
    force, reason = bool(options.get("force", False)), options.get("reason")
    gone = await _call(lambda: registry.delete_model(name, force=force, reason=reason))
    return json_response(
        {"model": name, "versions": gone.versions, "aliases": gone.aliases, "deleted": True}
    )


async def list_models(dp: DataPlane, req: Request) -> Response:
    registry = _registry(dp, req)
    models = await _call(registry.list_models)
    return json_response({"models": [_model(m) for m in models]})


async def show_model(dp: DataPlane, req: Request) -> Response:
    registry = _registry(dp, req)
    name = check_model_name(req.params["name"])

    def read() -> dict[str, Any]:
        return {
            "model": _model(registry.get_model(name)),
            "versions": [_version(v) for v in registry.list_versions(name)],
        }

    return json_response(await _call(read))


async def set_alias(dp: DataPlane, req: Request) -> Response:
    registry = _registry(dp, req)
    name = check_model_name(req.params["name"])
    alias = check_alias(req.params["alias"])
    version, reason = _alias_change(req)
    mv = await _call(lambda: registry.set_alias(name, alias, version, reason=reason))
    return json_response({"model": name, "alias": alias, "version": mv.version})


async def delete_alias(dp: DataPlane, req: Request) -> Response:
    registry = _registry(dp, req)
    name = check_model_name(req.params["name"])
    alias = check_alias(req.params["alias"])
    version = await _call(lambda: registry.delete_alias(name, alias))
    return json_response({"model": name, "alias": alias, "version": version})


async def rollback(dp: DataPlane, req: Request) -> Response:
    registry = _registry(dp, req)
    name = check_model_name(req.params["name"])
    alias = check_alias(req.params["alias"])
    before, after = await _call(lambda: registry.rollback(name, alias))
    return json_response(
        {"model": name, "alias": alias, "from_version": before, "to_version": after}
    )


MAX_ERASE_WAIT = 10.0
"""Longest wait for live segments an erase request may ask for (seconds): a request holds
a connection, and proxies and clients give up long before the minutes a compaction
interval may take. Without ``wait`` the request does not wait at all: records still in
live segments are counted and ``complete`` is false; send it again after the servers'
next compaction pass (``vigil capture erase --wait`` waits as long as asked)."""
_MAX_WHERE = 16


def _erase_request(req: Request) -> tuple[dict[str, str], float]:
    """``where`` and ``wait`` of a ``POST /v1/admin/capture/erase`` body."""
    body = req.json()
    example = 'send a JSON object such as {"where": {"email": "ann@example.com"}, "wait": 5}'
    if not isinstance(body, dict):
        raise ValidationError(
            example, detail={"field": None, "expected": "object", "got": type(body).__name__}
        )
    unknown = unknown_fields(body, ("where", "wait"))
    if unknown:
        raise ValidationError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; {example}",
            detail={"field": unknown[0], "expected": ["where", "wait"], "got": unknown},
        )
    where = body.get("where")
    if (
        not isinstance(where, dict)
        or not 1 <= len(where) <= _MAX_WHERE
        or not all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in where.items())
    ):
        raise ValidationError(
            f"'where' must map 1 to {_MAX_WHERE} field names to non-empty text values; {example}",
            detail={"field": "where", "expected": "object of strings"},
        )
    wait = body.get("wait")
    if wait is not None and (type(wait) not in (int, float) or not 0 <= wait <= MAX_ERASE_WAIT):
        raise ValidationError(
            f"'wait' must be a number of seconds from 0 to {MAX_ERASE_WAIT:.0f}; {example}",
            detail={"field": "wait", "expected": "number", "got": type(wait).__name__},
        )
    return where, 0.0 if wait is None else float(wait)


async def erase(dp: DataPlane, req: Request) -> Response:
    app = dp.services
    if app is None:
        raise NotFoundError(
            "this server serves a fixed set of models and has no installation to erase from; "
            "use vigil capture erase",
            detail={"path": req.path[:100]},
        )
    where, wait = _erase_request(req)
    actor = f"key:{req.key_id}" if req.key_id else ANONYMOUS
    done = await _call(lambda: app.erase_subject(where, wait=wait, actor=actor))
    return json_response({**done.audit(), "complete": done.complete})


async def audit(dp: DataPlane, req: Request) -> Response:
    registry = _registry(dp, req)
    name = req.params.get("name")
    if name is not None:
        check_model_name(name)
    events = await _call(lambda: registry.audit(name, limit=AUDIT_LIMIT))
    return json_response({"events": [_event(e) for e in events]})


_STRING = {"type": "string"}
_TEXT = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_VERSION = {"type": "integer", "minimum": 1, "maximum": MAX_VERSION}
_ALIASES = {"type": "object", "additionalProperties": {"type": "integer"}}

SCHEMAS: dict[str, Any] = {
    "AdminModel": {
        "type": "object",
        "required": ["name", "latest_version", "version_count", "aliases"],
        "properties": {
            "name": _STRING,
            "description": _TEXT,
            "created_at": _TIME,
            "updated_at": _TIME,
            "latest_version": {"type": ["integer", "null"]},
            "version_count": {"type": "integer", "minimum": 0},
            "aliases": _ALIASES,
        },
    },
    "AdminModelList": {
        "type": "object",
        "required": ["models"],
        "properties": {
            "models": {"type": "array", "items": {"$ref": "#/components/schemas/AdminModel"}}
        },
    },
    "AdminVersion": {
        "type": "object",
        "required": ["version", "flavor", "sha256", "aliases"],
        "properties": {
            "version": _VERSION,
            "flavor": _STRING,
            "sha256": _STRING,
            "size_bytes": {"type": "integer"},
            "created_at": _TIME,
            "created_by": _STRING,
            "description": _TEXT,
            "tags": {"type": "object", "additionalProperties": _STRING},
            "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
            "aliases": {"type": "array", "items": _STRING},
            "archived_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "AdminModelDetail": {
        "type": "object",
        "required": ["model", "versions"],
        "properties": {
            "model": {"$ref": "#/components/schemas/AdminModel"},
            "versions": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/AdminVersion"},
            },
        },
    },
    "AliasChange": {
        "type": "object",
        "required": ["version"],
        "properties": {
            "version": _VERSION,
            "reason": {"type": "string", "maxLength": _MAX_REASON},
        },
        "additionalProperties": False,
    },
    "AliasState": {
        "type": "object",
        "required": ["model", "alias", "version"],
        "properties": {"model": _STRING, "alias": _STRING, "version": _VERSION},
    },
    "AliasRollback": {
        "type": "object",
        "required": ["model", "alias", "from_version", "to_version"],
        "properties": {
            "model": _STRING,
            "alias": _STRING,
            "from_version": _VERSION,
            "to_version": _VERSION,
        },
    },
    "AliasList": {
        "type": "object",
        "required": ["aliases"],
        "properties": {
            "aliases": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["model", "alias", "version"],
                    "properties": {
                        "model": _STRING,
                        "alias": _STRING,
                        "version": _VERSION,
                        "updated_at": _TIME,
                    },
                },
            }
        },
    },
    "Housekeeping": {
        "type": "object",
        "description": "Optional: the body may be left out.",
        "properties": {"reason": {"type": "string", "maxLength": _MAX_REASON}},
        "additionalProperties": False,
    },
    "ModelDeletion": {
        "type": "object",
        "description": "Optional: the body may be left out.",
        "properties": {
            "force": {
                "type": "boolean",
                "default": False,
                "description": "Delete the model's aliases with it (each audited); an "
                "endpoint naming the model still refuses the deletion.",
            },
            "reason": {"type": "string", "maxLength": _MAX_REASON},
        },
        "additionalProperties": False,
    },
    "DeletedVersion": {
        "type": "object",
        "required": ["model", "version", "deleted"],
        "properties": {
            "model": _STRING,
            "version": _VERSION,
            "sha256": _STRING,
            "deleted": {"type": "boolean"},
        },
    },
    "DeletedModel": {
        "type": "object",
        "required": ["model", "versions", "aliases", "deleted"],
        "properties": {
            "model": _STRING,
            "versions": {"type": "array", "items": _VERSION},
            "aliases": _ALIASES,
            "deleted": {"type": "boolean"},
        },
    },
    "CaptureErase": {
        "type": "object",
        "required": ["where"],
        "properties": {
            "where": {
                "type": "object",
                "description": "FIELD: VALUE conditions naming the person (all must hold); "
                "a hashed field is matched through the capture's hash key.",
                "minProperties": 1,
                "maxProperties": _MAX_WHERE,
                "additionalProperties": {"type": "string", "minLength": 1},
            },
            "wait": {
                "type": "number",
                "minimum": 0,
                "maximum": MAX_ERASE_WAIT,
                "description": "Seconds to wait for servers to close their live segments "
                "(default 0: records still in them are counted and complete is false).",
            },
        },
        "additionalProperties": False,
    },
    "CaptureErasure": {
        "type": "object",
        "required": ["fields", "records", "feedback_records", "files", "complete"],
        "properties": {
            "fields": {"type": "array", "items": _STRING},
            "records": {"type": "integer", "minimum": 0},
            "feedback_records": {"type": "integer", "minimum": 0},
            "files": {"type": "integer", "minimum": 0},
            "file_names": {"type": "array", "items": _STRING},
            "left_in_live_segments": {"type": "integer", "minimum": 0},
            "complete": {
                "type": "boolean",
                "description": "False when matching records were left in live segments that "
                "did not close in time: send the request again.",
            },
        },
    },
    "AuditLog": {
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "at", "actor", "action", "entity_type", "entity_name"],
                    "properties": {
                        "id": {"type": "integer"},
                        "at": _TIME,
                        "actor": _STRING,
                        "action": _STRING,
                        "entity_type": _STRING,
                        "entity_name": _STRING,
                        "model_name": _TEXT,
                        "before": {"type": ["object", "null"]},
                        "after": {"type": ["object", "null"]},
                    },
                },
            }
        },
    },
}

_TAGS = ("admin",)
_MODEL = "/v1/admin/models/{name}"
_ALIAS = _MODEL + "/aliases/{alias}"
_VERSION_PATH = _MODEL + "/versions/{version}"
_IN_USE = {"409": {"description": "An alias or endpoint points at it", "schema": "Problem"}}


def _ok(schema: str) -> dict[str, dict[str, str]]:
    return {"200": {"description": "OK", "schema": schema}}


ROUTES: list[Route] = [
    Route(
        "GET",
        "/v1/admin/models",
        list_models,
        "admin_list_models",
        "native",
        "List registered models with their newest version and aliases",
        responses=_ok("AdminModelList"),
        tags=_TAGS,
        role="read",
    ),
    Route(
        "GET",
        _MODEL,
        show_model,
        "admin_show_model",
        "native",
        "Show a registered model: every version and its aliases",
        responses=_ok("AdminModelDetail"),
        tags=_TAGS,
        role="read",
    ),
    Route(
        "PUT",
        _ALIAS,
        set_alias,
        "admin_set_alias",
        "native",
        "Point an alias at a version (audited; serving workers follow it)",
        body="json",
        max_body_bytes=SMALL_BODY,
        request_schema={"$ref": "#/components/schemas/AliasChange"},
        responses=_ok("AliasState"),
        tags=_TAGS,
        role="admin",
    ),
    Route(
        "DELETE",
        _ALIAS,
        delete_alias,
        "admin_delete_alias",
        "native",
        "Remove an alias (audited; its history is kept)",
        responses=_ok("AliasState"),
        tags=_TAGS,
        role="admin",
    ),
    Route(
        "POST",
        _ALIAS + "/rollback",
        rollback,
        "admin_rollback",
        "native",
        "Move an alias back to the version it pointed to before its last move (audited)",
        responses={
            **_ok("AliasRollback"),
            "409": {"description": "Nothing earlier to roll back to", "schema": "Problem"},
        },
        tags=_TAGS,
        role="admin",
    ),
    Route(
        "GET",
        "/v1/admin/aliases",
        list_aliases,
        "admin_list_aliases",
        "native",
        "Every alias and the version it points to",
        responses=_ok("AliasList"),
        tags=_TAGS,
        role="read",
    ),
    Route(
        "GET",
        _MODEL + "/aliases",
        list_aliases,
        "admin_list_model_aliases",
        "native",
        "The aliases of one model",
        responses=_ok("AliasList"),
        tags=_TAGS,
        role="read",
    ),
    Route(
        "POST",
        _VERSION_PATH + "/archive",
        archive_version,
        "admin_archive_version",
        "native",
        "Archive a version: kept, but no alias may point at it (audited)",
        body="json",
        max_body_bytes=SMALL_BODY,
        request_schema={"$ref": "#/components/schemas/Housekeeping"},
        responses={**_ok("AdminVersion"), **_IN_USE},
        tags=_TAGS,
        role="admin",
    ),
    Route(
        "POST",
        _VERSION_PATH + "/unarchive",
        unarchive_version,
        "admin_unarchive_version",
        "native",
        "Put an archived version back in service (audited)",
        body="json",
        max_body_bytes=SMALL_BODY,
        request_schema={"$ref": "#/components/schemas/Housekeeping"},
        responses=_ok("AdminVersion"),
        tags=_TAGS,
        role="admin",
    ),
    Route(
        "DELETE",
        _VERSION_PATH,
        delete_version,
        "admin_delete_version",
        "native",
        "Delete a version; its artifact is reclaimed unless shared (audited)",
        body="json",
        max_body_bytes=SMALL_BODY,
        request_schema={"$ref": "#/components/schemas/Housekeeping"},
        responses={**_ok("DeletedVersion"), **_IN_USE},
        tags=_TAGS,
        role="admin",
    ),
    Route(
        "DELETE",
        _MODEL,
        delete_model,
        "admin_delete_model",
        "native",
        "Delete a model and every version (audited); refused while aliases (unless force) "
        "or endpoints point at it",
        body="json",
        max_body_bytes=SMALL_BODY,
        request_schema={"$ref": "#/components/schemas/ModelDeletion"},
        responses={**_ok("DeletedModel"), **_IN_USE},
        tags=_TAGS,
        role="admin",
    ),
    Route(
        "POST",
        "/v1/admin/capture/erase",
        erase,
        "admin_capture_erase",
        "native",
        "Erase a person's captured predictions and their feedback (audited without the "
        "values; the capture's hash chains stay valid)",
        body="json",
        max_body_bytes=SMALL_BODY,
        request_schema={"$ref": "#/components/schemas/CaptureErase"},
        responses=_ok("CaptureErasure"),
        tags=_TAGS,
        role="admin",
    ),
    Route(
        "GET",
        "/v1/admin/audit",
        audit,
        "admin_audit",
        "native",
        f"The audit trail, newest first (at most {AUDIT_LIMIT} events)",
        responses=_ok("AuditLog"),
        tags=_TAGS,
        role="admin",
    ),
    Route(
        "GET",
        _MODEL + "/audit",
        audit,
        "admin_model_audit",
        "native",
        f"The audit trail of one model, newest first (at most {AUDIT_LIMIT} events)",
        responses=_ok("AuditLog"),
        tags=_TAGS,
        role="admin",
    ),
]
