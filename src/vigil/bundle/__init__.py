"""Model bundles: flavors, signatures, baseline profiles.

The main entry points are re-exported lazily (importing this package stays cheap):
:func:`build_bundle`, :func:`load_bundle`, :func:`read_manifest`, :class:`Manifest`,
:class:`TrustPolicy` and :func:`build_profile`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_bundle": "vigil.bundle.bundle",
    "load_bundle": "vigil.bundle.bundle",
    "read_manifest": "vigil.bundle.manifest",
    "Manifest": "vigil.bundle.manifest",
    "TrustPolicy": "vigil.bundle.trust",
    "build_profile": "vigil.bundle.profile",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vigil.bundle' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
