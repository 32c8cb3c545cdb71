"""URLs safe to print: the one helper every message, log line and ``repr`` that shows a
database, artifact, Redis or webhook URL goes through.

Database and Redis URLs carry a password (``postgresql+psycopg://user:password@host/db``,
``redis://:password@host``), sometimes in the query (``?password=...``); webhook URLs carry
their token in the path or query (``https://hooks.slack.com/services/T0/B0/XXXX``). What
is left is enough to tell which server is meant.

>>> redact_url("postgresql+psycopg://vigil:s3cret@db.internal:5432/vigil")
'postgresql+psycopg://vigil:***@db.internal:5432/vigil'
>>> redact_url("redis://:s3cret@cache:6379/0"), redact_url("s3://bucket/prefix")
('redis://:***@cache:6379/0', 's3://bucket/prefix')
>>> redact_url("postgresql://db/vigil?sslmode=require&password=s3cret")
'postgresql://db/vigil?sslmode=require&password=***'
>>> redact_url("https://user:pw@hooks.slack.com/services/T0/B0/XXXX?x=1", path=False)
'https://hooks.slack.com/…'
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["redact_url"]

MASK = "***"
_SECRET_KEYS = re.compile(r"pass|secret|token|key|auth|sig|credential", re.IGNORECASE)
# A last resort for text urlsplit refuses: whatever sits between '//' and '@' goes.
_USERINFO = re.compile(r"//[^/@\s]*@")


def redact_url(url: str, *, path: bool = True) -> str:
    """``url`` with its secrets replaced: the password of its user info and the values of
    query parameters whose names say secret (``password``, ``token``, ``key``, ...).

    ``path=False`` keeps the scheme and host only (``https://host/…``), for URLs whose
    path or query is the secret, such as webhooks. Text that is not a URL comes back as
    it is (a local path holds no credentials).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return _USERINFO.sub(f"//{MASK}@", url)
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if port is not None:
        host += f":{port}"
    if not path:
        return f"{parts.scheme}://{host}/…"
    if parts.password is not None:
        host = f"{parts.username or ''}:{MASK}@{host}"
    elif parts.username is not None:
        host = f"{parts.username}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_KEYS.search(k) for k, _ in pairs):
            query = urlencode(
                [(k, MASK if _SECRET_KEYS.search(k) else v) for k, v in pairs], safe="*"
            )
    return urlunsplit((parts.scheme, host, parts.path, query, parts.fragment))
