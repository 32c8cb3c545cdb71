"""Serve what the registry's aliases point to, and follow them when they move.

:class:`RegistryProvider` serves, for each model, the version its serving alias
(``production`` unless told otherwise) points to, or the explicit ``models:/`` URIs it is
given (``models:/NAME@ALIAS`` follows the alias, ``models:/NAME/3`` stays on version 3).

A background task reads :meth:`~vigil.registry.registry.Registry.alias_table` (one cheap
query) every ``poll_interval`` seconds. When a followed alias has moved (``vigil alias
set``, ``vigil rollback``, the Python API or the admin REST API), the new version is loaded
and warmed off the event loop, then the alias is switched in one step between two
requests, then the old version drains its queue and stops. No request fails during a
move, and every worker process converges within one poll interval plus the load time.

A provider serving every registered model (no explicit URIs) also serves a model that
gets its serving alias while it runs (registered with ``--alias production``, or given the
alias later), loaded and warmed before its first request, as if it had existed at start;
a server started with nothing to serve says so and keeps polling.

Experiment endpoints add what their variants name through :meth:`RegistryProvider.ensure`
(the endpoint router calls it before an endpoint takes traffic): pinned versions are loaded
and warmed, and aliases are followed like the serving aliases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vigil.errors import AliasNotFoundError, ConfigurationError
from vigil.monitor.points import PROBABILITY_MEASURES, performance_measure
from vigil.serving.config import ServingSettings
from vigil.serving.provider import ServedModel, StaticProvider
from vigil.uri import parse_model_ref

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from vigil.services import Services

log = logging.getLogger("vigil.serving")

MODELS_ENV = "VIGIL_WORKER_MODELS"
"""A JSON list of the ``models:/`` URIs a ``vigil serve`` worker serves (empty: every
registered model's serving alias); read by :func:`vigil.app.serving_app_from_environment`."""
ALIASES_ENV = "VIGIL_WORKER_ALIASES"
"""A JSON object ``{model: alias}`` overriding the serving alias per model."""
POLL_ENV = "VIGIL_WORKER_POLL_INTERVAL"
"""Seconds between two reads of the alias table."""


@dataclass(frozen=True)
class Target:
    """One thing to serve: a model and either the alias to follow or a pinned version."""

    name: str
    alias: str | None = None
    version: int | None = None


def targets_from(uris: Sequence[str]) -> list[Target]:
    """Targets of ``models:/`` URIs.

    >>> targets_from(["models:/churn@production", "models:/fraud/3"])
    [Target(name='churn', alias='production', version=None), Target(name='fraud', alias=None, version=3)]
    """
    found: list[Target] = []
    for uri in uris:
        ref = parse_model_ref(uri)
        if ref.alias is None and ref.version is None:
            raise ConfigurationError(
                f"{uri!r} names neither a version nor an alias; "
                "write models:/NAME/VERSION or models:/NAME@ALIAS"
            )
        found.append(Target(ref.name, ref.alias, ref.version))
    return found


class RegistryProvider(StaticProvider):
    """A :class:`~vigil.serving.provider.ModelProvider` over ``vigil.registry``.

    Parameters
    ----------
    vigil
        The installation whose registry and artifact store hold the models (the
        composition root, :class:`vigil.app.Vigil`, builds the provider of ``vigil serve``:
        :meth:`~vigil.app.Vigil.serving_provider`).
    uris
        Explicit ``models:/`` URIs; default: every registered model's serving alias.
    aliases
        ``{model: alias}`` overriding the serving alias (``settings.default_alias``) per
        model when serving every registered model.
    poll_interval
        Seconds between two reads of the alias table (``0`` turns following off).
    """

    def __init__(
        self,
        app: Services,
        *,
        uris: Sequence[str] = (),
        aliases: Mapping[str, str] | None = None,
        poll_interval: float = 1.0,
        settings: ServingSettings | None = None,
        admit: Callable[[str, Mapping[str, Any]], None] | None = None,
    ) -> None:
        super().__init__([], settings=settings)
        self.admit = admit
        """Called with a version's name and manifest before it is loaded; raises to refuse
        it (the composition root passes the capture settings' personal-data check)."""
        self.vigil = app
        self.uris = list(uris)
        self.serving_aliases = dict(aliases or {})
        self.poll_interval = poll_interval
        self.targets: list[Target] = []
        self._poller: asyncio.Task[None] | None = None
        # Loading and moving are serialised: the poller and ensure() never load the same
        # version twice or switch an alias while the other is half-way.
        self._changing = asyncio.Lock()
        self.moves = 0
        """Alias moves applied since start (for tests and the log)."""
        self.polls = 0
        """Reads of the alias table applied since start (for tests)."""
        self._unloadable: set[tuple[str, int]] = set()

    def _discover(self) -> list[Target]:
        if self.uris:
            return targets_from(self.uris)
        table = self.vigil.registry.alias_table()
        found = []
        for model in self.vigil.registry.list_models():
            alias = self.serving_aliases.get(model.name, self.settings.default_alias)
            if (model.name, alias) in table:
                found.append(Target(model.name, alias=alias))
            else:
                log.warning(
                    "model %s has no alias %r: not served (set it with `vigil alias set`)",
                    model.name,
                    alias,
                )
        return found

    def _load(self, name: str, version: int) -> ServedModel:
        # Serving never reads the reference rows (monitoring reads them from the bundle).
        mv = self.vigil.registry.get_version(name, version)
        if self.admit is not None:
            self.admit(name, mv.manifest)
        bundle = self.vigil.load(f"models:/{name}/{version}", sample=False)
        registered = mv.metrics or {}
        return ServedModel(
            bundle,
            name=name,
            version=version,
            settings=self.settings,
            capture_proba=(
                any(performance_measure(m) in PROBABILITY_MEASURES for m in registered)
                # labelled reference data: performance is estimated before labels arrive
                or (bundle.profile is not None and bundle.profile.target_name is not None)
            ),
            digest=mv.sha256,
        )

    async def _serve_version(self, name: str, version: int) -> None:
        """Load and warm ``name`` version ``version`` unless it is served already."""
        if version in self._versions.get(name, {}):
            return
        loop = asyncio.get_running_loop()
        served = await loop.run_in_executor(None, self._load, name, version)
        await served.start()
        # A new table rather than an in-place insert: readers always see a whole table.
        self._versions[name] = {**self._versions.get(name, {}), version: served}
        self.generation += 1

    async def _add_targets(
        self, targets: Sequence[Target], table: Mapping[tuple[str, str], int]
    ) -> None:
        for target in targets:
            version = target.version
            if version is None:
                assert target.alias is not None
                version = table.get((target.name, target.alias))
                if version is None:
                    raise AliasNotFoundError(
                        f"model {target.name!r} has no alias {target.alias!r}; set it with "
                        f"`vigil alias set {target.name} {target.alias} VERSION`",
                        detail={"model": target.name, "alias": target.alias},
                    )
            await self._serve_version(target.name, version)
            if target.alias is not None:
                self._aliases[target.name] = {
                    **self._aliases.get(target.name, {}),
                    target.alias: version,
                }
                self.generation += 1
            if target not in self.targets:
                self.targets.append(target)

    def _follow(self) -> None:
        # Serving every registered model, the poller also looks for new ones: it runs even
        # when nothing is served yet.
        follows = not self.uris or any(t.alias for t in self.targets)
        if self._poller is None and self.poll_interval > 0 and follows:
            self._poller = asyncio.create_task(self._poll(), name="vigil-alias-poller")

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        targets = await loop.run_in_executor(None, self._discover)
        table = await loop.run_in_executor(None, self.vigil.registry.alias_table)
        async with self._changing:
            try:
                await self._add_targets(targets, table)
            except AliasNotFoundError as exc:
                raise ConfigurationError(exc.message) from exc
        self._ready = True
        if not self.targets:
            log.warning("%s", self.empty_warning())
        self._follow()

    def empty_warning(self) -> str:
        """What an empty server tells its operator."""
        alias = self.settings.default_alias
        picked = (
            "it is picked up within a second or so, without a restart"
            if self.poll_interval > 0 and not self.uris
            else "then restart the server"
        )
        return (
            f"no model to serve: register one with `vigil register NAME MODEL_FILE "
            f"--reference DATA --alias {alias}` (or `vigil alias set NAME {alias} VERSION`); "
            f"{picked}"
        )

    async def ensure(self, uris: Sequence[str]) -> None:
        """Serve the models ``uris`` name too, loaded and warmed before this returns.

        Pinned versions (``models:/NAME/3``) stay; aliases (``models:/NAME@ALIAS``) are
        followed as they move. An unknown model, version or alias raises its
        :class:`~vigil.errors.NotFoundError` and nothing of that URI is served.
        """
        wanted = [t for t in targets_from(uris) if t not in self.targets]
        if not wanted:
            return
        loop = asyncio.get_running_loop()
        async with self._changing:
            table = await loop.run_in_executor(None, self.vigil.registry.alias_table)
            await self._add_targets(wanted, table)
        self._follow()

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        await super().stop()

    def get(self, name: str, selector: str | None = None) -> ServedModel:
        if selector is None:
            followed = self._aliases.get(name)
            if followed:
                alias = self.serving_aliases.get(name, self.settings.default_alias)
                selector = f"@{alias if alias in followed else next(iter(followed))}"
        return super().get(name, selector)

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                table = await loop.run_in_executor(None, self.vigil.registry.alias_table)
                async with self._changing:
                    await self._apply(table)
                    if not self.uris:
                        await self._serve_new(table)
                self.polls += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                # A registry hiccup must not stop the server; the next poll retries.
                log.exception("following the registry aliases failed; retrying at the next poll")

    async def _apply(self, table: Mapping[tuple[str, str], int]) -> None:
        for target in list(self.targets):
            if target.alias is None:
                continue
            wanted = table.get((target.name, target.alias))
            current = self._aliases.get(target.name, {}).get(target.alias)
            if wanted is None:
                if current is not None:
                    log.warning(
                        "alias %s@%s was deleted; still serving version %s",
                        target.name,
                        target.alias,
                        current,
                    )
                continue
            if wanted != current:
                await self.move(target.name, target.alias, wanted)

    async def _serve_new(self, table: Mapping[tuple[str, str], int]) -> None:
        """Serve the models that got their serving alias since the last poll."""
        followed = {t.name for t in self.targets}
        for (name, alias), version in sorted(table.items()):
            serving_alias = self.serving_aliases.get(name, self.settings.default_alias)
            if name in followed or alias != serving_alias or (name, version) in self._unloadable:
                continue
            try:
                await self._add_targets([Target(name, alias=alias)], table)
            except Exception:
                # One model that cannot load must not keep the others from being served,
                # nor fill the log at every poll: it is tried again when its alias moves.
                self._unloadable.add((name, version))
                log.exception(
                    "cannot serve new model %s@%s (version %d); point the alias at another "
                    "version to try again",
                    name,
                    alias,
                    version,
                )
                continue
            log.warning("now serving new model %s@%s (version %d)", name, alias, version)

    async def move(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of ``name`` at ``version``: load and warm, switch, drain the old."""
        loop = asyncio.get_running_loop()
        versions = self._versions.get(name, {})
        served = versions.get(version)
        if served is None:
            served = await loop.run_in_executor(None, self._load, name, version)
            await served.start()
        old = self._aliases.get(name, {}).get(alias)
        # The switch: no await between these statements, so a request sees old or new.
        table = dict(self._versions.get(name, {}))
        table[version] = served
        aliases = {**self._aliases.get(name, {}), alias: version}
        pinned = {t.version for t in self.targets if t.name == name and t.version is not None}
        retired = None
        if old is not None and old != version and old not in {*aliases.values(), *pinned}:
            retired = table.pop(old, None)
        self._versions[name] = table
        self._aliases[name] = aliases
        self.generation += 1
        self.moves += 1
        log.warning("%s@%s now serves version %d (was %s)", name, alias, version, old)
        if retired is not None:
            await retired.stop()
