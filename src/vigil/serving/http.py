"""The few HTTP pieces the serving app needs: a request, a response and a route table.

Deliberately tiny (no framework on the hot path): a request is the ASGI scope's method,
path and the three headers we read, plus the body; a response is a status, bytes and a
content type. Routes are matched on the path with precompiled patterns.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson

from vigil.errors import (
    MalformedRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    VigilError,
)
from vigil.serving.dataplane import request_id_from

if TYPE_CHECKING:
    from vigil.serving.dataplane import DataPlane

Style = Literal["native", "v2", "mlflow", "ops", "page"]
"""Which protocol's error body a route answers with."""

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
HTML = b"text/html; charset=utf-8"


FORM = "application/x-www-form-urlencoded"
_MIMES: dict[str, str] = {}
_MIMES_KEPT = 256


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value, lower case, without parameters
    (remembered: clients send the same few values on every request).

    >>> media_type("Application/JSON; charset=utf-8")
    'application/json'
    """
    mime = _MIMES.get(content_type)
    if mime is None:
        mime = content_type.partition(";")[0].strip().lower()
        if len(content_type) <= 200:
            if len(_MIMES) >= _MIMES_KEPT:
                _MIMES.clear()
            _MIMES[content_type] = mime
    return mime


class Request:
    """One HTTP request as the handlers see it."""

    __slots__ = (
        "_headers",
        "_json",
        "_json_end",
        "_raw_headers",
        "_request_id",
        "body",
        "content_type",
        "inference_header",
        "key_id",
        "key_role",
        "method",
        "model",
        "params",
        "path",
        "query",
        "request_id_header",
        "route",
        "scheme",
        "version",
    )

    def __init__(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        content_type: str | None = None,
        request_id_header: str | None = None,
        body: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
        inference_header: bytes | None = None,
        query: bytes = b"",
        scheme: str = "http",
    ) -> None:
        self.method = method
        self.path = path
        self.params = params
        self.content_type = content_type
        self.request_id_header = request_id_header
        self.body = body
        # The ASGI scope's header list, kept as is: most routes never look beyond the headers
        # the app parses, so the mapping is only built for those that do.
        self._raw_headers = headers or []
        self._headers: dict[bytes, bytes] | None = None
        self.route = ""
        """Name of the matched route (metric label, capture record)."""
        self.key_id: str | None = None
        """Id of the API key that authenticated the request, when authentication is on."""
        self.key_role: str | None = None
        """That key's role (``read``, ``predict`` or ``admin``)."""
        # Filled by handlers once a model is resolved, for metric labels.
        self.model = ""
        self.version = ""
        self._request_id: str | None = None
        self._json: Any = _UNREAD
        self.inference_header = inference_header
        """The ``Inference-Header-Content-Length`` header (Open Inference Protocol's binary
        tensor extension): the body is that many bytes of JSON, then raw tensor data."""
        self._json_end: int | None = None
        self.query = query
        """The raw query string (only the web console's pages read one)."""
        self.scheme = scheme
        """``https`` when the request came over TLS (the console's cookies are then
        ``Secure``)."""

    @property
    def headers(self) -> dict[bytes, bytes]:
        """Every header by lower-case name (built on first use)."""
        if self._headers is None:
            self._headers = dict(self._raw_headers)
        return self._headers

    @property
    def request_id(self) -> str:
        if self._request_id is None:
            self._request_id = request_id_from(self.request_id_header)
        return self._request_id

    def json(self) -> Any:
        """The body's JSON decoded, or :class:`MalformedRequestError` (400); decoded once
        (:meth:`read_json` may have done it, on another thread). With an
        ``Inference-Header-Content-Length`` header, only the JSON part is decoded."""
        parsed = self._json
        if parsed is _UNREAD:
            try:
                body = self.body if self.inference_header is None else self.json_part()
                parsed = _parse(body)
            except MalformedRequestError as exc:
                parsed = exc
            self._json = parsed
        if isinstance(parsed, VigilError):
            raise parsed
        return parsed

    def json_part(self) -> bytes | memoryview:
        """The JSON part of the body: all of it, or its first
        ``Inference-Header-Content-Length`` bytes (no copy); a
        :class:`MalformedRequestError` when that header is not a length within the body."""
        if self.inference_header is None:
            return self.body
        return memoryview(self.body)[: self._header_end()]

    def binary_part(self) -> memoryview | None:
        """The raw tensor data after the JSON part (no copy), ``None`` without an
        ``Inference-Header-Content-Length`` header."""
        if self.inference_header is None:
            return None
        return memoryview(self.body)[self._header_end() :]

    def _header_end(self) -> int:
        end = self._json_end
        if end is None:
            raw = self.inference_header or b""
            size = len(self.body)
            # 19 digits or more is past any body (and int() of thousands of digits raises).
            end = int(raw) if raw.isdigit() and len(raw) < 19 else -1
            if not 0 < end <= size:
                shown = raw[:40].decode("latin-1")
                raise MalformedRequestError(
                    f"Inference-Header-Content-Length is {shown!r} but the body holds {size} "
                    "bytes; send the length in bytes of the JSON part of the body (more than "
                    "0, at most the body's length), or leave the header out for a JSON body",
                    detail={
                        "field": "Inference-Header-Content-Length",
                        "row": None,
                        "expected": f"an integer in [1, {size}]",
                        "got": shown,
                    },
                )
            self._json_end = end
        return end

    def detach(self) -> list[Any]:
        """The body and what was decoded of it, taken out of the request: the caller frees
        them where it likes (megabytes of decoded JSON take a while to free)."""
        held = [self.body, self._json]
        self.body, self._json = b"", _UNREAD
        return held

    def read_json(self, max_values: int) -> None:
        """Decode the body now (the app calls it on a worker thread for a large body),
        unless it holds more than about ``max_values`` values (see :func:`check_values`);
        :meth:`json` then answers from what was decoded, or raises the error."""
        if self._json is _UNREAD:
            try:
                part = self.json_part()
                check_values(part, max_values)
            except (PayloadTooLargeError, MalformedRequestError) as exc:
                self._json = exc
            else:
                self._json = _parse(part)


