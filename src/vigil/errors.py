"""Every error vigil raises on purpose, in one place.

Each class carries the HTTP status it maps to, so the HTTP layer turns any of them into
a JSON problem body in one place, and the CLI into a one-line message. Messages say what
went wrong *and what to do next*. Classes inherit a builtin base where that helps callers
(``except ValueError`` keeps working for code that does not know vigil).

Nothing here imports a web framework: the core raises these, the adapters translate them.
"""

from __future__ import annotations

import importlib
from typing import Any


class VigilError(Exception):
    """Base of every vigil error.

    ``status`` is the HTTP status the error maps to; ``code`` a stable machine-readable
    slug; ``detail`` optional structured facts (the field, the expected type, ...).
    """

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}

    def to_problem(self) -> dict[str, Any]:
        """A JSON-serialisable problem body (in the spirit of RFC 9457)."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return body


class ConfigurationError(VigilError, ValueError):
    """A setting is missing or invalid; the message names the setting."""

    status = 500
    code = "configuration_error"


class SchemaNotAtHeadError(ConfigurationError):
    """The database schema is not at the newest migration of this vigil, and this process
    was told not to migrate it (``VIGIL_DATABASE_MIGRATE=refuse``): run ``vigil db
    upgrade``."""

    code = "schema_not_at_head"


class InvalidNameError(VigilError, ValueError):
    """A model name, alias, tag key or path fails the naming rules."""

    status = 422
    code = "invalid_name"


class InvalidURIError(VigilError, ValueError):
    """A ``models:/`` URI cannot be parsed."""

    status = 422
    code = "invalid_uri"


class NotFoundError(VigilError, LookupError):
    """Something that was asked for does not exist."""

    status = 404
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class VersionNotFoundError(NotFoundError):
    code = "version_not_found"


class AliasNotFoundError(NotFoundError):
    code = "alias_not_found"


class ApiKeyNotFoundError(NotFoundError):
    code = "api_key_not_found"


class EndpointNotFoundError(NotFoundError):
    code = "endpoint_not_found"


class ConflictError(VigilError):
    """The request conflicts with the current state (e.g. nothing to roll back to)."""

    status = 409
    code = "conflict"


class ImmutableVersionError(ConflictError):
    code = "immutable_version"


class UntrustedModelError(VigilError, PermissionError):
    """A model file would run arbitrary code (pickle) or holds types nobody trusted."""

    status = 403
    code = "untrusted_model"


class UnknownFlavorError(VigilError, ValueError):
    """The model's flavor cannot be detected, or is not one vigil supports."""

    status = 422
    code = "unknown_flavor"


class BundleError(VigilError, ValueError):
    """A model bundle or model file is malformed, unreadable or inconsistent."""

    status = 422
    code = "invalid_bundle"


class ModelTooLargeError(BundleError):
    """A model file would unpack to more than the limit (a zip or YAML bomb, or simply a
    model larger than ``VIGIL_MAX_UNPACKED_MODEL_BYTES`` allows)."""

    code = "model_too_large"


class MissingDependencyError(VigilError, ImportError):
    """An optional dependency is not installed; the message gives the pip line."""

    status = 500
    code = "missing_dependency"


class ReferenceDataError(VigilError, ValueError):
    """Reference data does not match the model's signature or cannot be read."""

    status = 422
    code = "invalid_reference"


class DataFileError(VigilError, ValueError):
    """A data file (batch-scoring input or output, feedback, reference or drift data)
    cannot be read or written as asked: unknown format, unparseable text, column types that
    change part-way through."""

    status = 422
    code = "invalid_data_file"


class LogIntegrityError(VigilError, ValueError):
    """A file of the encrypted inference log cannot be read: it fails authentication
    (altered, moved, truncated) or its key is not configured. The message names the file,
    the place and the key id, never key material."""

    status = 500
    code = "log_integrity"


class PathOutsideStoreError(VigilError, PermissionError):
    """A path resolved outside the artifact store root (traversal attempt)."""

    status = 400
    code = "path_outside_store"


class ValidationError(VigilError, ValueError):
    """A request's payload does not match the model's signature (HTTP 422)."""

    status = 422
    code = "validation_error"


class MalformedRequestError(VigilError, ValueError):
    """The request body cannot be parsed at all (HTTP 400)."""

    status = 400
    code = "malformed_request"


