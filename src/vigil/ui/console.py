"""The console's plumbing: who is looking, pages and form actions, off the event loop.

Every handler hands its work (session read, SQL reads, the action, rendering) to the
console's own worker thread (:attr:`vigil.serving.executors.Executors.console`): the event
loop only moves bytes, so the console never holds a prediction up. Pages answer HTML;
what the serving app refuses before a handler runs (a foreign ``Origin`` or ``Host``, a
state change not sent as a form, an oversized body) answers its usual JSON problem.

Who is looking: with authentication on, the session cookie's
(:mod:`vigil.ui.sessions`); without it, nobody in particular (a loopback server), which
every page says. A state-changing form needs the CSRF token of the page it came from, a
same-origin browser request, and, authentication on, an ``admin`` session.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import parse_qsl, quote

from vigil.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    VigilError,
)
from vigil.serving.admin_routes import ANONYMOUS
from vigil.serving.http import HTML, JSON, Request, Response, dumps
from vigil.ui import security
from vigil.ui.live import LiveRates
from vigil.ui.render import PREFIX, Chrome, render
from vigil.ui.sessions import ConsoleSession, SessionStore
from vigil.ui.settings import ConsoleSettings

if TYPE_CHECKING:
    from vigil.experiments.config import EndpointConfig
    from vigil.monitor.services import MonitorServices
    from vigil.serving.dataplane import DataPlane
    from vigil.ui.pages.overview import Overview

__all__ = ["Console", "Viewer"]

T = TypeVar("T")
FORM_BYTES = 16 * 1024
"""Largest form a console route reads (its forms are a few short fields)."""
_FLASH = "vigil_flash"
_FLASH_CHARS = 300
_STATIC_TYPES = {
    ".css": b"text/css; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".svg": b"image/svg+xml",
}


@dataclass
class Viewer:
    """Who sent a console request, and the cookies the answer sets."""

    chrome: Chrome
    csrf: str
    session: ConsoleSession | None = None
    token: str | None = None
    """The session cookie's value (authentication on)."""
    cookies: list[tuple[bytes, bytes]] = field(default_factory=list)
    csrf_sent_back: bool = True
    """The browser sent the CSRF cookie (authentication off): a form may be checked."""
    flash: str | None = None


class SignInNeeded(Exception):
    """No live session: a page answers a redirect to the sign-in page."""


def _static_files() -> dict[str, tuple[bytes, bytes]]:
    files: dict[str, tuple[bytes, bytes]] = {}
    for item in resources.files("vigil.ui").joinpath("static").iterdir():
        kind = _STATIC_TYPES.get(item.name[item.name.rfind(".") :])
        if kind is not None and item.is_file():
            files[item.name] = (item.read_bytes(), kind)
    return files


def _flash_cookie(message: str, *, ok: bool, secure: bool) -> tuple[bytes, bytes]:
    text = ("ok:" if ok else "error:") + message[:_FLASH_CHARS]
    value = base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii")
    return security.set_cookie(_FLASH, value, secure=secure)


def _read_flash(value: str | None) -> str | None:
    if not value or len(value) > 2 * _FLASH_CHARS:
        return None
    try:
        return base64.urlsafe_b64decode(value.encode("ascii")).decode("utf-8")
    except ValueError:
        return None


def query_fields(req: Request) -> dict[str, str]:
    text = req.query[:4096].decode("latin-1")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=security.MAX_FIELDS)
    except ValueError:
        raise ValidationError(
            f"the query holds more than {security.MAX_FIELDS} fields",
            detail={"field": None, "expected": f"<= {security.MAX_FIELDS} fields"},
        ) from None
    found: dict[str, str] = {}
    for key, value in pairs:
        found.setdefault(key, value)
    return found


