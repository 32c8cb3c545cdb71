"""Model bundles: flavors, signatures, baseline profiles.

The main entry points are re-exported lazily (importing this package stays cheap):
:func:`build_bundle`, :func:`load_bundle`, :func:`read_manifest`, :class:`Manifest`,
:class:`TrustPolicy` and :func:`build_profile`.
"""

from __future__ import annotations

from vigil._lazy import lazy_exports

_EXPORTS = {
    "build_bundle": "bundle",
    "load_bundle": "bundle",
    "read_manifest": "manifest",
    "Manifest": "manifest",
    "TrustPolicy": "trust",
    "build_profile": "profile",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
