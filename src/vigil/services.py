"""What vigil's subsystems use of the composition root, as a protocol.

:class:`vigil.app.Vigil` builds every long-lived object; the subsystems above this module
(authentication, monitoring, experiments, serving, batch, reports) take it as a
:class:`Services` rather than importing :mod:`vigil.app`, so every dependency points
down. ``Vigil`` satisfies the protocol structurally; a test may hand in anything else that
does. Packages needing more of the root extend it next to their own types
(:class:`vigil.monitor.services.MonitorServices`,
:class:`vigil.experiments.services.ExperimentServices`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from vigil.bundle.model import LoadedBundle
    from vigil.bundle.trust import TrustPolicy
    from vigil.feedback.erase import Erasure
    from vigil.feedback.store import FeedbackStore
    from vigil.registry.registry import Registry
    from vigil.settings import Settings
    from vigil.storage.artifacts import ArtifactStore
    from vigil.storage.sql import Database

__all__ = ["Services"]


class Services(Protocol):
    """The settings, stores and registry of one vigil installation."""

    @property
    def settings(self) -> Settings:
        """Where vigil keeps its state (home, database, artifacts, actor)."""
        ...

    @property
    def database(self) -> Database:
        """The SQL metadata store."""
        ...

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store (bundles, compacted logs)."""
        ...

    @property
    def registry(self) -> Registry:
        """The model registry, acting as the configured actor."""
        ...

    @property
    def cache_dir(self) -> Path:
        """Where fetched bundles are cached locally."""
        ...

    @property
    def capture_dir(self) -> Path:
        """The live capture segments' directory (``VIGIL_CAPTURE_DIR``)."""
        ...

    def feedback_store(self, *, capture: Path | None = None) -> FeedbackStore:
        """A feedback store over this home's log (matched against ``capture`` when given);
        the caller closes it."""
        ...

    def erase_subject(
        self, where: Mapping[str, str], *, wait: float | None = None, actor: str | None = None
    ) -> Erasure:
        """Remove a person's captured predictions and feedback, audited (see
        :meth:`vigil.app.Vigil.erase_subject`)."""
        ...

    def load(
        self, uri: str, *, trust: TrustPolicy | None = None, sample: bool = True
    ) -> LoadedBundle:
        """Load a registered version (``models:/NAME/VERSION``, ``models:/NAME@ALIAS``)."""
        ...
