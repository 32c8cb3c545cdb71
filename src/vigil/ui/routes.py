"""The console's routes, served under ``/ui`` by the same server as the predictions (the
composition root adds them, :meth:`vigil.app.Vigil.serving_app`, as it adds the update
policies' admin API). None needs an API-key header: the console checks its own session
(:mod:`vigil.ui.console`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from vigil.serving.http import Request, Response, Route, Style
from vigil.ui.console import FORM_BYTES, Console
from vigil.ui.handlers import Handlers
from vigil.ui.render import PREFIX
from vigil.ui.settings import ConsoleSettings

if TYPE_CHECKING:
    from vigil.serving.dataplane import DataPlane

__all__ = ["console_routes"]

Handler = Callable[["DataPlane", Request], Awaitable[Response]]


def _get(template: str, handler: Handler, name: str, summary: str) -> Route:
    """A console page: refused requests get an HTML page (style ``page``)."""
    style: Style = "ops" if template in ("/live.json", "/static/{file}") else "page"
    return Route(
        "GET", PREFIX + template, handler, name, style, summary, tags=("console",), in_api=False
    )


def _post(template: str, handler: Handler, name: str, summary: str) -> Route:
    return Route(
        "POST",
        PREFIX + template,
        handler,
        name,
        "page",
        summary,
        body="form",
        max_body_bytes=FORM_BYTES,
        tags=("console",),
        in_api=False,
    )


def console_routes(settings: ConsoleSettings | None = None) -> list[Route]:
    """Every route of one serving app's console (its own sessions and live rates)."""
    h = Handlers(Console(settings))
    return [
        _get("", h.overview, "ui_overview", "Console: every model and endpoint"),
        _get("/live.json", h.live_json, "ui_live", "Console: live counters"),
        _get("/static/{file}", h.static_file, "ui_static", "Console: static files"),
        _get("/signin", h.signin_page, "ui_signin_page", "Console: sign in"),
        _post("/signin", h.signin, "ui_signin", "Console: sign in with an API key"),
        _post("/signout", h.signout, "ui_signout", "Console: sign out"),
        _get("/alerts", h.alerts, "ui_alerts", "Console: alerts"),
        _post("/alerts/{id}/ack", h.ack, "ui_alert_ack", "Console: acknowledge an alert"),
        _post("/silences", h.silence, "ui_silence", "Console: silence alerts"),
        _get("/audit", h.audit, "ui_audit", "Console: the audit trail"),
        _get("/keys", h.keys, "ui_keys", "Console: API keys"),
        _post("/keys", h.create_key, "ui_key_create", "Console: create an API key"),
        _post("/keys/{id}/revoke", h.revoke_key, "ui_key_revoke", "Console: revoke a key"),
        _get("/models/{name}", h.model, "ui_model", "Console: one model"),
        _post(
            "/models/{name}/{action}", h.model_action, "ui_model_action", "Console: act on a model"
        ),
        _get("/endpoints/{name}", h.endpoint, "ui_endpoint", "Console: one endpoint"),
        _post(
            "/endpoints/{name}/{action}",
            h.endpoint_action,
            "ui_endpoint_action",
            "Console: act on an endpoint",
        ),
    ]
