"""Model URIs: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` and ``models:/NAME/latest``.

The same grammar MLflow users know. Parsing is strict so a URI can be routed, logged and
put in a path safely.
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.errors import InvalidNameError, InvalidURIError
from vigil.names import check_alias, check_model_name

SCHEME = "models:/"

MAX_VERSION = 2**31 - 1
"""The largest version number. Versions live in INTEGER columns, 32-bit on PostgreSQL, so
no larger number can name one; refusing it here keeps it out of every query (SQLite
overflows past 2**63, PostgreSQL past 2**31)."""

_MAX_DIGITS = len(str(MAX_VERSION))


def version_number(text: str) -> int | None:
    """The version number ``text`` spells (``3``, ``v3``), or ``None`` when it spells none.

    Only ASCII digits count (``str.isdigit`` also accepts ``'²'``, which ``int`` refuses),
    and only 1 to :data:`MAX_VERSION`; the length is checked before anything is converted,
    so any text costs at most a few operations.

    >>> version_number("3"), version_number("v12"), version_number("²"), version_number("0")
    (3, 12, None, None)
    >>> version_number("9" * 5000) is None
    True
    """
    digits = text[1:] if text[:1] in ("v", "V") else text
    if not 0 < len(digits) <= _MAX_DIGITS or not (digits.isascii() and digits.isdigit()):
        return None
    number = int(digits)
    return number if 1 <= number <= MAX_VERSION else None


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A reference to one model version: by number, by alias, or the newest (``latest``)."""

    name: str
    version: int | None = None
    alias: str | None = None

    @property
    def is_latest(self) -> bool:
        return self.version is None and self.alias is None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{SCHEME}{self.name}/{self.version}"
        if self.alias is not None:
            return f"{SCHEME}{self.name}@{self.alias}"
        return f"{SCHEME}{self.name}/latest"


def parse_model_ref(text: str, *, allow_bare: bool = True) -> ModelRef:
    """Parse a model URI, or a bare ``NAME``, ``NAME@ALIAS`` or ``NAME/VERSION``.

    >>> parse_model_ref("models:/churn@production")
    ModelRef(name='churn', version=None, alias='production')
    >>> parse_model_ref("models:/churn/3")
    ModelRef(name='churn', version=3, alias=None)
    >>> str(parse_model_ref("churn"))
    'models:/churn/latest'
    >>> parse_model_ref("models:/churn/x")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidURIError: invalid model URI 'models:/churn/x': the part after '/' must be 'latest' or a version number from 1 to 2147483647 (e.g. models:/churn/3 or models:/churn@production)
    """
    if not isinstance(text, str) or not text:
        raise InvalidURIError(
            "a model URI must be a non-empty string such as models:/churn@production"
        )
    raw = repr(text) if len(text) <= 200 else repr(text[:200]) + "..."
    if text.startswith(SCHEME):
        text = text[len(SCHEME) :]
    elif not allow_bare:
        raise InvalidURIError(f"invalid model URI {raw}: it must start with {SCHEME!r}")
    hint = "(e.g. models:/churn/3 or models:/churn@production)"
    try:
        if "@" in text:
            name, alias = text.split("@", 1)
            return ModelRef(check_model_name(name), alias=check_alias(alias))
        if "/" in text:
            name, version = text.split("/", 1)
            check_model_name(name)
            if version == "latest":
                return ModelRef(name)
            number = version_number(version)
            if number is None:
                raise InvalidURIError(
                    f"invalid model URI {raw}: the part after '/' must be 'latest' or a "
                    f"version number from 1 to {MAX_VERSION} {hint}"
                )
            return ModelRef(name, version=number)
        return ModelRef(check_model_name(text))
    except InvalidNameError as exc:
        raise InvalidURIError(f"invalid model URI {raw}: {exc.message}") from exc
