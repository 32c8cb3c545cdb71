"""API keys and authentication: roles, hashed keys, and the server's bearer-token check.

* :mod:`~vigil.auth.roles` — ``read`` < ``predict`` < ``admin``;
* :mod:`~vigil.auth.tokens` — the ``vk_<id>_<secret>`` format, SHA-256 digests;
* :mod:`~vigil.auth.keys` — :class:`KeyStore` (create, list, revoke, check), audited;
* :mod:`~vigil.auth.authenticator` — the server's cached check of ``Authorization``.
"""

from __future__ import annotations

from vigil.auth.keys import ApiKey, CreatedKey, KeyStore, Principal
from vigil.auth.roles import ROLES, Role, allows, check_role

__all__ = ["ROLES", "ApiKey", "CreatedKey", "KeyStore", "Principal", "Role", "allows", "check_role"]
