"""The server's logs: plain text or one JSON object a line, and an optional access log.

``vigil serve --log-format json`` hands uvicorn (and so every worker) a logging
configuration (:func:`logging_config`) whose lines are JSON objects with ``time``, ``level``,
``logger`` and ``message``, plus, on access-log lines, ``request_id``, ``method``,
``path``, ``route``, ``model``, ``version``, ``status`` and ``latency_ms`` (and
``trace_id`` when tracing is on, :mod:`vigil.serving.tracing`). ``--log-level``
sets vigil's own loggers (``vigil.*``) and uvicorn's.

The access log (``--access-log``, ``VIGIL_SERVE_ACCESS_LOG``) is one line per request on
the ``vigil.access`` logger, written by the app after the response is sent; when it is
off the request path does no logging work at all (one attribute test).

>>> import logging
>>> record = logging.LogRecord("vigil.access", logging.INFO, "", 0, "%s done", ("GET",), None)
>>> record.status, record.latency_ms = 200, 1.25
>>> line = orjson.loads(JsonFormatter().format(record))
>>> line["level"], line["logger"], line["message"], line["status"], line["latency_ms"]
('INFO', 'vigil.access', 'GET done', 200, 1.25)
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]
ACCESS_LOGGER = "vigil.access"
_LEVELS = ("critical", "error", "warning", "info", "debug")
EXTRA_FIELDS = (
    "request_id",
    "method",
    "path",
    "route",
    "model",
    "version",
    "status",
    "latency_ms",
    "trace_id",
)
"""Fields an access-log record carries besides its message."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, the access
    fields a record has, and the exception's traceback as text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def check_level(level: str) -> str:
    """``level`` in lower case if it is a logging level name, else ``ValueError``."""
    lowered = level.lower()
    if lowered not in _LEVELS:
        raise ValueError(f"log level must be one of {', '.join(_LEVELS)}; got {level[:20]!r}")
    return lowered


def logging_config(log_format: LogFormat = "text", level: str = "warning") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` configuration for a serving process: vigil's
    and uvicorn's loggers at ``level`` on stderr in ``log_format``; the access log at
    INFO whatever ``level`` says (it is turned on on purpose)."""
    upper = check_level(level).upper()
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "vigil",
        "stream": "ext://sys.stderr",
    }
    logger = {"handlers": ["stderr"], "level": upper, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"vigil": formatter},
        "handlers": {"stderr": handler},
        "loggers": {
            "vigil": logger,
            ACCESS_LOGGER: {**logger, "level": "INFO"},
            "uvicorn": logger,
            "uvicorn.error": {"level": upper},
            "uvicorn.access": {**logger, "level": "WARNING"},  # vigil writes its own
        },
    }
