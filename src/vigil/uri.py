"""Model URIs: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` and ``models:/NAME/latest``.

The same grammar MLflow users know. Parsing is strict so a URI can be routed, logged and
put in a path safely.
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.errors import InvalidNameError, InvalidURIError
from vigil.names import check_alias, check_model_name

SCHEME = "models:/"


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
    vigil.errors.InvalidURIError: invalid model URI 'models:/churn/x': the part after '/' must be a version number or 'latest' (e.g. models:/churn/3 or models:/churn@production)
    """
    if not isinstance(text, str) or not text:
        raise InvalidURIError(
            "a model URI must be a non-empty string such as models:/churn@production"
        )
    raw = text
    if text.startswith(SCHEME):
        text = text[len(SCHEME) :]
    elif not allow_bare:
        raise InvalidURIError(f"invalid model URI {raw!r}: it must start with {SCHEME!r}")
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
            digits = version[1:] if version[:1] in "vV" else version
            if not digits.isdigit() or int(digits) < 1:
                raise InvalidURIError(
                    f"invalid model URI {raw!r}: the part after '/' must be a version number "
                    f"or 'latest' {hint}"
                )
            return ModelRef(name, version=int(digits))
        return ModelRef(check_model_name(text))
    except InvalidNameError as exc:
        raise InvalidURIError(f"invalid model URI {raw!r}: {exc.message}") from exc
