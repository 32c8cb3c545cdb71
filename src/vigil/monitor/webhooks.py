"""Where vigil may post alerts, how a webhook is shown, and the one way it is called.

vigil calls webhooks from inside the network it runs in. Pointed at a metadata service
(``169.254.169.254``), a loopback admin port or a private host, a webhook would turn vigil
into a way into that network (server-side request forgery), so a webhook must point at
public addresses only:

* **when it is configured**: a literal address in any spelling (``127.1``, ``2130706433``,
  ``[::ffff:127.0.0.1]``) and ``localhost`` names are refused at once; an endpoint's
  webhooks, written through the admin API, also have their name resolved and every address
  checked (a name that does not resolve yet is checked when called);
* **when it is called** (:func:`post_json`): the name is resolved once, every address is
  checked, and the connection goes to the checked address under the webhook's own name
  (``Host`` and TLS server name), so re-pointing the name in between (DNS rebinding) gains
  nothing.

``VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS=true`` allows every target: a receiver on the same
machine or network. Behind an HTTP(S) proxy (``HTTPS_PROXY``) the proxy resolves the name
and connects; it is the proxy's egress rules that apply then.

Webhook URLs carry tokens: they are shown as their :func:`webhook_label` only.

>>> webhook_label("https://hooks.slack.com/services/T0/B0/XXXX")
'https://hooks.slack.com/…#c1e10ad4'
>>> check_webhook_url("http://169.254.169.254/latest/meta-data", allow_private=False)
Traceback (most recent call last):
...
vigil.errors.UnsafeWebhookError: webhook http://169.254.169.254/…#de4479b5 points at 169.254.169.254 (link-local address); vigil posts alerts to public addresses only, or set VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS=true to allow a receiver on this machine or network
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from vigil._redact import redact_url
from vigil.errors import UnsafeWebhookError

if TYPE_CHECKING:
    import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

SETTING = "VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS"
_LABEL = re.compile(r"https?://[^/\s]+/…#[0-9a-f]{8}")
# Most specific first: 240.0.0.1 is both reserved and private, 0.0.0.0 unspecified and private.
_KINDS = ("loopback", "link_local", "multicast", "unspecified", "reserved", "private")


def webhook_label(url: str) -> str:
    """The URL's scheme and host, plus a short digest of the whole URL so two webhooks on
    one host stay apart: safe to log, show and store."""
    return f"{redact_url(url, path=False)}#{hashlib.sha256(url.encode()).hexdigest()[:8]}"


def is_label(text: str) -> bool:
    """Whether ``text`` is a :func:`webhook_label` rather than a URL (a client sent back
    what it was shown).

    >>> is_label(webhook_label("https://h.example/x")), is_label("https://h.example/x")
    (True, False)
    """
    return _LABEL.fullmatch(text) is not None


def _kind(address: Address) -> str | None:
    """Why ``address`` is not public (``None`` when it is)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind in _KINDS:
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:
        return "non-public"  # shared (100.64.0.0/10), benchmarking, documentation, ...
    return None


def _parts(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an ``http(s)://`` URL naming a host, or UnsafeWebhookError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeWebhookError(
            f"webhook {redact_url(url, path=False)!r} is not a URL vigil can call: it must "
            "start with http:// or https:// and name a host",
            detail={"webhook": redact_url(url, path=False)},
        )
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname.rstrip("."), port or default


def _addresses(host: str, port: int, *, numeric: bool) -> list[Address] | None:
    """Every address ``host`` stands for (``numeric``: only if it is an address in some
    spelling, without asking DNS), or ``None`` when it does not resolve."""
    flags = socket.AI_NUMERICHOST if numeric else 0
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=flags)
    except (OSError, UnicodeError):
        return None
    # An IPv6 link-local answer may carry its zone (fe80::1%eth0): the address is the rest.
    return list(dict.fromkeys(ipaddress.ip_address(str(f[4][0]).split("%")[0]) for f in found))


def _refuse_private(url: str, addresses: list[Address]) -> None:
    for address in addresses:
        kind = _kind(address)
        if kind is not None:
            raise UnsafeWebhookError(
                f"webhook {webhook_label(url)} points at {address} ({kind} address); vigil "
                f"posts alerts to public addresses only, or set {SETTING}=true to allow a "
                "receiver on this machine or network",
                detail={
                    "webhook": webhook_label(url),
                    "address": str(address),
                    "kind": kind,
                    "setting": SETTING,
                },
            )


def check_webhook_url(url: str, *, allow_private: bool, resolve: bool = False) -> None:
    """Refuse a webhook URL vigil must not call (:class:`~vigil.errors.UnsafeWebhookError`,
    422): not ``http(s)://`` with a host, or, unless ``allow_private``, pointing at a
    loopback, link-local, private, multicast, unspecified or reserved address. ``resolve``
    also asks DNS about a name (a name that does not resolve passes: it is checked again
    when called)."""
    _, host, port = _parts(url)
    if allow_private:
        return
    lowered = host.lower()
    if lowered == "localhost" or lowered.endswith(".localhost"):
        _refuse_private(url, [ipaddress.ip_address("127.0.0.1")])
    addresses = _addresses(host, port, numeric=True)
    if addresses is None and resolve:
        addresses = _addresses(host, port, numeric=False)
    _refuse_private(url, addresses or [])


def _proxied(scheme: str, host: str) -> bool:
    """Whether httpx would send a request for ``host`` through a proxy from the
    environment (``HTTP(S)_PROXY``/``ALL_PROXY``, minus ``NO_PROXY``)."""
    import urllib.request  # only to post: this module is on the server's start path

    proxies = urllib.request.getproxies_environment()
    if scheme not in proxies and "all" not in proxies:
        return False
    return not urllib.request.proxy_bypass(host)


def post_json(
    client: httpx.Client,
    url: str,
    body: Any,
    *,
    allow_private: bool,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST ``body`` as JSON (with ``headers``, e.g. credentials) to the address ``url``'s
    name resolves to now, once that address is checked; raises :class:`~vigil.errors.UnsafeWebhookError` for a target
    vigil must not call and :class:`httpx.HTTPError` when the call fails."""
    import httpx  # only to post: this module is on the server's start path

    scheme, host, port = _parts(url)
    if _proxied(scheme, host):
        if not allow_private:
            check_webhook_url(url, allow_private=False, resolve=True)
        return client.post(url, json=body, headers=headers)
    addresses = _addresses(host, port, numeric=False)
    if not addresses:
        raise httpx.ConnectError(f"cannot resolve the host of {webhook_label(url)}")
    if not allow_private:
        _refuse_private(url, addresses)
    parts = urlsplit(url)
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{literal}:{port}" if userinfo else f"{literal}:{port}"
    pinned = urlunsplit((scheme, netloc, parts.path, parts.query, ""))
    name = f"[{host}]" if ":" in host else host
    pinned_headers = {**(headers or {}), "host": f"{name}:{parts.port}" if parts.port else name}
    extensions = {"sni_hostname": host} if scheme == "https" else None
    return client.post(pinned, json=body, headers=pinned_headers, extensions=extensions)
