"""The installed version of vigil, read once from the package metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("vigil")
except PackageNotFoundError:  # pragma: no cover - running from a tree nobody installed
    VERSION = "0+unknown"
