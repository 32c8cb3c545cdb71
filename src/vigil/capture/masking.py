"""Hide personal data before it is written: mask it, hash it (HMAC-SHA256) or drop it.

Hashing uses a secret key, so equal values hash equally (joins and group-bys still work)
but nobody without the key can test a guess against the log.

>>> m = Masker({"email": "hash", "name": "mask", "ssn": "drop"}, hash_key="s3cret")
>>> out = m.apply({"email": "a@b.c", "name": "Ann", "ssn": "123", "age": 41})
>>> out["name"], "ssn" in out, out["age"], out["email"][:12]
('***', False, 41, 'e89439e87a7d')
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from vigil.errors import ConfigurationError

MASKED = "***"
MASKABLE_BODY_CHARS = 256 * 1024
"""Longest rejected body the rules are applied to. Masking means parsing the whole body
and copying it; of a larger one only its size is kept (2 KB of it would be, at most)."""


class Masker:
    """Applies ``field → action`` rules to feature dicts and to raw request bodies."""

    def __init__(self, rules: Mapping[str, str], *, hash_key: str | bytes | None = None) -> None:
        for name, action in rules.items():
            if action not in ("mask", "hash", "drop"):
                raise ConfigurationError(
                    f"VIGIL_CAPTURE_MASK: field {name!r} has action {action!r}; "
                    "use 'mask', 'hash' or 'drop'"
                )
        if any(a == "hash" for a in rules.values()) and not hash_key:
            raise ConfigurationError(
                "VIGIL_CAPTURE_HASH_KEY is required when a field is hashed; set it to a long "
                "random secret (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        self.rules = dict(rules)
        self._key = hash_key.encode() if isinstance(hash_key, str) else hash_key

    def __repr__(self) -> str:
        return f"Masker({self.rules!r})"  # never the key

    @property
    def active(self) -> bool:
        return bool(self.rules)

    def hash_value(self, value: Any) -> str:
        """HMAC-SHA256 (hex) of the value's JSON text, so 1 and "1" hash differently."""
        assert self._key is not None
        message = orjson.dumps(value, default=str)
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def apply(self, features: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``features`` with every configured field masked, hashed or dropped."""
        out = dict(features)
        for name, action in self.rules.items():
            if name not in out:
                continue
            if action == "drop":
                del out[name]
            elif action == "mask":
                out[name] = MASKED
            else:
                out[name] = self.hash_value(out[name])
        return out

    def apply_rows(self, keys: list[str], rows: Any) -> tuple[list[str], Any]:
        """Row-major values under ``keys`` (an array or lists) with the rules applied.

        Untouched input is returned as is, so an unmasked NumPy batch stays a NumPy batch.

        >>> import numpy as np
        >>> Masker({"b": "mask", "c": "drop"}).apply_rows(["a", "b", "c"], np.eye(2, 3))
        (['a', 'b'], [[1.0, '***'], [0.0, '***']])
        """
        touched = [(j, self.rules[k]) for j, k in enumerate(keys) if k in self.rules]
        if not touched:
            return keys, rows
        table = rows.tolist() if hasattr(rows, "tolist") else [list(r) for r in rows]
        columns = list(zip(*table, strict=True)) if table else [() for _ in keys]
        keys, columns = self.apply_columns(keys, columns)
        return keys, [list(r) for r in zip(*columns, strict=True)] if table else []

    def apply_columns(self, keys: list[str], columns: list[Any]) -> tuple[list[str], list[Any]]:
        """Column-major values (one sequence per key) with the rules applied."""
        out_keys: list[str] = []
        out_columns: list[Any] = []
        for key, column in zip(keys, columns, strict=True):
            action = self.rules.get(key)
            if action == "drop":
                continue
            if action == "mask":
                column = [MASKED] * len(column)
            elif action == "hash":
                values = column.tolist() if hasattr(column, "tolist") else column
                column = [self.hash_value(v) for v in values]
            out_keys.append(key)
            out_columns.append(column)
        return out_keys, out_columns

    def apply_deep(self, value: Any) -> Any:
        """Apply the rules to every mapping nested anywhere in ``value`` (a parsed body)."""
        if isinstance(value, Mapping):
            return {k: self.apply_deep(v) for k, v in self.apply(value).items()}
        if isinstance(value, list):
            return [self.apply_deep(v) for v in value]
        return value

    def apply_body(self, text: str | None) -> str | None:
        """A rejected body with the rules applied; withheld whole when it is not JSON,
        since then nobody can tell where a masked field sits in it, or when it is longer
        than :data:`MASKABLE_BODY_CHARS`."""
        if text is None or not self.rules:
            return text
        if len(text) > MASKABLE_BODY_CHARS:
            return (
                f"<withheld: a body longer than {MASKABLE_BODY_CHARS} characters is not masked "
                "and capture masking is configured>"
            )
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            return "<withheld: body is not JSON and capture masking is configured>"
        try:
            masked = self.apply_deep(parsed)
        except RecursionError:  # orjson reads 1,024 levels; Python recurses about 1,000
            return "<withheld: body nests too deeply to mask and capture masking is configured>"
        return orjson.dumps(masked, default=str).decode()