class PayloadTooLargeError(VigilError, ValueError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(VigilError, ValueError):
    status = 415
    code = "unsupported_media_type"


class AuthenticationError(VigilError, PermissionError):
    """No API key, or one that is malformed, unknown or revoked (HTTP 401)."""

    status = 401
    code = "unauthenticated"


class PermissionDeniedError(VigilError, PermissionError):
    """The API key is valid but its role is too low for the operation (HTTP 403)."""

    status = 403
    code = "forbidden"


class HostNotAllowedError(VigilError, PermissionError):
    """The request names a ``Host`` this server does not answer for (HTTP 421): a web page
    reaching a loopback server through DNS rebinding looks exactly like this."""

    status = 421
    code = "host_not_allowed"


class UnsafeWebhookError(VigilError, ValueError):
    """A webhook URL vigil must not call: not http(s), or pointing at a loopback, link-local,
    private or otherwise non-public address (server-side request forgery)."""

    status = 422
    code = "unsafe_webhook"


class CrossOriginRequestError(VigilError, PermissionError):
    """A page of another origin asked for an admin or state-changing operation (HTTP 403)."""

    status = 403
    code = "cross_origin_request"


def require(module: str, extra: str) -> Any:
    """Import an optional dependency or fail with the exact ``pip install`` line.

    >>> require("json", "core").dumps([1])
    '[1]'
    >>> require("no_such_module_xyz", "onnx")
    Traceback (most recent call last):
    ...
    vigil.errors.MissingDependencyError: no_such_module_xyz is not installed; run: pip install 'vigil[onnx]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed; run: pip install 'vigil[{extra}]'",
            detail={"module": module, "extra": extra},
        ) from exc


class InvalidParameterError(VigilError, ValueError):
    """A statistics or bandit parameter is out of range (e.g. epsilon outside [0, 1])."""

    status = 422
    code = "invalid_parameter"


def invalid_configuration(exc: Any, what: str) -> InvalidParameterError:
    """The 422 for pydantic's ``ValidationError`` ``exc``, raised validating ``what`` (an
    endpoint configuration, an update policy): ``invalid <what>: <field>: <reason>``, for
    the first error, with the field and the number of errors in its detail."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    cause = first.get("ctx", {}).get("error")
    reason = str(cause) if isinstance(cause, VigilError | ValueError) else first["msg"]
    reason = reason.removeprefix("Value error, ")
    prefix = f"{where}: " if where else ""
    return InvalidParameterError(
        f"invalid {what}: {prefix}{reason}",
        detail={"field": where or None, "errors": exc.error_count()},
    )


class PredictionError(VigilError, RuntimeError):
    """The model failed on input that passed validation and fails on a known-good input
    too (HTTP 500): the model or the server is broken, not the request. The message names
    the model version so the failure can be reproduced offline."""

    status = 500
    code = "prediction_failed"


class ModelInputError(VigilError, ValueError):
    """The model raised on input that passed validation, while it still answers a
    known-good input (HTTP 422): this input is one the model cannot take (a missing value
    it has no way to handle, a value out of its range...). The message carries the model's
    own. An experiment endpoint counts it against the variant that raised it."""

    status = 422
    code = "model_rejected_input"


class ServiceUnavailableError(VigilError, RuntimeError):
    """The server or model is not ready yet (still loading, warming or draining) (HTTP 503)."""

    status = 503
    code = "not_ready"


class ShuttingDownError(ServiceUnavailableError):
    """The server was stopping and its drain timeout ran out before this request was
    answered (HTTP 503); another replica, or this one restarted, answers a retry."""

    code = "shutting_down"


class DatabaseUnavailableError(ServiceUnavailableError):
    """The metadata database cannot be reached, or stayed locked past the wait (HTTP 503);
    retrying once it is back succeeds."""

    code = "database_unavailable"


class MonitorCycleError(VigilError, RuntimeError):
    """A scheduled monitoring cycle's child process failed, died (an exception, the
    kernel's out-of-memory killer) or ran past its timeout (``VIGIL_MONITOR_CYCLE_TIMEOUT_S``);
    the server keeps serving and the next interval runs the cycle again, which finishes the
    windows this one left."""

    code = "monitor_cycle_failed"


class ArtifactCorruptError(VigilError):
    """A stored artifact no longer matches its digest (tampered with or damaged)."""

    status = 500
    code = "artifact_corrupt"


class MetricsUnreadableError(VigilError, RuntimeError):
    """A worker's metric file (several workers share their metrics through files in
    ``PROMETHEUS_MULTIPROC_DIR``) cannot be read (HTTP 500): ``/metrics`` answers this
    rather than totals with that worker's values left out. The message names the file."""

    status = 500
    code = "metrics_unreadable"


class MethodNotAllowedError(VigilError, ValueError):
    """The path exists but not for this HTTP method (HTTP 405)."""

    status = 405
    code = "method_not_allowed"


class NotExplainableError(VigilError, ValueError):
    """The model cannot be explained the way the request asks (HTTP 422): it has no
    explainer (a classifier without probabilities or margins, no reference sample for the
    model-agnostic estimator), or the class asked for is not one of its classes."""

    status = 422
    code = "not_explainable"
