"""API-key roles, ordered: ``read`` < ``predict`` < ``admin``.

A key may do what its role names and everything below it:

* ``read`` lists and describes models (metadata, signatures, readiness, the admin API's
  read-only views);
* ``predict`` also sends predictions. It implies ``read`` because a client that may
  predict needs the signature to build its requests, and a separate read key would only
  be one more secret to hand out;
* ``admin`` also changes the registry (moves and deletes aliases, rolls back) and reads
  the audit trail.

>>> allows("admin", "predict"), allows("predict", "read"), allows("read", "predict")
(True, True, False)
"""

from __future__ import annotations

from typing import Literal

from vigil.errors import InvalidParameterError

Role = Literal["read", "predict", "admin"]
ROLES: tuple[Role, ...] = ("read", "predict", "admin")
"""Every role, weakest first."""

_RANK = {role: rank for rank, role in enumerate(ROLES)}


def allows(held: Role, needed: Role) -> bool:
    """Whether a key holding role ``held`` may call an operation that needs ``needed``."""
    return _RANK[held] >= _RANK[needed]


def check_role(value: object) -> Role:
    """``value`` as a :data:`Role`, or :class:`~vigil.errors.InvalidParameterError`.

    >>> check_role("predict")
    'predict'
    >>> check_role("root")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidParameterError: unknown role 'root'; use one of read, predict, admin
    """
    if value not in _RANK:
        raise InvalidParameterError(
            f"unknown role {str(value)[:40]!r}; use one of {', '.join(ROLES)}",
            detail={"field": "role", "expected": list(ROLES), "got": str(value)[:40]},
        )
    return value
