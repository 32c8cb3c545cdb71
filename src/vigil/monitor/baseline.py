"""What a window is compared with: a version's signature, baseline profile and the metrics
stored when it was registered.

The profile is read from the version's bundle (fetched once into the local cache, verified
by digest); the model itself is never loaded, so monitoring needs no trust decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vigil.bundle.bundle import read_profile
from vigil.bundle.signature import Signature
from vigil.monitor.points import PERFORMANCE_MEASURES
from vigil.profile_schema import BaselineProfile

if TYPE_CHECKING:
    from vigil.services import Services


@dataclass(frozen=True)
class Baseline:
    """Everything a window of one model version is judged against."""

    model: str
    version: int
    signature: Signature
    profile: BaselineProfile | None
    """``None`` when the version was registered without reference data (no drift, no
    quality checks; traffic and performance still work)."""
    reference_metrics: dict[str, float] = field(default_factory=dict)
    """Registration metrics named like :mod:`vigil.monitor.performance`'s (``accuracy``, ``f1``,
    ``rmse``...); other names are kept out of the comparison."""

    @property
    def task(self) -> str:
        return self.signature.outputs.task

    @property
    def features(self) -> list[str]:
        """Features both declared by the signature and profiled (what drift compares)."""
        if self.profile is None:
            return []
        return [f for f in self.signature.feature_names if f in self.profile.features]


def load_baseline(app: Services, model: str, version: int) -> Baseline:
    """The :class:`Baseline` of ``models:/model/version`` from the registry."""
    mv = app.registry.get_version(model, version)
    signature = Signature.model_validate(mv.signature)
    bundle_dir = app.registry.fetch_bundle(mv, app.cache_dir)
    profile = read_profile(bundle_dir)
    metrics = {
        name: float(value)
        for name, value in (mv.metrics or {}).items()
        if name in PERFORMANCE_MEASURES and isinstance(value, int | float)
    }
    return Baseline(model, version, signature, profile, metrics)
