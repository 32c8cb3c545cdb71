"""Rejected predict requests go to the inference log too: :func:`records_failures`.

A protocol's predict handler is marked so that any vigil error it raises (a body that is
not JSON, a value of the wrong type, an unknown model, a model that fails) is logged with
the status the client is answered with, the error code and message, and the raw body kept
as masked, truncated text (with the endpoint and variant when an experiment endpoint
answered); then the error becomes the response as usual (both in the app's error path,
:class:`~vigil.serving.app.ServingApp`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from vigil.errors import MalformedRequestError, ServiceUnavailableError, VigilError
from vigil.serving.executors import INLINE_BODY_BYTES
from vigil.uri import version_number

if TYPE_CHECKING:
    from vigil.serving.dataplane import DataPlane
    from vigil.serving.http import Handler, Request, Style


def wire_status(style: Style, status: int) -> int:
    """The status a client of ``style`` receives (MLflow answers every input problem 400,
    as :func:`~vigil.serving.problems.error_response` does).

    >>> wire_status("mlflow", 422), wire_status("native", 422)
    (400, 422)
    """
    return 400 if style == "mlflow" and status in (400, 422) else status


def _text_part(req: Request) -> bytes:
    """What of a rejected body the log keeps: its JSON part when raw tensor data follows
    (binary tensors are not text), else all of it."""
    if req.inference_header is None:
        return req.body
    try:
        return bytes(req.json_part())
    except MalformedRequestError:  # the header is wrong: the body as it came
        return req.body


_RECORDED: dict[Handler, Style] = {}


def records_failures(style: Style) -> Callable[[Handler], Handler]:
    """Mark a predict handler of protocol ``style`` as one whose failures are captured:
    the app calls :func:`record_rejected` on its error path (no wrapper: a coroutine
    around every request's handler cost each request a frame)."""

    def mark(handler: Handler) -> Handler:
        _RECORDED[handler] = style
        return handler

    return mark


def recorded_style(handler: Handler) -> Style | None:
    """The protocol a handler's failures are captured as (``None``: they are not)."""
    return _RECORDED.get(handler)


async def record_rejected(dp: DataPlane, req: Request, style: Style, exc: VigilError) -> None:
    """Log a request a handler of protocol ``style`` rejected with ``exc``, before the
    error is answered."""
    # Not ready / log unavailable: nothing was judged, and the log may be the very thing
    # that failed.
    if dp.capture is None or isinstance(exc, ServiceUnavailableError):
        return
    failure = functools.partial(
        dp.record_failure,
        request_id=req.request_id,
        status=wire_status(style, exc.status),
        error_code=exc.code,
        message=exc.message,
        body=_text_part(req),
        route=req.route,
        model=req.model,
        version=version_number(req.version),
        key_id=req.key_id,
        # Endpoint routes name the endpoint in the path and tag the error with the variant
        # that rejected it; model routes have neither.
        variant=exc.detail.get("variant"),
        endpoint=req.params.get("endpoint"),
    )
    if len(req.body) <= INLINE_BODY_BYTES:
        failure()
    else:  # masking a large body means parsing it: on a worker thread
        await dp.executors.decoding(failure)