_UNREAD = object()


def check_values(body: bytes | memoryview, max_values: int) -> None:
    """Refuse (413) a JSON body that would hold more than about ``max_values`` values,
    before it is parsed: every value after the first follows a ``,`` or opens an array or
    object, so counting those bytes (at memory speed) bounds what parsing would build.

    >>> check_values(b"[1,2,3]", 4)
    >>> check_values(b"[[],[],[],[]]", 4)
    Traceback (most recent call last):
    ...
    vigil.errors.PayloadTooLargeError: the body holds more than 4 JSON values (arrays, objects and the values in them); send fewer rows per request (or raise VIGIL_SERVE_MAX_CELLS)
    """
    if isinstance(body, memoryview):
        body = body.tobytes()  # bytes.count: a memoryview has none (a copy at memory speed)
    count = body.count(b",")
    if count <= max_values:
        count += body.count(b"[") + body.count(b"{")
    if count > max_values:
        raise PayloadTooLargeError(
            f"the body holds more than {max_values} JSON values (arrays, objects and the "
            "values in them); send fewer rows per request (or raise VIGIL_SERVE_MAX_CELLS)",
            detail={"limit": max_values},
        )


def _parse(body: bytes | memoryview) -> Any:
    """The JSON value of ``body``, or the :class:`MalformedRequestError` to raise for it."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return MalformedRequestError(
            f"the request body is not valid JSON ({exc}); send a JSON document",
            detail={"field": None, "row": None, "expected": "JSON", "got": "invalid JSON"},
        )


class Response:
    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        body: bytes,
        status: int = 200,
        content_type: bytes = JSON,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.body = body
        self.status = status
        self.content_type = content_type
        self.headers = headers


def _default(obj: Any) -> Any:
    import numpy as np  # what orjson cannot encode: rare, and this module stays NumPy-free

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def dumps(obj: Any) -> bytes:
    """JSON bytes; NumPy arrays are encoded natively by orjson (no ``tolist`` copy)."""
    return orjson.dumps(obj, default=_default, option=_OPTIONS)


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(dumps(obj), status)


Handler = Callable[["DataPlane", Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """One operation: method, path template, handler and its documentation.

    A route is compared and hashed by identity (its documentation holds dicts), so a
    server's tuple of routes can key the cache of the documents built from it."""

    method: str
    template: str
    handler: Handler
    name: str
    """Stable operation name (metric label, OpenAPI operationId)."""
    style: Style
    summary: str
    body: Literal["none", "json", "json_or_csv", "json_or_tensors", "form"] = "none"
    """What the body holds: nothing, JSON, JSON or CSV (MLflow), JSON possibly followed
    by raw tensor data (Open Inference Protocol v2's binary tensor extension), or an HTML
    form's fields (``application/x-www-form-urlencoded``): only the web console's routes,
    which guard themselves with a session cookie and a CSRF token (:mod:`vigil.ui`)."""
    request_schema: dict[str, Any] | None = None
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    role: Literal["predict", "read", "admin"] | None = None
    """Least API-key role the route needs when authentication is on; None: always open."""
    prediction: bool = False
    """The operation answers from a model and changes nothing but the inference log, so the
    guards of state-changing operations below do not apply to it."""
    needs_json: bool = field(init=False)
    """A state-changing operation (any method but GET and HEAD that is not a prediction)
    other than a form's: it needs ``Content-Type: application/json`` even without a body,
    which no HTML form and no cross-site request without a CORS preflight can send."""
    same_origin: bool = field(init=False)
    """State-changing or admin: a request with a foreign ``Origin`` header is refused."""

    def __post_init__(self) -> None:
        changes = self.method not in ("GET", "HEAD") and not self.prediction
        # A form route takes a form and nothing else (the app checks its content type); its
        # handler checks the session and the CSRF token the content type cannot stand for.
        object.__setattr__(self, "needs_json", changes and self.body != "form")
        object.__setattr__(self, "same_origin", changes or self.role == "admin")

    max_body_bytes: int | None = None
    """Largest body this route reads, when smaller than the server's limit: a route whose
    bodies are a few fields long refuses megabytes (413) before reading them."""
    in_api: bool = True
    """Part of the HTTP API, described by ``/openapi.json`` and ``/docs``; ``False`` for
    the web console's pages and forms (:mod:`vigil.ui`), which a browser uses, not a
    client program."""


