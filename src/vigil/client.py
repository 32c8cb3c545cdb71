"""A small Python client for a vigil server: predictions, feedback and the admin API.

It speaks the native JSON routes over HTTP (httpx) and needs nothing of vigil's server side:
no pandas, no database, no model libraries. Every problem body the server answers becomes
the matching :mod:`vigil.errors` class, so ``except ModelNotFoundError`` (or the broader
``NotFoundError``, ``LookupError``) works as it does in-process; the exception keeps the
HTTP ``status`` and the server's ``request_id``. A server that cannot be reached raises
:class:`ServerUnreachableError` (a :class:`~vigil.errors.ServiceUnavailableError`).

>>> from vigil.errors import ModelNotFoundError
>>> exc = problem_error(404, {"error": "model_not_found", "message": "no model named 'x'"})
>>> isinstance(exc, ModelNotFoundError), exc.status, exc.message
(True, 404, "no model named 'x'")
>>> type(problem_error(409, {"error": "some_new_code", "message": "taken"})).__name__
'ConflictError'

Example (against a running ``vigil serve``)::

    from vigil.client import Client

    with Client("http://localhost:8000", token=None) as vc:
        answer = vc.predict("churn", [{"tenure": 3, "plan": "basic"}], proba=True)
        vc.feedback(answer.request_id, label=1)
        vc.set_alias("churn", "production", 3, reason="better AUC")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from vigil import errors
from vigil.errors import ServiceUnavailableError, VigilError

__all__ = [
    "Client",
    "FeedbackResult",
    "Prediction",
    "ServerError",
    "ServerUnreachableError",
    "problem_error",
]


class ServerError(VigilError):
    """The server answered an error vigil's client has no class for (a code from a newer
    server, or a proxy's HTML error page); ``status`` is the HTTP status."""

    code = "server_error"


class ServerUnreachableError(ServiceUnavailableError):
    """The server did not answer: nothing listens at the URL, the connection broke, or it
    timed out."""

    code = "server_unreachable"


def _classes() -> dict[str, type[VigilError]]:
    found: dict[str, type[VigilError]] = {}
    pending: list[type[VigilError]] = [VigilError]
    while pending:
        cls = pending.pop()
        if cls.__module__ == errors.__name__:
            found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


_BY_CODE = _classes()
# An unknown code still maps onto the class of its status, so broad excepts keep working.
_BY_STATUS: dict[int, type[VigilError]] = {
    400: errors.MalformedRequestError,
    401: errors.AuthenticationError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    405: errors.MethodNotAllowedError,
    409: errors.ConflictError,
    413: errors.PayloadTooLargeError,
    415: errors.UnsupportedMediaTypeError,
    421: errors.HostNotAllowedError,
    422: errors.ValidationError,
    503: errors.ServiceUnavailableError,
}


def problem_error(status: int, body: Any, request_id: str | None = None) -> VigilError:
    """The :mod:`vigil.errors` exception for a problem body the server answered with
    ``status``: the class named by its ``error`` code, else the class of the status."""
    if not isinstance(body, dict):
        body = {}
    code = body.get("error")
    message = body.get("message")
    if not isinstance(message, str):
        message = f"the server answered HTTP {status} without a vigil problem body"
    detail = body.get("detail") if isinstance(body.get("detail"), dict) else None
    cls = _BY_CODE.get(code) if isinstance(code, str) else None
    if cls is None or cls.status != status:
        cls = _BY_STATUS.get(status, ServerError)
    exc = cls(message, detail=detail)
    exc.status = status
    exc.request_id = body.get("request_id") or request_id  # type: ignore[attr-defined]
    return exc


@dataclass(frozen=True)
class Prediction:
    """One answer of a predict call: ``predictions`` has one item per row sent."""

    request_id: str
    model: str
    version: int
    predictions: list[Any]
    classes: list[Any] | None = None
    probabilities: list[list[float]] | None = None
    endpoint: str | None = None
    """Set for an endpoint's answer, with the ``variant`` that answered."""
    variant: str | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Prediction:
        return cls(
            request_id=body["request_id"],
            model=body["model"],
            version=body["version"],
            predictions=body["predictions"],
            classes=body.get("classes"),
            probabilities=body.get("probabilities"),
            endpoint=body.get("endpoint"),
            variant=body.get("variant"),
        )