def redirect(to: str, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    out = security.page_headers()
    out.append((b"location", to.encode("latin-1")))
    out.extend(headers or ())
    return Response(b"", 303, HTML, out)


class Console:
    """The console of one serving app: its settings, sessions and live rates."""

    def __init__(self, settings: ConsoleSettings | None = None) -> None:
        self.settings = settings or ConsoleSettings()
        self.live = LiveRates()
        self.static = _static_files()
        self._sessions: SessionStore | None = None
        self._overview: tuple[float, Overview] | None = None

    def overview(self, dp: DataPlane) -> Overview:
        """The overview's data, reused for :attr:`ConsoleSettings.overview_cache_s` (only
        the console's one thread calls this, so it needs no lock)."""
        now = time.monotonic()
        kept = self._overview
        if kept is not None and now - kept[0] < self.settings.overview_cache_s:
            return kept[1]
        from vigil.ui.pages.overview import overview  # the page's reads: on first use

        built = overview(self.installation(dp), self.live.figures())
        self._overview = (now, built)
        return built

    def endpoint_configs(self, dp: DataPlane) -> list[EndpointConfig]:
        """The installation's experiment endpoints (none on a server without a registry)."""
        if dp.services is None:
            return []
        from vigil.experiments.store import EndpointStore  # the live figures' one read

        return EndpointStore(self.installation(dp)).list()

    # -- plumbing ---------------------------------------------------------------------

    @staticmethod
    async def off_loop(dp: DataPlane, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(dp.executors.console, fn)

    @staticmethod
    def installation(dp: DataPlane) -> MonitorServices:
        if dp.services is None:
            raise NotFoundError(
                "this server serves a fixed set of models and has no registry, so it has no "
                "console; serve registered models with vigil serve",
                detail={"path": PREFIX},
            )
        return cast("MonitorServices", dp.services)

    def sessions(self, dp: DataPlane) -> SessionStore:
        if self._sessions is None:
            ttl = timedelta(seconds=self.settings.session_ttl_s)
            self._sessions = SessionStore(self.installation(dp).database, ttl=ttl)
        return self._sessions

    @staticmethod
    def auth_off(dp: DataPlane) -> bool:
        return dp.settings.auth != "on"

    def viewer(self, dp: DataPlane, req: Request, *, signed_in: bool = True) -> Viewer:
        """Who is looking; :class:`SignInNeeded` without a live session (auth on)."""
        secure = req.scheme == "https"
        cookie = req.headers.get(b"cookie")
        flash = _read_flash(security.read_cookie(cookie, _FLASH))
        cookies = [security.set_cookie(_FLASH, "", secure=secure, delete=True)] if flash else []
        if self.auth_off(dp) or not signed_in:
            # No session: the CSRF token is the double-submitted cookie's.
            token = security.read_cookie(cookie, security.CSRF_COOKIE)
            sent_back = token is not None and 20 <= len(token) <= 64
            if not sent_back:
                token = secrets.token_urlsafe(32)
                cookies.append(security.set_cookie(security.CSRF_COOKIE, token, secure=secure))
            assert token is not None
            chrome = Chrome(role=None, can_act=True, actor=ANONYMOUS, auth_off=True)
            if not self.auth_off(dp):
                chrome = Chrome(role=None, can_act=False, actor="", auth_off=False)
            return Viewer(chrome, token, cookies=cookies, csrf_sent_back=sent_back, flash=flash)
        token = security.read_cookie(cookie, security.cookie_name(secure=secure))
        session = self.sessions(dp).get(token)
        if session is None:
            raise SignInNeeded
        chrome = Chrome(
            role=session.role,
            can_act=session.role == "admin",
            actor=session.actor,
            auth_off=False,
        )
        return Viewer(chrome, session.csrf, session, token, cookies, flash=flash)

    @staticmethod
    def check_form(viewer: Viewer, req: Request, form: dict[str, str], *, act: bool) -> None:
        """Refuse a form without this viewer's CSRF token, sent from another site, or
        (``act``) from a session that may only look."""
        security.check_fetch_site(req.headers.get(b"sec-fetch-site"))
        sent = form.pop("csrf", None)
        if viewer.session is not None:
            ok = viewer.session.csrf_matches(sent)
        else:
            ok = (
                viewer.csrf_sent_back
                and sent is not None
                and secrets.compare_digest(sent.encode(), viewer.csrf.encode())
            )
        if not ok:
            raise PermissionDeniedError(
                "the form's CSRF token is missing or stale; reload the page and send it again",
                detail={"reason": "csrf"},
            )
        if act and not viewer.chrome.can_act:
            raise PermissionDeniedError(
                f"a {viewer.chrome.role} session may look but not act; sign in with an admin key",
                detail={"role": viewer.chrome.role, "expected": "admin"},
            )

    def error_page(self, viewer: Viewer | None, exc: VigilError) -> Response:
        chrome = viewer.chrome if viewer else Chrome(None, False, "", auth_off=False)
        body = render("error.html", chrome=chrome, csrf=viewer.csrf if viewer else "", error=exc)
        headers = security.page_headers()
        if viewer is not None:
            headers += viewer.cookies
        return Response(body, exc.status, HTML, headers)

    def page(
        self,
        dp: DataPlane,
        req: Request,
        build: Callable[[Viewer], tuple[str, dict[str, Any]] | Response],
        *,
        admin_only: bool = False,
    ) -> Response:
        """A page for its viewer (runs on the console thread): ``build`` gives the
        template and its variables, or a whole response."""
        try:
            viewer = self.viewer(dp, req)
        except SignInNeeded:
            return redirect(f"{PREFIX}/signin")
        try:
            if admin_only and not viewer.chrome.can_act:
                raise PermissionDeniedError(
                    "this page is for admin keys; sign in with one to see it",
                    detail={"role": viewer.chrome.role, "expected": "admin"},
                )
            built = build(viewer)
            if isinstance(built, Response):
                return built
            template, own = built
            body = render(
                template, chrome=viewer.chrome, csrf=viewer.csrf, flash=viewer.flash, **own
            )
        except VigilError as exc:
            return self.error_page(viewer, exc)
        return Response(body, 200, HTML, security.page_headers() + viewer.cookies)

    def action(
        self,
        dp: DataPlane,
        req: Request,
        run: Callable[[Viewer, dict[str, str]], str],
        back: str,
    ) -> Response:
        """A form's action (on the console thread): checked, run, then a 303 back to
        ``back`` with its one-line message (or its error) shown once there."""
        try:
            viewer = self.viewer(dp, req)
        except SignInNeeded:
            return self.error_page(
                None,
                AuthenticationError(
                    "your console session has ended; sign in again", detail={"reason": "session"}
                ),
            )
        secure = req.scheme == "https"
        try:
            form = security.parse_form(req.body)
            self.check_form(viewer, req, form, act=True)
        except VigilError as exc:
            return self.error_page(viewer, exc)
        try:
            message, ok = run(viewer, form), True
        except VigilError as exc:
            message, ok = exc.message, False
        self._overview = None  # its author sees the change on the next overview
        return redirect(back, [_flash_cookie(message, ok=ok, secure=secure)])


def json_answer(obj: Any, status: int = 200) -> Response:
    return Response(dumps(obj), status, JSON, security.page_headers())


def quoted(name: str) -> str:
    return quote(name, safe="")
