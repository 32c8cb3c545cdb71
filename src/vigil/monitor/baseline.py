"""What a window is compared with: a version's signature, baseline profile and the metrics
stored when it was registered.

The profile is read from the version's bundle (fetched once into the local cache, verified
by digest); the model itself is never loaded, so monitoring needs no trust decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from vigil.bundle.bundle import read_profile
from vigil.bundle.signature import Signature
from vigil.drift.column_drift import NumericReference
from vigil.drift.reference import numeric_reference_from_profile
from vigil.monitor.estimation import Estimator, version_estimator
from vigil.monitor.fairness import ModelFairness
from vigil.monitor.points import performance_measure
from vigil.profile_schema import BaselineProfile, NumericProfile

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
    """Registration metrics that :mod:`vigil.monitor.performance` computes, under its names
    (``accuracy``, ``f1``, ``rmse``...; one registered as ``auc`` is ``roc_auc``); other
    names are kept out of the comparison."""
    estimator: Estimator | None = None
    """Performance estimated before labels arrive (classifiers with labelled reference
    probabilities: :func:`~vigil.monitor.estimation.version_estimator`)."""
    fairness: ModelFairness | None = None
    """The model's sensitive attributes, when monitoring measures fairness by group
    (``monitor.fairness`` in the settings: :mod:`vigil.monitor.fairness`)."""
    importance: dict[str, float] = field(default_factory=dict)
    """The version's global importance (feature → mean absolute attribution), stored at
    registration; empty when it has none. Weighs each feature's drift by what it does to
    the output (:func:`vigil.drift.impact.rank_by_impact`)."""

    @property
    def task(self) -> str:
        return self.signature.outputs.task

    @property
    def features(self) -> list[str]:
        """Features both declared by the signature and profiled (what drift compares)."""
        if self.profile is None:
            return []
        return [f for f in self.signature.feature_names if f in self.profile.features]

    @cached_property
    def references(self) -> dict[str, NumericReference]:
        """The reference side of each numeric feature's drift tests, built once from the
        profile and its raw sample: every window of the version is compared with the same
        one (rebuilding it took a fifth of a 1,000-row window's drift time)."""
        if self.profile is None:
            return {}
        built = {
            name: numeric_reference_from_profile(feature, self.profile.sample.get(name))
            for name, feature in self.profile.features.items()
            if isinstance(feature, NumericProfile)
        }
        for reference in built.values():  # shared by every window: nothing may change it
            reference.counts.flags.writeable = False
            if reference.sample is not None:
                reference.sample.values.flags.writeable = False
        return built


def load_baseline(
    app: Services, model: str, version: int, fairness: ModelFairness | None = None
) -> Baseline:
    """The :class:`Baseline` of ``models:/model/version`` from the registry (with the
    model's fairness settings, if any)."""
    mv = app.registry.get_version(model, version)
    signature = Signature.model_validate(mv.signature)
    bundle_dir = app.registry.fetch_bundle(mv, app.cache_dir)
    profile = read_profile(bundle_dir)
    return Baseline(
        model,
        version,
        signature,
        profile,
        reference_metrics(mv.metrics or {}),
        version_estimator(mv.sha256, signature, profile),
        fairness,
        stored_importance(mv.manifest),
    )


def stored_importance(manifest: Mapping[str, Any]) -> dict[str, float]:
    """The feature → importance map of a version's manifest (empty without one).

    >>> stored_importance({"importance": {"features": {"age": 0.5}, "exact": True}})
    {'age': 0.5}
    >>> stored_importance({})
    {}
    """
    found = manifest.get("importance")
    features = found.get("features") if isinstance(found, Mapping) else None
    if not isinstance(features, Mapping):
        return {}
    return {str(k): float(v) for k, v in features.items() if isinstance(v, int | float)}


def reference_metrics(registered: Mapping[str, Any]) -> dict[str, float]:
    """The registered metrics monitoring can compare, under its measures' names (a name
    spelt exactly as the measure wins over an alias of it).

    >>> reference_metrics({"auc": 0.91, "revenue": 3.0, "Accuracy": 0.8})
    {'roc_auc': 0.91, 'accuracy': 0.8}
    """
    out: dict[str, float] = {}
    exact: set[str] = set()
    for name, value in registered.items():
        measure = performance_measure(name)
        if measure is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if measure in exact:
            continue
        out[measure] = float(value)
        if name == measure:
            exact.add(measure)
    return out
