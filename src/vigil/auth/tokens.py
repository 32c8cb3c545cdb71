"""The API-key token format and how it is hashed.

A token reads ``vk_<id>_<secret>``: ``vk`` says what it is (secret scanners can match
it), ``<id>`` is 12 hex digits naming the key (so the server finds the one row to check
in one indexed lookup, and the id can be shown, logged and used as the audit actor), and
``<secret>`` is 32 random bytes from :mod:`secrets`, URL-safe base64 (43 characters).

Only a SHA-256 digest of the whole token is stored. A slow password hash (scrypt,
PBKDF2, argon2) exists to make guessing *low-entropy* passwords expensive; a 256-bit
random secret cannot be guessed at any hashing speed, so the slow hash would only add
milliseconds to every key check and buy nothing. Hashing the whole token (not just the
secret) binds the digest to its id. Digests are compared with
:func:`hmac.compare_digest`, in time independent of where they first differ.

>>> key_id, token = new_token()
>>> parse_token(token) == (key_id, token)
True
>>> token_matches(token, hash_token(token)), token_matches(token, hash_token("x"))
(True, False)
>>> parse_token("Basic dXNlcjpwYXNz") is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

SCHEME = "vk"
_ID_BYTES = 6
_SECRET_BYTES = 32
_TOKEN = re.compile(r"vk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
TOKEN_LENGTH = len(SCHEME) + 1 + 2 * _ID_BYTES + 1 + 43
"""Every token has exactly this many characters."""
PREFIX_LENGTH = len(SCHEME) + 1 + 2 * _ID_BYTES + 1 + 4
"""Characters of a token kept in clear to recognise it (the id and 4 secret characters,
24 of its 256 bits)."""


def new_token() -> tuple[str, str]:
    """A fresh ``(key_id, token)``; the token is shown once and never stored."""
    key_id = secrets.token_hex(_ID_BYTES)
    return key_id, f"{SCHEME}_{key_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"


def parse_token(token: str) -> tuple[str, str] | None:
    """``(key_id, token)`` if ``token`` has the vigil format, else ``None``."""
    found = _TOKEN.fullmatch(token) if len(token) == TOKEN_LENGTH else None
    return (found.group(1), token) if found is not None else None


def hash_token(token: str) -> str:
    """The hex SHA-256 digest stored for ``token``."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Whether ``token`` hashes to ``stored_hash``, compared in constant time."""
    return hmac.compare_digest(hash_token(token), stored_hash)
