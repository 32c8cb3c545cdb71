"""The bundle manifest (``vigil.json``): everything needed to load and trust a bundle.

A bundle is a self-describing directory::

    vigil.json                 this manifest
    <model file or dir>        the model, in its flavor's native format
    profile.json               baseline profile of the reference data (without the sample)
    reference_sample.parquet   the profile's bounded, seeded sample of reference rows

The manifest records what the model *requires* to load (``required_trusted_types``,
``requires_pickle``) as information only: loading still needs the caller's own trust
policy (see :mod:`vigil.bundle.trust`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from vigil.bundle.signature import Signature
from vigil.errors import BundleError

MANIFEST_FILE = "vigil.json"
PROFILE_FILE = "profile.json"
SAMPLE_FILE = "reference_sample.parquet"
FORMAT_VERSION = 1


class SourceInfo(BaseModel):
    """Where a file came from: its name (never the caller's full path) and digest."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["file", "directory", "object"]
    name: str
    """File or directory name, or the Python type of an in-memory object."""
    sha256: str | None = None
    """Digest of the file; of a directory, the digest of its sorted (path, digest) list."""
    size_bytes: int | None = None


class ReferenceInfo(BaseModel):
    """The reference data the baseline profile was built from."""

    model_config = ConfigDict(extra="forbid")

    source: SourceInfo | None = None
    n_rows: int
    target: str | None = None


class Manifest(BaseModel):
    """Contents of ``vigil.json``."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    flavor: str
    model_file: str
    """Path of the model file (or MLflow directory) relative to the bundle directory."""
    model_info: dict[str, Any] = Field(default_factory=dict)
    """Flavor-specific facts the native file loses (e.g. XGBoost's wrapper class)."""
    signature: Signature
    frameworks: dict[str, str] = Field(default_factory=dict)
    """Versions of Python, vigil and the model's libraries when the bundle was built."""
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    required_trusted_types: list[str] = Field(default_factory=list)
    """Types the model file needs trusted to load (information; never auto-trusted)."""
    requires_pickle: bool = False
    """Whether loading the model file needs ``trust_pickle``."""
    source: SourceInfo
    reference: ReferenceInfo | None = None
    profile_file: str | None = None
    sample_file: str | None = None
    importance: dict[str, Any] | None = None
    """Global importance: each input's mean absolute attribution over reference rows, with
    how it was computed (see :func:`vigil.explain.importance.global_importance`)."""
    personal_data: dict[str, Any] | None = None
    """Columns that look like personal data and the capture ``mask`` that hides them (see
    :func:`vigil.bundle.personal_data.scan_personal_data`); ``None`` in older bundles."""


def read_manifest(bundle_dir: str | Path) -> Manifest:
    """The checked manifest of the bundle at ``bundle_dir`` (nothing is loaded or trusted):
    what the registry stores with a version and what loading a bundle starts from."""
    root = Path(bundle_dir)
    hint = "build one with vigil.bundle.build_bundle(...), or register the model file with `vigil register`"
    if not root.is_dir():
        raise BundleError(f"{root} is not a directory; pass a bundle directory ({hint})")
    path = root / MANIFEST_FILE
    try:
        manifest = Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise BundleError(f"{root} has no {MANIFEST_FILE}: it is not a bundle ({hint})") from None
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "the document"
        raise BundleError(
            f"{path} is invalid: {where}: {first['msg']}; rebuild the bundle"
        ) from None
    if manifest.format_version > FORMAT_VERSION:
        raise BundleError(
            f"the bundle has format {manifest.format_version}, newer than this vigil "
            f"understands ({FORMAT_VERSION}); upgrade vigil"
        )
    return manifest
