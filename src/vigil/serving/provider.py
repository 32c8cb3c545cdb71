"""Where the data plane gets its models: :class:`ModelProvider` and the models it serves.

A :class:`ServedModel` is one model version ready to answer: the loaded bundle, its
validator and its micro-batcher. A provider resolves ``(name, selector)`` to one; the
selector is ``None`` (the default alias, else the newest version), ``"@alias"`` or a
version number (``"3"``).

Swapping the version behind a name is atomic and loses no request
(:meth:`StaticProvider.swap`): the new version is loaded and warmed first, then the
reference is replaced in one assignment, then the old one drains its queue and stops.
A registry-backed provider that follows alias moves does the same on each move.
"""

from __future__ import annotations

import asyncio
import builtins
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from vigil.errors import (
    AliasNotFoundError,
    ModelInputError,
    ModelNotFoundError,
    PredictionError,
    VersionNotFoundError,
    VigilError,
)
from vigil.names import check_model_name
from vigil.profile_schema import CategoricalProfile, NumericProfile
from vigil.serving import metrics
from vigil.serving.batching import MicroBatcher, Output
from vigil.serving.cache import Namespace
from vigil.serving.config import ServingSettings, load_serving_settings
from vigil.serving.validation import Records, Validator
from vigil.uri import version_number

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from vigil.bundle.model import LoadedBundle
    from vigil.bundle.signature import FeatureSpec


COMPUTE_ONLY_FLAVORS = frozenset({"sklearn", "xgboost", "lightgbm", "onnx"})
"""Flavors whose ``predict`` is computation only, so a quick call may run on the event loop
(see :mod:`vigil.serving.batching`). An MLflow ``python_function`` model is arbitrary user
code that may wait on the network or run an event loop of its own: it always gets the
model's worker thread."""


