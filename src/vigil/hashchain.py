"""Hash chains: each entry's digest covers its own content and the previous entry's digest.

The audit log (:mod:`vigil.audit`) and the capture chain manifests
(:mod:`vigil.capture.chain`) use the same rule, so one reviewer's tool checks both: an
entry's digest is the SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8) of its
fields plus ``prev``, the digest of the entry before it (:data:`GENESIS` for the first).
Editing an entry changes its digest; inserting or deleting one breaks the next entry's
``prev``; an exported head digest pins everything before it.

>>> first = chain_digest(GENESIS, {"action": "create", "n": 1})
>>> second = chain_digest(first, {"action": "update", "n": 2})
>>> len(second), second != chain_digest(GENESIS, {"action": "update", "n": 2})
(64, True)
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
"""The ``prev`` of the first entry of every chain."""


def canonical_json(value: Any) -> bytes:
    """``value`` as canonical JSON bytes: sorted keys, no spaces, UTF-8, no NaN.

    >>> canonical_json({"b": [1, 2.5], "a": "é"})
    b'{"a":"\\xc3\\xa9","b":[1,2.5]}'
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def canonical_time(at: datetime) -> str:
    """A timestamp as the chain writes it: UTC, ISO 8601, microseconds.

    >>> canonical_time(datetime(2026, 12, 6, 14, 0, tzinfo=UTC))
    '2026-12-06T14:00:00.000000+00:00'
    """
    if at.tzinfo is None:
        raise ValueError("naive datetime in a hash chain; timestamps must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def chain_digest(prev: str, content: dict[str, Any]) -> str:
    """The SHA-256 (hex) of ``content`` chained onto ``prev``."""
    if "prev" in content:
        raise ValueError("'prev' is the chain's own field; rename the content's key")
    return hashlib.sha256(canonical_json({**content, "prev": prev})).hexdigest()
