"""The console's handlers: each translates one request into calls of the stores (through
the same functions the admin REST API and the CLI call) and a page, on the console's
worker thread (:meth:`vigil.ui.routes.Console.page` and ``action``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from vigil.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    VigilError,
)
from vigil.serving.http import HTML, Request, Response
from vigil.ui import security
from vigil.ui.console import SignInNeeded, Viewer, json_answer, query_fields, quoted, redirect
from vigil.ui.render import PREFIX, render

if TYPE_CHECKING:
    from vigil.experiments.services import ExperimentServices
    from vigil.serving.dataplane import DataPlane
    from vigil.ui.console import Console

_MAX_ID = 2**62


def _positive(text: str, what: str) -> int:
    if not text.isdigit() or len(text) > 18 or not 1 <= int(text) <= _MAX_ID:
        raise ValidationError(
            f"{what} id must be a positive integer, got {text[:40]!r}",
            detail={"field": "id", "expected": "integer >= 1", "got": text[:40]},
        )
    return int(text)


class Handlers:
    """The handlers of one :class:`~vigil.ui.routes.Console`."""

    def __init__(self, console: Console) -> None:
        self.console = console

    # -- sign in and out ----------------------------------------------------------------

    async def signin_page(self, dp: DataPlane, req: Request) -> Response:
        c = self.console

        def run() -> Response:
            if c.auth_off(dp):
                return redirect(PREFIX)
            viewer = c.viewer(dp, req, signed_in=False)
            body = render("signin.html", chrome=viewer.chrome, csrf=viewer.csrf, error=None)
            return Response(body, 200, HTML, security.page_headers() + viewer.cookies)

        return await c.off_loop(dp, run)

    async def signin(self, dp: DataPlane, req: Request) -> Response:
        c = self.console

        def run() -> Response:
            if c.auth_off(dp):
                return redirect(PREFIX)
            viewer = c.viewer(dp, req, signed_in=False)
            secure = req.scheme == "https"
            try:
                form = security.parse_form(req.body)
                c.check_form(viewer, req, form, act=False)
                token, session = c.sessions(dp).sign_in(form.get("key", ""))
            except (AuthenticationError, PermissionDeniedError) as exc:
                body = render("signin.html", chrome=viewer.chrome, csrf=viewer.csrf, error=exc)
                return Response(body, exc.status, HTML, security.page_headers() + viewer.cookies)
            except VigilError as exc:
                return c.error_page(viewer, exc)
            name = security.cookie_name(secure=secure)
            cookie = security.set_cookie(name, token, secure=secure, expires=session.expires_at)
            return redirect(PREFIX, [cookie])

        return await c.off_loop(dp, run)

    async def signout(self, dp: DataPlane, req: Request) -> Response:
        c = self.console

        def run() -> Response:
            if c.auth_off(dp):
                return redirect(PREFIX)
            secure = req.scheme == "https"
            gone = security.set_cookie(
                security.cookie_name(secure=secure), "", secure=secure, delete=True
            )
            try:
                viewer = c.viewer(dp, req)
            except SignInNeeded:
                return redirect(f"{PREFIX}/signin", [gone])
            try:
                form = security.parse_form(req.body)
                c.check_form(viewer, req, form, act=False)
            except VigilError as exc:
                return c.error_page(viewer, exc)
            assert viewer.token is not None
            c.sessions(dp).sign_out(viewer.token)
            return redirect(f"{PREFIX}/signin", [gone])

        return await c.off_loop(dp, run)

    # -- overview and live counters ------------------------------------------------------

    async def overview(self, dp: DataPlane, req: Request) -> Response:
        c = self.console

        def build(viewer: Viewer) -> tuple[str, dict[str, Any]]:
            return "overview.html", {"view": c.overview(dp)}

        return await c.off_loop(dp, lambda: c.page(dp, req, build))

    async def live_json(self, dp: DataPlane, req: Request) -> Response:
        c = self.console

        def run() -> Response:
            try:
                c.viewer(dp, req)
            except SignInNeeded:
                return json_answer({"error": "unauthenticated"}, 401)
            from vigil.ui.pages.overview import answering  # the page's reads: on first use

            figures = c.live.figures()
            endpoints = c.endpoint_configs(dp)
            return json_answer(
                {
                    "models": {
                        name: {
                            "requests_per_s": f.requests_per_s,
                            "p99_ms": f.p99_ms,
                            "error_rate": f.error_rate,
                        }
                        for name, f in figures.models.items()
                    },
                    "endpoints": {
                        config.name: {
                            "requests_per_s": f.requests_per_s,
                            "error_rate": f.error_rate,
                        }
                        for config in endpoints
                        if (f := figures.endpoint(config.name, answering(config))) is not None
                    },
                }
            )

        return await c.off_loop(dp, run)

    async def static_file(self, dp: DataPlane, req: Request) -> Response:
        found = self.console.static.get(req.params["file"])
        if found is None:
            raise NotFoundError(
                f"no console file {req.params['file'][:80]!r}", detail={"path": req.path[:100]}
            )
        return Response(found[0], 200, found[1], security.static_headers())

    # -- alerts --------------------------------------------------------------------------

    async def alerts(self, dp: DataPlane, req: Request) -> Response:
        from vigil.ui.pages.alerts import alerts_view

        c = self.console

        def build(viewer: Viewer) -> tuple[str, dict[str, Any]]:
            return "alerts.html", {"view": alerts_view(c.installation(dp).database)}

        return await c.off_loop(dp, lambda: c.page(dp, req, build))

    async def ack(self, dp: DataPlane, req: Request) -> Response:
        from vigil.monitor.silences import acknowledge

        c = self.console

        def run(viewer: Viewer, form: dict[str, str]) -> str:
            alert = _positive(req.params["id"], "alert")
            db = c.installation(dp).database
            done = acknowledge(
                db, alert, actor=viewer.chrome.actor, comment=form.get("comment") or None
            )
            return f"alert {done['id']} acknowledged by {done['acknowledged_by']}"

        return await c.off_loop(dp, lambda: c.action(dp, req, run, f"{PREFIX}/alerts"))

    async def silence(self, dp: DataPlane, req: Request) -> Response:
        from vigil.durations import parse_duration
        from vigil.monitor.silences import check_matchers, create_silence

        c = self.console

        def run(viewer: Viewer, form: dict[str, str]) -> str:
            labels = ("alertname", "model", "version", "route", "feature", "severity")
            matchers = check_matchers({k: form[k] for k in labels if form.get(k)})
            period = parse_duration(form.get("duration") or "", what="duration")
            db = c.installation(dp).database
            made = create_silence(
                db, matchers, period, actor=viewer.chrome.actor, comment=form.get("comment") or None
            )
            return f"silence {made.id} until {made.ends_at:%Y-%m-%d %H:%M} UTC"

        return await c.off_loop(dp, lambda: c.action(dp, req, run, f"{PREFIX}/alerts"))

    # -- audit ---------------------------------------------------------------------------

    async def audit(self, dp: DataPlane, req: Request) -> Response:
        from vigil.ui.pages.audit import audit_page

        c = self.console

        def build(viewer: Viewer) -> tuple[str, dict[str, Any]]:
            page = audit_page(
                c.installation(dp).database, query_fields(req), size=c.settings.audit_page_size
            )
            return "audit.html", {"view": page}

        return await c.off_loop(dp, lambda: c.page(dp, req, build))

    # -- keys ----------------------------------------------------------------------------

    async def keys(self, dp: DataPlane, req: Request) -> Response:
        from vigil.ui.pages.keys import list_keys

        c = self.console

        def build(viewer: Viewer) -> tuple[str, dict[str, Any]]:
            return "keys.html", {"keys": list_keys(c.installation(dp).database), "created": None}

        return await c.off_loop(dp, lambda: c.page(dp, req, build, admin_only=True))

    async def create_key(self, dp: DataPlane, req: Request) -> Response:
        from vigil.ui.pages import keys

        c = self.console

        def build(viewer: Viewer) -> tuple[str, dict[str, Any]] | Response:
            # Answered with the page itself, not a redirect: the token is shown once, here.
            db = c.installation(dp).database
            form = security.parse_form(req.body)
            c.check_form(viewer, req, form, act=True)
            created = keys.create_key(db, form, viewer.chrome.actor)
            return "keys.html", {"keys": keys.list_keys(db), "created": created}

        return await c.off_loop(dp, lambda: c.page(dp, req, build, admin_only=True))

    async def revoke_key(self, dp: DataPlane, req: Request) -> Response:
        from vigil.ui.pages.keys import revoke_key

        c = self.console

        def run(viewer: Viewer, form: dict[str, str]) -> str:
            key_id = req.params["id"]
            revoked = revoke_key(
                c.installation(dp).database, c.sessions(dp), key_id, viewer.chrome.actor
            )
            return f"key {revoked.id} revoked; its sessions have ended"

        return await c.off_loop(dp, lambda: c.action(dp, req, run, f"{PREFIX}/keys"))

    # -- the model and endpoint pages (their data and actions: vigil.ui.pages.*) ----------

    async def model(self, dp: DataPlane, req: Request) -> Response:
        from vigil.ui.pages.model import model_view

        c = self.console
        name = req.params["name"]

        # The drift drill-down: ?feature=NAME&window=ID (the heatmap's cells link there).
        fields = query_fields(req)
        feature, window = fields.get("feature") or None, fields.get("window") or None

        def build(viewer: Viewer) -> tuple[str, dict[str, Any]]:
            view = model_view(c.installation(dp), name, feature=feature, window=window)
            return "model.html", {"view": view}

        return await c.off_loop(dp, lambda: c.page(dp, req, build))

    async def endpoint(self, dp: DataPlane, req: Request) -> Response:
        from vigil.ui.pages.endpoint import endpoint_view

        c = self.console
        name = req.params["name"]

        def build(viewer: Viewer) -> tuple[str, dict[str, Any]]:
            services = cast("ExperimentServices", c.installation(dp))
            return "endpoint.html", {"view": endpoint_view(services, name)}

        return await c.off_loop(dp, lambda: c.page(dp, req, build))

    async def model_action(self, dp: DataPlane, req: Request) -> Response:
        from vigil.ui.pages.model import ACTIONS

        return await self._act(dp, req, ACTIONS, "models")

    async def endpoint_action(self, dp: DataPlane, req: Request) -> Response:
        from vigil.ui.pages.endpoint import ACTIONS

        return await self._act(dp, req, ACTIONS, "endpoints")

    async def _act(
        self, dp: DataPlane, req: Request, actions: dict[str, Any], kind: str
    ) -> Response:
        c = self.console
        name, action = req.params["name"], req.params["action"]
        if action not in actions:
            what = "model" if kind == "models" else "endpoint"
            raise NotFoundError(
                f"no {what} action {action[:40]!r}; use one of {', '.join(sorted(actions)) or 'none'}",
                detail={"path": req.path[:100]},
            )

        def run(viewer: Viewer, form: dict[str, str]) -> str:
            return str(actions[action](c.installation(dp), name, form, viewer.chrome.actor))

        back = f"{PREFIX}/{kind}/{quoted(name)}"
        return await c.off_loop(dp, lambda: c.action(dp, req, run, back))
