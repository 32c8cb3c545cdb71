"""Settings of the inference log, read from ``VIGIL_CAPTURE_*`` environment variables and
the ``capture:`` section of ``vigil.yaml``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from vigil.bundle.personal_data import unmasked
from vigil.errors import ConfigurationError
from vigil.settings import VigilSettings

if TYPE_CHECKING:
    from vigil.capture.crypt import LogCodec

FsyncPolicy = Literal["none", "interval", "always"]
MaskAction = Literal["mask", "hash", "drop"]


class CaptureSettings(VigilSettings):
    """How predictions are captured: where, how durably, and what is hidden.

    >>> s = CaptureSettings(dir="/tmp/x", mask={"email": "hash"}, hash_key="top-secret-key")
    >>> s.fsync, s.segment_bytes, s.mask
    ('none', 67108864, {'email': 'hash'})
    >>> "top-secret-key" in repr(s)
    False
    """

    yaml_section: ClassVar[str] = "capture"

    model_config = SettingsConfigDict(env_prefix="VIGIL_CAPTURE_", extra="forbid")

    enabled: bool = True
    """Append every answered prediction to the log."""

    dir: Path | None = None
    """Directory of the live segment files (local disk); default ``<VIGIL_HOME>/capture``."""

    fsync: FsyncPolicy = "none"
    """``none``: every record reaches the OS before the reply (survives ``kill -9`` of the
    worker, not a power cut); ``interval``: also ``fsync`` at most every
    ``fsync_interval_s``; ``always``: ``fsync`` after every append (slow, survives power
    loss)."""

    fsync_interval_s: float = Field(default=1.0, gt=0)
    """Seconds between two ``fsync`` calls under the ``interval`` policy."""

    segment_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """A live segment is closed (and becomes compactable) past this many bytes..."""

    segment_seconds: float = Field(default=3600.0, gt=0)
    """...or this many seconds after it was opened."""

    retention_days: int | None = Field(default=90, ge=1)
    """Compacted partitions older than this are deleted; ``None`` keeps them forever."""

    mask: dict[str, MaskAction] = Field(default_factory=dict)
    """Feature name → ``mask`` (``***``), ``hash`` (HMAC-SHA256 with ``hash_key``) or
    ``drop``, applied before anything is written."""

    hash_key: SecretStr | None = None
    """Secret key of the ``hash`` action; required when any field is hashed. Never logged."""

    require_masking: bool = False
    """Refuse to serve (and so to capture) a model version whose registration flagged
    columns as personal data (``vigil model show``) that ``mask`` leaves as they are; the
    error names them and the ``mask`` entries to add. Off by default."""

    raw_body_limit: int = Field(default=2048, ge=0)
    """At most this many characters of a rejected request body are kept, as text."""

    compact_interval_s: float = Field(default=60.0, gt=0)
    """How often a serving worker compacts closed segments into Parquet partitions in the
    artifact store and applies retention (one worker at a time)."""

    compact_isolation: Literal["process", "thread"] = "process"
    """Where a serving worker's compaction passes run: ``process`` (a child process per
    pass, at a lower CPU priority, so decoding segments and writing Parquet never hold the
    worker's GIL; see :mod:`vigil.capture.isolation`) or ``thread`` (a thread of the
    worker: to debug a pass in-process, or for a script that runs the app without an
    ``if __name__ == "__main__":`` guard, which each child would run again). Either way
    the worker closes its own live segments itself."""

    feedback_dir: Path | None = None
    """Directory of the live feedback segments; default ``<VIGIL_HOME>/feedback``."""

    feedback_lookback_days: int = Field(default=30, ge=1)
    """Feedback is matched with predictions made at most this many days before it."""

    feedback_late_hours: float = Field(default=24.0, gt=0)
    """Feedback arriving more than this many hours after its prediction counts as late."""

    encryption_key_file: Path | None = None
    """A file of ``ID:BASE64`` lines, AES-256 keys (``vigil capture keygen ID`` makes
    one): when set, everything the log writes (segments, Parquet parts, quarantine) is
    encrypted under the first key; every key decrypts. Rotate: put a new key first, run
    ``vigil capture rekey``, then drop the old one. Checked at start-up; never logged."""

    encrypt: bool = True
    """With ``encryption_key_file`` set: ``False`` writes plain files again but still reads
    the encrypted ones."""

    @field_validator("mask")
    @classmethod
    def _check_mask(cls, value: dict[str, MaskAction]) -> dict[str, MaskAction]:
        for name in value:
            if not name:
                raise ValueError("mask field names must not be empty")
        return value

    def check_masked(self, model: str, personal_data: Mapping[str, Any] | None) -> None:
        """Raise :class:`~vigil.errors.ConfigurationError` when :attr:`require_masking` is
        on, capture is on and ``model``'s flagged ``personal_data`` is not all in
        :attr:`mask`.

        >>> found = {"columns": {"email": {"suggested": "hash"}}}
        >>> CaptureSettings(require_masking=True).check_masked("churn", found)
        Traceback (most recent call last):
        ...
        vigil.errors.ConfigurationError: capture of model 'churn' refused ...
        >>> CaptureSettings(require_masking=True, mask={"email": "drop"}).check_masked(
        ...     "churn", found)
        """
        if not (self.enabled and self.require_masking):
            return
        missing = unmasked(personal_data, self.mask)
        if not missing:
            return
        columns = (personal_data or {}).get("columns") or {}
        add = {c: str(columns[c].get("suggested", "hash")) for c in missing}
        kinds = ", ".join(f"{c} ({columns[c].get('kind', '?')})" for c in missing)
        key = (
            " and VIGIL_CAPTURE_HASH_KEY"
            if "hash" in add.values() and self.hash_key is None
            else ""
        )
        raise ConfigurationError(
            f"capture of model {model!r} refused (VIGIL_CAPTURE_REQUIRE_MASKING): its "
            f"columns {kinds} look like personal data and are not masked; add "
            f"{json.dumps(add)} to VIGIL_CAPTURE_MASK (capture: mask: in vigil.yaml){key}"
        )

    def codec(self) -> LogCodec | None:
        """The log's codec (keys read and checked now), ``None`` without a key file.

        >>> CaptureSettings().codec() is None
        True
        """
        if self.encryption_key_file is None:
            return None
        from vigil.capture.crypt import KeyRing, LogCodec

        return LogCodec(KeyRing.from_file(self.encryption_key_file), encrypt=self.encrypt)

    def resolved_dir(self, home: Path) -> Path:
        """The segment directory, defaulting to ``<home>/capture``."""
        return self.dir if self.dir is not None else home / "capture"

    def resolved_feedback_dir(self, home: Path) -> Path:
        """The feedback segment directory, defaulting to ``<home>/feedback``."""
        return self.feedback_dir if self.feedback_dir is not None else home / "feedback"
