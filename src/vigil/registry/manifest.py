"""Reading a bundle's ``vigil.json`` manifest: all the registry needs to know of a bundle.

The registry treats a bundle as an opaque directory; the manifest must be a JSON object
with at least a ``flavor`` (string) and a ``signature`` (object).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vigil.errors import BundleError

MANIFEST_NAME = "vigil.json"


def read_manifest(bundle_dir: Path | str) -> dict[str, Any]:
    """The parsed, checked ``vigil.json`` of a bundle directory."""
    bundle_dir = Path(bundle_dir)
    hint = "build it with vigil.bundle.build_bundle(...) or `vigil bundle` first"
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir} is not a directory; pass a bundle directory ({hint})")
    path = bundle_dir / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(
            f"{bundle_dir} has no {MANIFEST_NAME}: it is not a bundle ({hint})"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); rebuild the bundle") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path} must hold a JSON object; rebuild the bundle")
    flavor = manifest.get("flavor")
    if not isinstance(flavor, str) or not flavor:
        raise BundleError(f"{path} names no 'flavor'; rebuild the bundle")
    if not isinstance(manifest.get("signature"), dict):
        raise BundleError(f"{path} has no 'signature' object; rebuild the bundle")
    return manifest
