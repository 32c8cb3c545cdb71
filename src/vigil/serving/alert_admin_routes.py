"""The admin REST API over alerts: list them, acknowledge one, silence them for a period.

Reads need the ``read`` role, changes ``admin``; every change is audited with the calling
key as the actor (see :mod:`vigil.monitor.silences`). Handlers translate HTTP to those
calls, run off the event loop (they block on the database).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vigil.errors import NotFoundError, ValidationError
from vigil.serving.admin_routes import SMALL_BODY, _call, unknown_fields
from vigil.serving.endpoint_admin_routes import _actor
from vigil.serving.http import Request, Response, Route, json_response

if TYPE_CHECKING:
    from vigil.serving.dataplane import DataPlane
    from vigil.storage.sql import Database

LIST_LIMIT = 200
_MAX_ID = 2**62


def _database(dp: DataPlane, req: Request) -> Database:
    app = dp.services
    if app is None:
        raise NotFoundError(
            "this server serves a fixed set of models and has no database, so it has no "
            "alerts API; use a registry-backed server (vigil serve) or the vigil CLI",
            detail={"path": req.path[:100]},
        )
    return app.database


def _id(req: Request, what: str) -> int:
    text = req.params["id"]
    if not text.isdigit() or len(text) > 18 or not 1 <= int(text) <= _MAX_ID:
        raise ValidationError(
            f"{what} id must be a positive integer, got {text[:40]!r}",
            detail={"field": "id", "expected": "integer >= 1", "got": text[:40]},
        )
    return int(text)


def _body(req: Request, allowed: tuple[str, ...], example: str) -> dict[str, Any]:
    if not req.body:
        return {}
    body = req.json()
    if not isinstance(body, dict):
        raise ValidationError(
            f"send a JSON object such as {example}",
            detail={"field": None, "expected": "object", "got": type(body).__name__},
        )
    unknown = unknown_fields(body, allowed)
    if unknown:
        raise ValidationError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; send {example}",
            detail={"field": unknown[0], "expected": list(allowed), "got": unknown},
        )
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise ValidationError(
            "'comment' must be text", detail={"field": "comment", "expected": "string"}
        )
    return body


async def list_alerts(dp: DataPlane, req: Request) -> Response:
    from vigil.monitor.alerts import list_alerts as firing  # on first use: off the hot path
    from vigil.monitor.silences import silenced_now

    db = _database(dp, req)

    def read() -> list[dict[str, Any]]:
        events = firing(db, limit=LIST_LIMIT)
        silenced = silenced_now(db, events)
        return [{**e.to_dict(), "silenced_until": silenced.get(e.id)} for e in events]

    return json_response({"alerts": await _call(read)})


async def ack(dp: DataPlane, req: Request) -> Response:
    from vigil.monitor.silences import acknowledge  # on first use: off the hot path

    db = _database(dp, req)
    alert = _id(req, "alert")
    comment = _body(req, ("comment",), '{"comment": "on it"}').get("comment")
    actor = _actor(req)
    return json_response(await _call(lambda: acknowledge(db, alert, actor=actor, comment=comment)))


async def list_silences(dp: DataPlane, req: Request) -> Response:
    from vigil.monitor.silences import list_silences as active  # on first use

    db = _database(dp, req)
    found = await _call(lambda: active(db))
    return json_response({"silences": [s.to_dict() for s in found]})


async def create_silence(dp: DataPlane, req: Request) -> Response:
    # on first use: off the hot path
    from vigil.durations import parse_duration
    from vigil.monitor.silences import check_matchers
    from vigil.monitor.silences import create_silence as create

    db = _database(dp, req)
    example = '{"matchers": {"alertname": "dataset_drift", "model": "churn"}, "duration": "2h"}'
    body = _body(req, ("matchers", "duration", "comment"), example)
    matchers, duration = body.get("matchers"), body.get("duration")
    if not isinstance(matchers, dict):
        raise ValidationError(
            f"'matchers' must be an object of label values; send {example}",
            detail={"field": "matchers", "expected": "object"},
        )
    if not isinstance(duration, str | int | float) or isinstance(duration, bool):
        raise ValidationError(
            f"'duration' must be a duration such as \"2h\" or a number of seconds; send {example}",
            detail={"field": "duration", "expected": "duration"},
        )
    checked = check_matchers(matchers)
    period = parse_duration(duration, what="duration")
    actor, comment = _actor(req), body.get("comment")
    made = await _call(lambda: create(db, checked, period, actor=actor, comment=comment))
    return json_response(made.to_dict(), 201)


async def expire_silence(dp: DataPlane, req: Request) -> Response:
    from vigil.monitor.silences import expire_silence as expire  # on first use

    db = _database(dp, req)
    silence = _id(req, "silence")
    actor = _actor(req)
    return json_response((await _call(lambda: expire(db, silence, actor=actor))).to_dict())


_STRING = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_LABELS = {"type": "object", "additionalProperties": _STRING}
_SILENCE = {
    "type": "object",
    "required": ["id", "matchers", "starts_at", "ends_at", "created_by"],
    "properties": {
        "id": {"type": "integer"},
        "matchers": _LABELS,
        "starts_at": _TIME,
        "ends_at": _TIME,
        "created_by": _STRING,
        "comment": {"type": ["string", "null"]},
    },
}

SCHEMAS: dict[str, Any] = {
    "AlertList": {
        "type": "object",
        "required": ["alerts"],
        "properties": {
            "alerts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "rule", "status", "labels"],
                    "properties": {
                        "id": {"type": "integer"},
                        "rule": _STRING,
                        "status": _STRING,
                        "severity": _STRING,
                        "summary": _STRING,
                        "labels": _LABELS,
                        "starts_at": _TIME,
                        "silenced_until": {"type": ["string", "null"], "format": "date-time"},
                        "acknowledged_at": {"type": ["string", "null"], "format": "date-time"},
                        "acknowledged_by": {"type": ["string", "null"]},
                    },
                },
            }
        },
    },
    "AlertAck": {
        "type": "object",
        "description": "Optional: the body may be left out.",
        "properties": {"comment": {"type": "string", "maxLength": 1000}},
        "additionalProperties": False,
    },
    "AlertAcked": {
        "type": "object",
        "required": ["id", "acknowledged_at", "acknowledged_by"],
        "properties": {
            "id": {"type": "integer"},
            "acknowledged_at": _TIME,
            "acknowledged_by": _STRING,
        },
    },
    "SilenceRequest": {
        "type": "object",
        "required": ["matchers", "duration"],
        "properties": {
            "matchers": {
                "type": "object",
                "description": "Label values every matching alert has: alertname (the rule), "
                "severity, model, version, route, feature.",
                "additionalProperties": _STRING,
                "minProperties": 1,
            },
            "duration": {
                "type": ["string", "number"],
                "description": "30m, 2h, 1d... or seconds; at most 90 days.",
            },
            "comment": {"type": "string", "maxLength": 1000},
        },
        "additionalProperties": False,
    },
    "Silence": _SILENCE,
    "SilenceList": {
        "type": "object",
        "required": ["silences"],
        "properties": {
            "silences": {"type": "array", "items": {"$ref": "#/components/schemas/Silence"}}
        },
    },
}

_TAGS = ("admin",)


def _ok(schema: str, status: str = "200") -> dict[str, dict[str, str]]:
    return {status: {"description": "OK", "schema": schema}}


ROUTES: list[Route] = [
    Route(
        "GET",
        "/v1/admin/alerts",
        list_alerts,
        "admin_list_alerts",
        "native",
        f"Alerts firing now, newest first (at most {LIST_LIMIT}), with silences and acks",
        responses=_ok("AlertList"),
        tags=_TAGS,
        role="read",
    ),
    Route(
        "POST",
        "/v1/admin/alerts/{id}/ack",
        ack,
        "admin_ack_alert",
        "native",
        "Acknowledge a firing alert (audited); its resolution is still delivered",
        body="json",
        max_body_bytes=SMALL_BODY,
        request_schema={"$ref": "#/components/schemas/AlertAck"},
        responses={
            **_ok("AlertAcked"),
            "409": {"description": "The alert is not firing now", "schema": "Problem"},
        },
        tags=_TAGS,
        role="admin",
    ),
    Route(
        "GET",
        "/v1/admin/silences",
        list_silences,
        "admin_list_silences",
        "native",
        "Active silences, newest first",
        responses=_ok("SilenceList"),
        tags=_TAGS,
        role="read",
    ),
    Route(
        "POST",
        "/v1/admin/silences",
        create_silence,
        "admin_create_silence",
        "native",
        "Keep matching alerts from the webhooks for a period (audited)",
        body="json",
        max_body_bytes=SMALL_BODY,
        request_schema={"$ref": "#/components/schemas/SilenceRequest"},
        responses=_ok("Silence", "201"),
        tags=_TAGS,
        role="admin",
    ),
    Route(
        "DELETE",
        "/v1/admin/silences/{id}",
        expire_silence,
        "admin_expire_silence",
        "native",
        "End a silence now (audited)",
        responses=_ok("Silence"),
        tags=_TAGS,
        role="admin",
    ),
]