@dataclass(frozen=True)
class FeedbackResult:
    """What the server did with the labels and rewards it was sent."""

    accepted: int
    duplicates: int
    unknown: int
    late: int
    unknown_request_ids: list[str] = field(default_factory=list)


def _rows(rows: Any) -> dict[str, Any]:
    """The native request body for ``rows``: one mapping, a list of mappings or of lists,
    or a data frame (sent as columns and data; missing values as null)."""
    if isinstance(rows, Mapping):
        return {"instances": [dict(rows)]}
    columns = getattr(rows, "columns", None)
    if columns is not None and hasattr(rows, "itertuples"):
        data = [
            [None if v != v else v for v in row]  # NaN (the only value unequal to itself)
            for row in rows.itertuples(index=False, name=None)
        ]
        return {"columns": [str(c) for c in columns], "data": data}
    if isinstance(rows, Iterable) and not isinstance(rows, str | bytes):
        return {"instances": list(rows)}
    raise TypeError(
        f"rows must be a mapping, a list of rows or a data frame, not {type(rows).__name__}"
    )


def _segment(value: str | int) -> str:
    return quote(str(value), safe="")


class Client:
    """A vigil server at ``url``, called with API key ``token`` (``None``: no key, as a
    loopback server with authentication off accepts).

    Parameters
    ----------
    url:
        The server's base URL, e.g. ``http://localhost:8000``.
    token:
        An API key (``vk_<id>_<secret>``, from ``vigil key create``), sent as a bearer token.
    timeout:
        Seconds to wait for each call.
    transport:
        An httpx transport (tests pass ``httpx.ASGITransport`` or a mock).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"accept": "application/json", "user-agent": "vigil-client"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def __repr__(self) -> str:
        return f"Client({self.url!r})"  # never the token

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        sent = dict(headers or {})
        content = None
        if body is not None or method in ("POST", "PUT", "DELETE", "PATCH"):
            # State-changing operations need the JSON content type even without a body.
            sent["content-type"] = "application/json"
            if body is not None:
                content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        try:
            response = self._http.request(
                method, path, content=content, headers=sent, params=params
            )
        except httpx.TransportError as exc:
            raise ServerUnreachableError(
                f"cannot reach the vigil server at {self.url} ({type(exc).__name__}: {exc}); "
                "check the URL and that `vigil serve` is running",
                detail={"url": self.url},
            ) from exc
        try:
            answer = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            answer = None
        if response.is_success:
            return answer
        raise problem_error(response.status_code, answer, response.headers.get("x-request-id"))

    # -- predictions and feedback -----------------------------------------------------

    def predict(
        self,
        model: str,
        rows: Any,
        *,
        version: int | None = None,
        alias: str | None = None,
        proba: bool = False,
    ) -> Prediction:
        """Predict ``rows`` (a mapping, a list of rows, or a data frame) with ``model``'s
        default version, a numbered ``version`` or an ``alias``."""
        if version is not None and alias is not None:
            raise ValueError("give version or alias, not both")
        path = f"/v1/models/{_segment(model)}"
        if alias is not None:
            path += f"@{_segment(alias)}"
        elif version is not None:
            path += f"/versions/{_segment(version)}"
        body = _rows(rows)
        if proba:
            body["return_proba"] = True
        return Prediction.from_json(self._call("POST", path + "/predict", body))

    def predict_endpoint(
        self, endpoint: str, rows: Any, *, unit_id: str | None = None, proba: bool = False
    ) -> Prediction:
        """Predict through an experiment endpoint; ``unit_id`` keeps a user on one variant."""
        body = _rows(rows)
        if proba:
            body["return_proba"] = True
        headers = {"x-unit-id": unit_id} if unit_id is not None else None
        answer = self._call(
            "POST", f"/v1/endpoints/{_segment(endpoint)}/predict", body, headers=headers
        )
        return Prediction.from_json(answer)

    def feedback(
        self,
        request_id: str,
        *,
        label: Any = None,
        reward: float | bool | None = None,
        row: int = 0,
    ) -> FeedbackResult:
        """Send the label and/or reward of one predicted row (by its request id)."""
        item: dict[str, Any] = {"request_id": request_id}
        if row:
            item["row"] = row
        if label is not None:
            item["label"] = label
        if reward is not None:
            item["reward"] = reward
        return self.feedback_many([item])

    def feedback_many(self, items: Iterable[Mapping[str, Any]]) -> FeedbackResult:
        """Send many feedback items (``{"request_id", "row"?, "label"?, "reward"?}``)."""
        answer = self._call("POST", "/v1/feedback", {"feedback": [dict(i) for i in items]})
        return FeedbackResult(**answer)

    # -- reading the server -----------------------------------------------------------

    def ready(self) -> bool:
        """Whether every model is loaded and warmed (``/readyz``)."""
        try:
            self._call("GET", "/readyz")
        except ServiceUnavailableError:
            return False
        return True

    def served_models(self) -> list[dict[str, Any]]:
        """The models this server serves, with their signatures."""
        models: list[dict[str, Any]] = self._call("GET", "/v1/models")["models"]
        return models

    # -- the admin API ----------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        """Registered models with their newest version and aliases (role ``read``)."""
        models: list[dict[str, Any]] = self._call("GET", "/v1/admin/models")["models"]
        return models

    def model(self, name: str) -> dict[str, Any]:
        """One registered model: ``{"model": {...}, "versions": [...]}`` (role ``read``)."""
        answer: dict[str, Any] = self._call("GET", f"/v1/admin/models/{_segment(name)}")
        return answer

    def _alias_path(self, name: str, alias: str) -> str:
        return f"/v1/admin/models/{_segment(name)}/aliases/{_segment(alias)}"

    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Point ``alias`` at ``version`` (role ``admin``; audited, served workers follow)."""
        body: dict[str, Any] = {"version": version}
        if reason is not None:
            body["reason"] = reason
        answer: dict[str, Any] = self._call("PUT", self._alias_path(name, alias), body)
        return answer

    def delete_alias(self, name: str, alias: str) -> dict[str, Any]:
        """Remove an alias (role ``admin``; audited)."""
        answer: dict[str, Any] = self._call("DELETE", self._alias_path(name, alias))
        return answer

    def rollback(self, name: str, alias: str = "production") -> dict[str, Any]:
        """Move ``alias`` back to where it pointed before its last move (role ``admin``)."""
        answer: dict[str, Any] = self._call("POST", self._alias_path(name, alias) + "/rollback")
        return answer

    def aliases(self, model: str | None = None) -> list[dict[str, Any]]:
        """Every alias (of ``model`` only, when given) and its version (role ``read``)."""
        path = (
            "/v1/admin/aliases" if model is None else f"/v1/admin/models/{_segment(model)}/aliases"
        )
        aliases: list[dict[str, Any]] = self._call("GET", path)["aliases"]
        return aliases

    def _version_path(self, name: str, version: int) -> str:
        return f"/v1/admin/models/{_segment(name)}/versions/{_segment(version)}"

    def archive_version(
        self, name: str, version: int, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Archive a version (role ``admin``): refused with
        :class:`~vigil.errors.ConflictError` while an alias or endpoint points at it."""
        body = {"reason": reason} if reason is not None else None
        answer: dict[str, Any] = self._call(
            "POST", self._version_path(name, version) + "/archive", body
        )
        return answer

    def unarchive_version(
        self, name: str, version: int, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Put an archived version back in service (role ``admin``)."""
        body = {"reason": reason} if reason is not None else None
        answer: dict[str, Any] = self._call(
            "POST", self._version_path(name, version) + "/unarchive", body
        )
        return answer

    def delete_version(
        self, name: str, version: int, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Delete a version (role ``admin``): refused while an alias or endpoint points at
        it; its artifact is reclaimed unless another version shares it."""
        body = {"reason": reason} if reason is not None else None
        answer: dict[str, Any] = self._call("DELETE", self._version_path(name, version), body)
        return answer

    def delete_model(
        self, name: str, *, force: bool = False, reason: str | None = None
    ) -> dict[str, Any]:
        """Delete a model and every version (role ``admin``). Refused while aliases point at
        it unless ``force`` (they are deleted with it, each audited), and while an endpoint
        names it, whatever ``force`` says."""
        body: dict[str, Any] = {"force": force}
        if reason is not None:
            body["reason"] = reason
        answer: dict[str, Any] = self._call("DELETE", f"/v1/admin/models/{_segment(name)}", body)
        return answer

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts firing now, with ``silenced_until`` and who acknowledged them (``read``)."""
        alerts: list[dict[str, Any]] = self._call("GET", "/v1/admin/alerts")["alerts"]
        return alerts

    def ack(self, alert_id: int, *, comment: str | None = None) -> dict[str, Any]:
        """Acknowledge a firing alert by its id (role ``admin``)."""
        body = {"comment": comment} if comment is not None else None
        answer: dict[str, Any] = self._call(
            "POST", f"/v1/admin/alerts/{_segment(alert_id)}/ack", body
        )
        return answer

    def silence(
        self, matchers: Mapping[str, str], duration: str | float, *, comment: str | None = None
    ) -> dict[str, Any]:
        """Keep alerts whose labels hold every ``matchers`` value (``alertname``,
        ``severity``, ``model``, ``version``, ``route``, ``feature``) from the webhooks for
        ``duration`` (``"2h"`` or seconds; role ``admin``)."""
        body: dict[str, Any] = {"matchers": dict(matchers), "duration": duration}
        if comment is not None:
            body["comment"] = comment
        answer: dict[str, Any] = self._call("POST", "/v1/admin/silences", body)
        return answer

    def silences(self) -> list[dict[str, Any]]:
        """The active silences (role ``read``)."""
        silences: list[dict[str, Any]] = self._call("GET", "/v1/admin/silences")["silences"]
        return silences

    def unsilence(self, silence_id: int) -> dict[str, Any]:
        """End a silence now (role ``admin``)."""
        answer: dict[str, Any] = self._call("DELETE", f"/v1/admin/silences/{_segment(silence_id)}")
        return answer

    def audit(self, model: str | None = None) -> list[dict[str, Any]]:
        """The audit trail, newest first (role ``admin``)."""
        path = "/v1/admin/audit" if model is None else f"/v1/admin/models/{_segment(model)}/audit"
        events: list[dict[str, Any]] = self._call("GET", path)["events"]
        return events

    def endpoints(self) -> list[dict[str, Any]]:
        """The experiment endpoints and their variants (role ``read``)."""
        endpoints: list[dict[str, Any]] = self._call("GET", "/v1/admin/endpoints")["endpoints"]
        return endpoints

    def endpoint(self, name: str) -> dict[str, Any]:
        """One endpoint's configuration (role ``read``)."""
        answer: dict[str, Any] = self._call("GET", f"/v1/admin/endpoints/{_segment(name)}")
        return answer

    def put_endpoint(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace an endpoint: ``{"variants": [...], "policy": {...}}`` as in
        ``vigil endpoint create -f FILE`` (role ``admin``; audited)."""
        answer: dict[str, Any] = self._call(
            "PUT", f"/v1/admin/endpoints/{_segment(name)}", dict(config)
        )
        return answer

    def delete_endpoint(self, name: str) -> dict[str, Any]:
        """Remove an endpoint (role ``admin``; audited)."""
        answer: dict[str, Any] = self._call("DELETE", f"/v1/admin/endpoints/{_segment(name)}")
        return answer

    def experiment(self, endpoint: str) -> dict[str, Any]:
        """An endpoint's experiment status: shares, lift, p-values (role ``read``)."""
        answer: dict[str, Any] = self._call(
            "GET", f"/v1/admin/endpoints/{_segment(endpoint)}/experiment"
        )
        return answer