class ServedModel:
    """One model version being served: bundle, validator and micro-batcher."""

    def __init__(
        self,
        bundle: LoadedBundle,
        *,
        name: str | None = None,
        version: int | None = None,
        settings: ServingSettings | None = None,
        capture_proba: bool = False,
        digest: str | None = None,
    ) -> None:
        settings = settings or load_serving_settings()
        resolved = name or bundle.name
        if resolved is None:
            raise ValueError("a served model needs a name: pass name= or load a named bundle")
        self.name = check_model_name(resolved)
        self.version = int(version if version is not None else bundle.version or 1)
        self.version_label = str(self.version)
        self.bundle = bundle
        self.signature = bundle.signature
        self.classes = bundle.signature.outputs.classes
        self.has_proba = bool(bundle.model.has_proba)
        self.capture_proba = capture_proba and self.has_proba
        """Log class probabilities even when the client does not ask for them (the version
        was registered with a metric monitoring computes from them, such as ROC AUC)."""
        policy = settings.cache.get(self.name)
        self.cache = (
            Namespace.of(self.name, self.version, digest, policy) if policy is not None else None
        )
        """Where this version's predictions are cached (``None``: not cached). ``digest``
        (the registry's artifact sha256) keeps versions, even of a re-created model, apart."""
        self.validator = Validator(
            bundle.signature,
            extra=settings.extra_features,
            allow_inf=settings.allow_inf,
            max_columns=settings.column_limit(len(bundle.signature.inputs)),
            max_cells=settings.max_cells,
            unseen_categories=settings.unseen_categories,
        )
        self.batcher = MicroBatcher(
            self._predict,
            max_batch_size=settings.max_batch_size,
            max_wait=settings.max_wait_ms / 1000.0,
            inline_budget=settings.inline_max_ms / 1000.0
            if bundle.model.flavor in COMPUTE_ONLY_FLAVORS
            else 0.0,
            metrics=metrics.batch_children(self.name, self.version_label)
            if settings.metrics
            else None,
            thread_name=f"vigil-{self.name}-{self.version}",
        )
        self._record_metrics = settings.metrics
        self.ready = False
        self.load_seconds: float | None = None
        self._known_good: Any = None
        """A one-row input the model answered when warmed (tells a model's refusal of an
        input apart from a broken model)."""

    def __repr__(self) -> str:
        return f"ServedModel(name={self.name!r}, version={self.version}, ready={self.ready})"

    def _predict(self, X: Any, want_proba: bool) -> Output:
        try:
            pred = np.asarray(self.bundle.model.predict(X))
            proba = np.asarray(self.bundle.model.predict_proba(X)) if want_proba else None
        except VigilError:
            raise
        except Exception as exc:
            raise self._failure(exc, want_proba) from exc
        return pred, proba

    def _failure(self, exc: Exception, want_proba: bool) -> VigilError:
        """Whose fault a model's exception is. The input passed validation; if the model
        still answers the known-good row it was warmed with, it is this input the model
        cannot take: a 422 with the model's message. If it fails on that row too (or runs
        out of memory), the model or the server is broken: a 500."""
        what = f"{type(exc).__name__}: {str(exc)[:300]}"
        detail = {"model": self.name, "version": self.version, "model_error": what}
        if not isinstance(exc, MemoryError) and self._answers_known_good(want_proba):
            return ModelInputError(
                f"model {self.name} version {self.version} cannot predict this input "
                f"({what}); the input matches the model's signature but the model refuses "
                "it: check the values (a missing value, a value outside what the model was "
                "trained on) and send them again",
                detail=detail,
            )
        return PredictionError(
            f"model {self.name} version {self.version} failed to predict: {what}",
            detail={"model": self.name, "version": self.version},
        )

    def _answers_known_good(self, want_proba: bool) -> bool:
        known = self._known_good
        if known is None:
            return False
        try:
            self.bundle.model.predict(known)
            if want_proba:
                self.bundle.model.predict_proba(known)
        except Exception:
            return False
        return True

    def example_record(self) -> dict[str, Any]:
        """A plausible input row built from the signature and the baseline profile."""
        return {f.name: _example_value(f, self.bundle) for f in self.signature.inputs}

    def warm(self) -> None:
        """A real prediction, so the first client does not pay lazy initialisation, then
        timed ones, which decide where calls run (see :mod:`vigil.serving.batching`)."""
        example = self.example_record()
        one = self.validator.validate(Records([example])).X
        self._predict(one, self.has_proba)
        self._known_good = one
        rows = self.batcher.max_batch_size
        # Timed as most calls are made: predictions only, unless the log wants
        # probabilities (a client's return_proba is the exception; its calls, twice as
        # long, then count in the running estimate like any other).
        self.batcher.calibrate(
            one, lambda: self.validator.validate(Records([example] * rows)).X, self.capture_proba
        )

    async def start(self) -> None:
        """Warm the model on its worker thread and mark it ready."""
        started = perf_counter()
        await asyncio.get_running_loop().run_in_executor(self.batcher.executor, self.warm)
        self.load_seconds = (
            perf_counter() - started + float(self.bundle.manifest.get("load_seconds", 0.0) or 0.0)
        )
        if self._record_metrics:
            metrics.record_model_load(self.name, self.version_label, self.load_seconds)
        self.ready = True

    async def stop(self) -> None:
        """Finish queued work, then release the worker thread."""
        self.ready = False
        await self.batcher.wait_idle()
        self.batcher.close()


def _example_value(spec: FeatureSpec, bundle: LoadedBundle) -> Any:
    profile = bundle.profile.features.get(spec.name) if bundle.profile else None
    if spec.dtype == "bool":
        return False
    if spec.is_numeric:
        mean = profile.mean if isinstance(profile, NumericProfile) else None
        value = float(mean) if mean is not None and np.isfinite(mean) else 0.0
        return round(value) if spec.dtype in ("int64", "int32") else value
    if spec.categories:
        return spec.categories[0]
    if isinstance(profile, CategoricalProfile) and profile.frequencies:
        return max(profile.frequencies, key=lambda k: profile.frequencies[k])
    return ""


