"""The one place where errors become HTTP responses, in each protocol's own style.

* native and operational routes: vigil's problem body ``{"error", "message", "detail"}``
  plus the ``request_id``;
* Open Inference Protocol v2: ``{"error": "<message>"}`` as the spec says, plus our
  ``code`` and ``detail``;
* MLflow scoring: ``{"error_code": "BAD_REQUEST", "message": ...}``, and like
  ``mlflow models serve`` every client-side input problem answers 400;
* pages a person reads in a browser (the console's): a small HTML page with the status,
  the message and a link back, under a policy that allows no script, style or frame. The
  console renders its own errors in its layout; this page is for refusals made before
  its handlers run (a foreign ``Origin``, a body too large, a wrong content type).

Unexpected exceptions are logged with their traceback and answered 500 without one.

>>> from vigil.errors import ValidationError
>>> r = error_response("mlflow", ValidationError("feature 'a' is missing"), "rid")
>>> r.status, r.body
(400, b'{"error_code":"BAD_REQUEST","message":"feature \\'a\\' is missing"}')
"""

from __future__ import annotations

import html
import logging
from http import HTTPStatus
from typing import Any

import orjson

from vigil.errors import ShuttingDownError, VigilError
from vigil.serving.http import HTML, Response, Style

log = logging.getLogger("vigil.serving")

SHUTTING_DOWN = ShuttingDownError(
    "the server is shutting down and its drain timeout ran out before this request was "
    "answered; retry it (another replica, or this one once restarted, answers)",
    detail={"reason": "drain_timeout"},
)
"""The answer to a request still held when the drain's deadline ran out."""

_MLFLOW_CODES = {
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "BAD_REQUEST",
    413: "BAD_REQUEST",
    415: "BAD_REQUEST",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
}


def error_response(style: Style, exc: BaseException, request_id: str | None) -> Response:
    """The response for ``exc`` on a route of the given protocol ``style``."""
    if not isinstance(exc, VigilError):
        log.error("unexpected error while serving a request", exc_info=exc)
        status, code, message, detail = (
            500,
            "internal_error",
            "the server failed to answer this request; the error is in its log",
            {},
        )
    else:
        status, code, message, detail = exc.status, exc.code, exc.message, exc.detail
        if status >= 500:
            log.error("%s: %s", code, message, exc_info=exc.__cause__)
    if style == "page":
        return _page(status, message)
    if style == "mlflow":
        if status in (400, 422):
            status = 400
        body: dict[str, Any] = {
            "error_code": _MLFLOW_CODES.get(status, "BAD_REQUEST"),
            "message": message,
        }
    elif style == "v2":
        body = {"error": message, "code": code}
        if detail:
            body["detail"] = detail
    else:
        body = {"error": code, "message": message}
        if detail:
            body["detail"] = detail
        if request_id is not None:
            body["request_id"] = request_id
    return Response(orjson.dumps(body), status)


_PAGE_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def _page(status: int, message: str) -> Response:
    """A page for a person: the status and what to do, every character escaped.

    >>> _page(403, "<b>no</b>").body.decode().count("&lt;b&gt;no&lt;/b&gt;")
    1
    """
    try:
        title = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        title = str(status)
    body = (
        '<!doctype html><html lang="en"><meta charset="utf-8">'
        f"<title>{html.escape(title)} · vigil</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
        '<p><a href="/ui">Back to the console</a></p></html>'
    )
    return Response(body.encode(), status, HTML, list(_PAGE_HEADERS))
