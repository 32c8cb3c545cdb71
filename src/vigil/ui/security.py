"""What every console answer carries, and what every console form is checked for.

* **Headers**: a strict Content-Security-Policy (only this server's own scripts, styles
  and images; no inline script or style; no framing; forms post only here),
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``,
  ``Cache-Control: no-store`` on pages (they hold a CSRF token and live data).
* **Cookies**: the session cookie is ``HttpOnly`` (no script reads it), ``SameSite=Strict``
  (no other site's page sends it), ``Path=/ui``, with the session's expiry, and ``Secure``
  with the ``__Host-`` name prefix when the request came over TLS.
* **Forms**: state-changing forms carry the session's CSRF token; the serving app already
  refused a foreign ``Origin`` (403) and a foreign ``Host`` (421) on a loopback server; a
  browser's ``Sec-Fetch-Site: cross-site`` is refused here too.

>>> dict(page_headers())[b"x-frame-options"]
b'DENY'
>>> cookie_name(secure=True), cookie_name(secure=False)
('__Host-vigil_session', 'vigil_session')
>>> parse_form(b"csrf=abc&comment=on+it%21")
{'csrf': 'abc', 'comment': 'on it!'}
"""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl

from vigil.errors import CrossOriginRequestError, MalformedRequestError

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_NO_STORE = (b"cache-control", b"no-store")
SESSION = "vigil_session"
CSRF_COOKIE = "vigil_csrf"
"""With authentication off there is no session: the CSRF token lives in its own
``SameSite=Strict`` cookie, and a form must carry the same value (double submit)."""
MAX_FIELDS = 20
MAX_FIELD_CHARS = 2000


def page_headers() -> list[tuple[bytes, bytes]]:
    """The headers of every console answer (a new list: the caller may add cookies)."""
    return [*_HEADERS, _NO_STORE]


def static_headers() -> list[tuple[bytes, bytes]]:
    """The headers of a static file (cached for an hour; its name changes with vigil)."""
    return [*_HEADERS, (b"cache-control", b"public, max-age=3600")]


def cookie_name(*, secure: bool) -> str:
    """The session cookie's name: ``__Host-`` prefixed over TLS, so a browser takes it
    only with ``Secure``, ``Path=/`` and no ``Domain`` (no sibling host can set it)."""
    return f"__Host-{SESSION}" if secure else SESSION


def set_cookie(
    name: str, value: str, *, secure: bool, expires: datetime | None = None, delete: bool = False
) -> tuple[bytes, bytes]:
    """A ``Set-Cookie`` header: ``HttpOnly``, ``SameSite=Strict``, ``Secure`` over TLS;
    without ``expires`` a cookie of the browser's session; ``delete`` removes it.

    >>> set_cookie("vigil_session", "t", secure=False)[1]
    b'vigil_session=t; Path=/ui; HttpOnly; SameSite=Strict'
    """
    parts = [f"{name}={value}", "Path=/" if name.startswith("__Host-") else "Path=/ui"]
    if delete:
        parts.append("Max-Age=0")
    elif expires is not None:
        parts.append(f"Expires={format_datetime(expires, usegmt=True)}")
    parts += ["HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return (b"set-cookie", "; ".join(parts).encode("latin-1"))


def read_cookie(header: bytes | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header, or ``None``.

    >>> read_cookie(b"a=1; vigil_session=xyz", "vigil_session")
    'xyz'
    """
    if not header or len(header) > 8192:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header.decode("latin-1"))
    except Exception:  # a malformed Cookie header: as if none was sent
        return None
    morsel = jar.get(name)
    return None if morsel is None else morsel.value


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body's fields (the first value of each),
    at most :data:`MAX_FIELDS` of at most :data:`MAX_FIELD_CHARS` characters: a console
    form has a few short fields, so anything larger is refused (400)."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise MalformedRequestError(
            f"a console form has at most {MAX_FIELDS} UTF-8 fields; send the page's form",
            detail={"field": None, "expected": "form", "got": "invalid form"},
        ) from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if len(value) > MAX_FIELD_CHARS:
            raise MalformedRequestError(
                f"form field {key[:40]!r} is longer than {MAX_FIELD_CHARS} characters",
                detail={"field": key[:40], "expected": f"<= {MAX_FIELD_CHARS} characters"},
            )
        fields.setdefault(key, value)
    return fields


def check_fetch_site(value: bytes | None) -> None:
    """Refuse a request a browser says another site sent (``Sec-Fetch-Site: cross-site``
    or ``same-site``: a sibling host is another site to this console)."""
    if value is not None and value not in (b"same-origin", b"none"):
        raise CrossOriginRequestError(
            "the console takes forms from its own pages only; open the page and send it again",
            detail={"sec-fetch-site": value.decode("latin-1")[:40]},
        )
