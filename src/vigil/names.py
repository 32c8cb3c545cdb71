"""Naming rules for models, aliases and tag keys, checked in one place.

Names end up in URLs, file paths, SQL and Prometheus labels, so they are deliberately
narrow: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit, at
most 128 characters. That rules out ``/``, ``\\``, ``..`` and control characters.
"""

from __future__ import annotations

import re

from vigil.errors import InvalidNameError

NAME_LENGTH = 128
"""The longest name (model, alias, endpoint, variant, rule, key); database columns use it."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RESERVED_ALIASES = frozenset({"latest"})
_VERSION_LIKE = re.compile(r"^[vV]?\d+$")


def check_name(kind: str, value: object) -> str:
    """``value`` if it is a valid name of ``kind`` (its message names the kind)."""
    if not isinstance(value, str):
        raise InvalidNameError(f"{kind} must be a string, got {type(value).__name__}")
    if not _NAME.fullmatch(value) or ".." in value:
        shown = value.encode("unicode_escape").decode("ascii")[:80]
        raise InvalidNameError(
            f"invalid {kind} {shown!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '/', '\\\\', '..' or control characters)",
            detail={"kind": kind, "value": shown},
        )
    return value


def check_model_name(name: object) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`InvalidNameError`.

    >>> check_model_name("churn-model_v2.1")
    'churn-model_v2.1'
    >>> check_model_name("../etc")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidNameError: invalid model name '../etc': use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit (no '/', '\\\\', '..' or control characters)
    """
    return check_name("model name", name)


def check_alias(alias: object) -> str:
    """Return ``alias`` if valid; ``latest`` and version-like aliases (``v3``, ``3``) are reserved.

    >>> check_alias("production")
    'production'
    >>> check_alias("v2")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidNameError: alias 'v2' is reserved (it looks like a version); choose another name such as 'production' or 'champion'
    """
    value = check_name("alias", alias)
    if value.lower() in RESERVED_ALIASES:
        raise InvalidNameError(
            f"alias {value!r} is reserved (it always means the newest version); choose another",
            detail={"kind": "alias", "value": value},
        )
    if _VERSION_LIKE.fullmatch(value):
        raise InvalidNameError(
            f"alias {value!r} is reserved (it looks like a version); choose another name "
            "such as 'production' or 'champion'",
            detail={"kind": "alias", "value": value},
        )
    return value


def check_tag_key(key: object) -> str:
    """Tag and metric keys follow the same rule as model names."""
    return check_name("tag key", key)
