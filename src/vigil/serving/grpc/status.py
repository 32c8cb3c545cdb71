"""vigil's errors as gRPC status codes: the one place the mapping lives.

Each error keeps its message (the same words a REST client reads) and its code, sent back
in the trailing metadata ``vigil-error-code`` (``validation_error``, ``model_not_found``,
...) for clients that branch on it.

>>> from vigil.errors import PayloadTooLargeError
>>> grpc_code(PayloadTooLargeError("too big").status).name
'RESOURCE_EXHAUSTED'
>>> grpc_code(422).name, grpc_code(404).name, grpc_code(503).name
('INVALID_ARGUMENT', 'NOT_FOUND', 'UNAVAILABLE')
"""

from __future__ import annotations

import grpc

_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_code(status: int) -> grpc.StatusCode:
    """The gRPC status code for an HTTP status: any other 4xx is ``INVALID_ARGUMENT``,
    any other 5xx ``INTERNAL``."""
    code = _CODES.get(status)
    if code is not None:
        return code
    return grpc.StatusCode.INVALID_ARGUMENT if status < 500 else grpc.StatusCode.INTERNAL
