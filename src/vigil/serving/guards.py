"""What keeps a web page from acting through a user's browser: Host and Origin checks.

A browser lets any page it shows send requests to any address, the user's own loopback
server included, and with DNS rebinding even read the answers. A server without API keys
has nothing but these checks between it and such a page:

* **Host** (DNS rebinding): a page of ``evil.example`` whose name the attacker re-points at
  127.0.0.1 still sends ``Host: evil.example``. A server that checks the Host answers only
  its own names: ``localhost`` (and ``*.localhost``), loopback addresses, the address the
  request came in on, and ``VIGIL_SERVE_ALLOWED_HOSTS``; anything else gets 421. An
  address cannot be rebound, so a Host that is the server's own address is always safe.
* **Origin** (CSRF): a browser names the page that sent a request in ``Origin``. Admin and
  state-changing routes refuse a foreign one (403) unless ``VIGIL_SERVE_ALLOWED_ORIGINS``
  lists it.
* **Content type** (in :mod:`vigil.serving.app`): state-changing routes need
  ``application/json``, which an HTML form cannot send and a script of another origin
  cannot send without a CORS preflight this server never grants.

The checks sit on every request's path, so they cost one set lookup for a Host already
seen and nothing for a route without an ``Origin`` header.

>>> guard = HostGuard(["models.example.com"])
>>> guard.check(b"models.example.com:8000", None); guard.check(b"localhost:8000", None)
>>> guard.check(b"evil.example", ("127.0.0.1", 8000))
Traceback (most recent call last):
...
vigil.errors.HostNotAllowedError: this server does not answer for host 'evil.example' (a web page reaching it through DNS rebinding looks like this); call it as localhost or by its address, or add the name to VIGIL_SERVE_ALLOWED_HOSTS
>>> check_origin(b"http://127.0.0.1:8000", b"127.0.0.1:8000", frozenset())
>>> check_origin(b"null", b"127.0.0.1:8000", frozenset())
Traceback (most recent call last):
...
vigil.errors.CrossOriginRequestError: a page of another origin ('null') may not call this operation; call it from a client that sends no Origin header, or add the page's origin to VIGIL_SERVE_ALLOWED_ORIGINS
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from vigil.errors import CrossOriginRequestError, HostNotAllowedError

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_REMEMBERED = 256
"""Most Host values a guard remembers as admitted (a client cannot grow it past this)."""


def host_name(value: str) -> str:
    """The name part of a Host header or list entry: no port, no brackets, lower case.

    >>> host_name("LocalHost.:8000"), host_name("[::1]:80"), host_name("::1")
    ('localhost', '::1', '::1')
    """
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def _is_loopback(name: str) -> bool:
    if name.endswith(".localhost"):
        return True  # RFC 6761: always this machine, nobody can register such a name
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostGuard:
    """Admits the Host values this server answers for; see the module docstring."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.names = frozenset(host_name(a) for a in allowed) | LOOPBACK_NAMES
        self.admitted: set[bytes] = set()
        """Host header values already admitted by name: the next request with one costs a
        set lookup (the app checks this before calling :meth:`check`)."""

    def check(self, value: bytes, server: Any) -> None:
        """Admit ``value`` (a raw Host header) or raise :class:`HostNotAllowedError`;
        ``server`` is the ASGI scope's ``(address, port)`` the request came in on."""
        name = host_name(value.decode("latin-1"))
        if name in self.names or _is_loopback(name):
            if len(self.admitted) < _REMEMBERED:
                self.admitted.add(value)
            return
        if server and name == str(server[0]).lower():
            return  # the address itself (a kubelet's probe): not remembered, it depends on it
        raise HostNotAllowedError(
            f"this server does not answer for host {name[:100]!r} (a web page reaching it "
            "through DNS rebinding looks like this); call it as localhost or by its "
            "address, or add the name to VIGIL_SERVE_ALLOWED_HOSTS",
            detail={"host": name[:100], "setting": "VIGIL_SERVE_ALLOWED_HOSTS"},
        )


def host_guard(allowed: tuple[str, ...], *, authentication: bool) -> HostGuard | None:
    """The guard a server needs: none when ``allowed`` holds ``*``, or when it is empty and
    authentication is on (API keys guard that server; its Host is whatever name the load
    balancer answers to).

    >>> host_guard((), authentication=True) is None, host_guard(("*",), authentication=False)
    (True, None)
    >>> sorted(host_guard((), authentication=False).names)
    ['127.0.0.1', '::1', 'localhost']
    """
    if "*" in allowed or (not allowed and authentication):
        return None
    return HostGuard(allowed)


def check_origin(origin: bytes, host: bytes | None, allowed: frozenset[bytes]) -> None:
    """Refuse ``origin`` unless it is the server's own (its authority is the Host the
    request was sent to) or listed in ``allowed``; ``null`` (a sandboxed or local page)
    is never the server's own."""
    if origin in allowed:
        return
    scheme, sep, authority = origin.lower().partition(b"://")
    if sep and scheme in (b"http", b"https") and host is not None and authority == host.lower():
        return
    shown = origin.decode("latin-1")[:100]
    raise CrossOriginRequestError(
        f"a page of another origin ({shown!r}) may not call this operation; call it from a "
        "client that sends no Origin header, or add the page's origin to "
        "VIGIL_SERVE_ALLOWED_ORIGINS",
        detail={"origin": shown, "setting": "VIGIL_SERVE_ALLOWED_ORIGINS"},
    )