class ModelProvider(Protocol):
    """What the data plane needs from wherever models come from."""

    @property
    def ready(self) -> bool:
        """Whether every model is loaded and warmed."""
        ...

    def get(self, name: str, selector: str | None = None) -> ServedModel:
        """The version ``selector`` picks (``None``, ``"@alias"`` or ``"3"``) of ``name``."""
        ...

    def list(self) -> list[ServedModel]:
        """Every version being served."""
        ...

    async def start(self) -> None:
        """Load and warm every model."""
        ...

    async def stop(self) -> None:
        """Drain and release every model."""
        ...


class StaticProvider:
    """A fixed set of loaded bundles (tests, and ``vigil serve`` of explicit model URIs).

    Parameters
    ----------
    models
        Served models, or bundles (named, or keyed by name in a mapping).
    aliases
        ``{name: {alias: version}}``; a name's ``default_alias`` (from settings) is what a
        request without a selector gets, else its newest version.
    """

    def __init__(
        self,
        models: Iterable[ServedModel | LoadedBundle] | Mapping[str, LoadedBundle],
        *,
        aliases: Mapping[str, Mapping[str, int]] | None = None,
        settings: ServingSettings | None = None,
    ) -> None:
        self.settings = settings or load_serving_settings()
        self._versions: dict[str, dict[int, ServedModel]] = {}
        items: Iterable[Any] = models.items() if isinstance(models, dict) else models
        for entry in items:
            if isinstance(entry, tuple):
                served = ServedModel(entry[1], name=entry[0], settings=self.settings)
            elif isinstance(entry, ServedModel):
                served = entry
            else:
                served = ServedModel(entry, settings=self.settings)
            self._versions.setdefault(served.name, {})[served.version] = served
        self._aliases = {name: dict(table) for name, table in (aliases or {}).items()}
        self._ready = False
        self.generation = 0
        """Bumped whenever a name, alias or version may resolve to another served model
        (the experiment router's cache of each variant's model is valid for one value)."""

    @property
    def ready(self) -> bool:
        return self._ready

    def get(self, name: str, selector: str | None = None) -> ServedModel:
        versions = self._versions.get(name)
        if versions is None:
            check_model_name(name)
            raise ModelNotFoundError(
                f"no model named {name!r} is served here; GET /v1/models lists the served models",
                detail={"model": name},
            )
        if selector is None:
            default = self._aliases.get(name, {}).get(self.settings.default_alias)
            return versions[default if default in versions else max(versions)]
        if selector.startswith("@"):
            version = self._aliases.get(name, {}).get(selector[1:])
            if version is None or version not in versions:
                raise AliasNotFoundError(
                    f"model {name!r} has no alias {selector[1:]!r} here; "
                    f"known aliases: {sorted(self._aliases.get(name, {}))}",
                    detail={"model": name, "alias": selector[1:]},
                )
            return versions[version]
        number = version_number(selector)
        served = versions.get(number) if number is not None else None
        if served is None:
            raise VersionNotFoundError(
                f"model {name!r} has no version {selector[:20]!r} here; "
                f"served versions: {sorted(versions)}",
                detail={"model": name, "version": selector[:20]},
            )
        return served

    def list(self) -> list[ServedModel]:
        return [
            m for name in sorted(self._versions) for _, m in sorted(self._versions[name].items())
        ]

    def versions(self, name: str) -> builtins.list[int]:
        """Version numbers served under ``name`` (404 when none)."""
        self.get(name)
        return sorted(self._versions[name])

    async def start(self) -> None:
        for served in self.list():
            await served.start()
        self._ready = True

    async def stop(self) -> None:
        self._ready = False
        for served in self.list():
            await served.stop()

    async def swap(self, served: ServedModel, *, alias: str | None = None) -> ServedModel | None:
        """Serve ``served`` in place of the same name+version (or point ``alias`` at it).

        The new version is warmed before any request can reach it; the replaced one (if
        any) drains its queue before it stops. Returns the replaced model.
        """
        await served.start()
        table = dict(self._versions.get(served.name, {}))
        old = table.get(served.version)
        table[served.version] = served
        self._versions[served.name] = table  # one reference swap: readers see old or new
        if alias is not None:
            self._aliases.setdefault(served.name, {})[alias] = served.version
        self.generation += 1
        if old is not None and old is not served:
            await old.stop()
        return old