def takes_media(route: Route, mime: str | None) -> bool:
    """Whether a route takes a body of media type ``mime`` (see :func:`media_type`)."""
    if route.body == "json_or_csv":
        return True  # the MLflow codec answers 415 in MLflow's own words
    if route.body == "form":
        return mime == FORM  # a console form (session + CSRF token), never anything else
    if mime is None:
        # A prediction may omit it (the body must still be JSON); a state change may not:
        # a cross-site script can send a body without a content type, no preflight asked.
        return not route.needs_json
    if mime == FORM:
        # `curl -d '{...}'` on a prediction: taken when the body is JSON (checked once it
        # is read, see _form_body_ok). No HTML form can send a JSON body this way (it
        # percent-encodes braces and quotes), and a state change never takes it.
        return route.prediction
    if mime == "application/json" or mime.endswith("+json"):
        return True
    # JSON then raw tensors (Open Inference Protocol's binary tensor extension).
    return route.body == "json_or_tensors" and mime == "application/octet-stream"


_PARAM = re.compile(r"\{(\w+)\}")
_PATHS_KEPT = 4096
_PATH_KEPT_CHARS = 256  # the memory the remembered paths take stays bounded (about 1 MB)
# A path segment: the model-name and version rules are checked later with clear messages.
_SEGMENT = r"[^/@]+"


def _prefix(template: str) -> tuple[str, ...]:
    """The literal leading segments of a template, at most two.

    >>> _prefix("/v1/models/{name}/predict"), _prefix("/v2/{x}"), _prefix("/{a}/b")
    (('v1', 'models'), ('v2',), ())
    """
    literal: list[str] = []
    for segment in template.split("/")[1:3]:
        if "{" in segment:
            break
        literal.append(segment)
    return tuple(literal)


class Router:
    """Exact paths through one dict lookup, templated paths through precompiled patterns."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self._static: dict[str, dict[str, Route]] = {}
        # Templated routes are bucketed by their first two literal path segments, so a
        # request is matched against the few patterns that can fit, not every one.
        self._patterns: dict[tuple[str, ...], list[tuple[re.Pattern[str], dict[str, Route]]]] = {}
        self._seen: dict[str, tuple[dict[str, Route], dict[str, str]]] = {}
        """Templated paths matched so far (clients send the same few again and again), at
        most :data:`_PATHS_KEPT` of them: such a path's match costs one lookup after the
        first."""
        by_template: dict[str, dict[str, Route]] = {}
        for route in routes:
            by_template.setdefault(route.template, {})[route.method] = route
        for template, methods in by_template.items():
            if "{" not in template:
                self._static[template] = methods
            else:
                pattern = _PARAM.sub(lambda m: f"(?P<{m.group(1)}>{_SEGMENT})", template)
                bucket = self._patterns.setdefault(_prefix(template), [])
                bucket.append((re.compile(pattern), methods))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        methods = self._static.get(path)
        params: dict[str, str] = {}
        if methods is None:
            found = self._seen.get(path)
            if found is not None:  # a templated path matched before: no pattern to try
                methods, params = found[0], dict(found[1])
        if methods is None:
            segments = path.split("/", 3)[1:3]
            keys = (tuple(segments), tuple(segments[:1]), ())
            for pattern, candidates in (c for k in keys for c in self._patterns.get(k, ())):
                match = pattern.fullmatch(path)
                if match is not None:
                    methods, params = candidates, match.groupdict()
                    if len(path) <= _PATH_KEPT_CHARS:
                        if len(self._seen) >= _PATHS_KEPT:
                            self._seen.clear()
                        self._seen[path] = (methods, dict(params))
                    break
            else:
                raise NotFoundError(
                    f"no such endpoint: {path[:100]}; GET /docs lists the endpoints",
                    detail={"path": path[:100]},
                )
        route = methods.get(method) or (methods.get("GET") if method == "HEAD" else None)
        if route is None:
            raise MethodNotAllowedError(
                f"{method} is not allowed on {path[:100]}; use {', '.join(sorted(methods))}",
                detail={"allowed": sorted(methods)},
            )
        return route, params
