"""The one composition root: settings → stores → registry → every long-lived object.

The CLI, the Python API (:func:`vigil.register`, :func:`vigil.load`), the server, the demo
and the tests all build their objects here, so there is exactly one place that decides
which database, which store, which actor and which settings of each subsystem are in use.
Each subsystem's settings are read once, here, the same way (``VIGIL_<SUBSYSTEM>_*``, then
its section of ``vigil.yaml``; a bad value is one :class:`~vigil.errors.ConfigurationError`
naming the variable), and the subsystems take what they need as parameters or as a
:class:`~vigil.services.Services` (which :class:`Vigil` satisfies), never by importing
this module.

Imports of the subsystems are inside the methods that build them: every CLI command and
``import vigil`` import this module, and each pays only for what it uses.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vigil.errors import ConfigurationError, ReferenceDataError
from vigil.settings import Settings, build_settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

    from vigil.auth.authenticator import Authenticator
    from vigil.bundle.model import LoadedBundle
    from vigil.bundle.trust import TrustPolicy
    from vigil.capture.compactor import Compactor
    from vigil.capture.crypt import LogCodec
    from vigil.capture.rekey import Rekeyed
    from vigil.capture.settings import CaptureSettings
    from vigil.capture.sink import CaptureSink
    from vigil.experiments.state import PolicyStateStore
    from vigil.feedback.erase import Erasure
    from vigil.feedback.store import FeedbackStore
    from vigil.monitor.scheduler import MonitorScheduler
    from vigil.monitor.settings import MonitorSettings
    from vigil.policy.scheduler import PolicyScheduler
    from vigil.policy.settings import PolicySettings
    from vigil.registry.registry import ModelVersion, Registry
    from vigil.serving.app import ServingApp
    from vigil.serving.cache import PredictionCache
    from vigil.serving.capture_runtime import CaptureRuntime
    from vigil.serving.config import ServingSettings
    from vigil.serving.endpoints import EndpointRouter
    from vigil.serving.executors import Executors
    from vigil.serving.provider import ModelProvider, ServedModel
    from vigil.serving.readiness import Readiness
    from vigil.serving.registry_provider import RegistryProvider
    from vigil.storage.artifacts import ArtifactStore
    from vigil.storage.sql import Database
    from vigil.ui.settings import ConsoleSettings

Progress = Callable[[int, int | None], None]


class Vigil:
    """Everything vigil needs, built lazily from one :class:`Settings`.

    >>> import tempfile, pathlib
    >>> v = Vigil(load_settings(home=pathlib.Path(tempfile.mkdtemp())))
    >>> v.settings.resolved_database_url.startswith("sqlite:///")
    True
    >>> v.capture_dir == v.settings.home / "capture"
    True
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else load_settings()

    # -- stores --------------------------------------------------------------------------

    @cached_property
    def database(self) -> Database:
        from vigil.storage.sql import Database  # SQLAlchemy: only for commands that use it

        home = self.settings.home
        if self.settings.database_url is None:
            home.mkdir(parents=True, exist_ok=True)
        # Migrates on first use, or refuses an outdated schema (VIGIL_DATABASE_MIGRATE).
        return Database(self.settings.resolved_database_url, migrate=self.settings.database_migrate)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        from vigil.storage.artifacts import ArtifactStore  # fsspec: only when used

        store = ArtifactStore.from_settings(self.settings)
        store.log_codec = self.log_codec
        return store

    @cached_property
    def log_codec(self) -> LogCodec | None:
        """The inference log's one codec (``VIGIL_CAPTURE_ENCRYPTION_KEY_FILE``, keys read
        and checked here), handed to its writers and, through :attr:`artifacts`, to every
        reader; ``None`` when the log is plain."""
        return self.capture_settings.codec()

    @cached_property
    def registry(self) -> Registry:
        # SQLAlchemy: only when used
        from vigil.experiments.references import endpoint_references
        from vigil.registry.registry import Registry

        return Registry(
            self.database,
            self.artifacts,
            actor=self.settings.resolved_actor,
            endpoint_references=endpoint_references,
        )

    @property
    def cache_dir(self) -> Path:
        return self.settings.bundle_cache_dir

    def private_tempdir(self, prefix: str) -> Path:
        """A private (0700) scratch directory under the home, removed by the caller."""
        root = self.settings.home / "tmp"
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=root))

    # -- the subsystems' settings ----------------------------------------------------------

    @cached_property
    def serving_settings(self) -> ServingSettings:
        """``VIGIL_SERVE_*`` and the ``serve:`` section."""
        from vigil.serving.config import ServingSettings  # each subsystem on first use

        return build_settings(ServingSettings)

    @cached_property
    def capture_settings(self) -> CaptureSettings:
        """``VIGIL_CAPTURE_*`` and the ``capture:`` section."""
        from vigil.capture.settings import CaptureSettings  # each subsystem on first use

        return build_settings(CaptureSettings)

    @cached_property
    def monitor_settings(self) -> MonitorSettings:
        """``VIGIL_MONITOR_*`` and the ``monitor:`` section."""
        from vigil.monitor.settings import MonitorSettings  # each subsystem on first use

        return build_settings(MonitorSettings)

    @cached_property
    def policy_settings(self) -> PolicySettings:
        """``VIGIL_POLICY_*`` and the ``policy:`` section."""
        from vigil.policy.settings import PolicySettings  # each subsystem on first use

        return build_settings(PolicySettings)

    @cached_property
    def console_settings(self) -> ConsoleSettings:
        """``VIGIL_UI_*`` and the ``ui:`` section (the web console)."""
        from vigil.ui.settings import ConsoleSettings  # each subsystem on first use

        return build_settings(ConsoleSettings)

    @property
    def policy_dir(self) -> Path:
        """Where policy runs keep their exports and job logs (``VIGIL_POLICY_DIR``)."""
        return self.policy_settings.resolved_dir(self.settings.home)

    # -- capture, feedback and experiment state -----------------------------------------

    @property
    def capture_dir(self) -> Path:
        """The live capture segments' directory (``VIGIL_CAPTURE_DIR``, default
        ``<home>/capture``): where the server writes and every reader reads."""
        return self.capture_settings.resolved_dir(self.settings.home)

    def feedback_store(self, *, capture: Path | None = None) -> FeedbackStore:
        """A feedback store over this home's feedback log, matched against the capture log
        (``capture`` overrides its directory); the caller closes it."""
        from vigil.feedback.store import FeedbackStore  # PyArrow: only when used

        settings = self.capture_settings
        if capture is not None:
            settings = settings.model_copy(update={"dir": capture})
        return FeedbackStore.from_settings(settings, self.settings.home, self.artifacts)

    def erase_subject(
        self, where: Mapping[str, str], *, wait: float | None = None, actor: str | None = None
    ) -> Erasure:
        """Remove the captured predictions ``where`` names (``FIELD=VALUE``, all holding;
        hashed fields matched through ``VIGIL_CAPTURE_HASH_KEY``) and their feedback from
        the segments and the compacted partitions, and audit it (fields and counts, never
        the values). Running servers are first asked to close their live segments, waited
        for at most ``wait`` seconds (default: two compaction intervals and 5 s). ``actor``
        (default ``VIGIL_ACTOR``) is who the audit names. See :mod:`vigil.feedback.erase`."""
        from vigil.audit import record_audit  # only when erasing
        from vigil.capture.masking import Masker
        from vigil.feedback.erase import erase_subject

        settings = self.capture_settings
        key = settings.hash_key.get_secret_value() if settings.hash_key else None
        done = erase_subject(
            where,
            capture_dir=self.capture_dir,
            feedback_dir=settings.resolved_feedback_dir(self.settings.home),
            store=self.artifacts,
            masker=Masker(settings.mask, hash_key=key),
            wait=2 * settings.compact_interval_s + 5 if wait is None else wait,
            derived=self._forget_summaries,
        )
        with self.database.session(write=True) as session:
            record_audit(
                session,
                actor=actor or self.settings.resolved_actor,
                action="capture.erase",
                entity_type="capture",
                entity_name="inference log",
                after=done.audit(),
            )
        return done

    def rekey_log(self, *, wait: float | None = None, actor: str | None = None) -> Rekeyed:
        """Rewrite every file of the capture and feedback logs and every window summary
        not under the key file's first key (see :mod:`vigil.capture.rekey`), and audit it
        (the key id and the counts). Running servers are first asked to close their live
        segments, waited for at most ``wait`` seconds (default: two compaction intervals
        and 5 s); those still open are in :attr:`Rekeyed.live`."""
        from vigil.audit import record_audit  # only when rekeying
        from vigil.capture.compact import CAPTURE_ROOT
        from vigil.capture.erase import compaction_lock, request_rotation, wait_for_rotation
        from vigil.capture.rekey import Rekeyed, rekey_files
        from vigil.capture.rekey import rekey_log as rekey
        from vigil.feedback.store import FEEDBACK_ROOT
        from vigil.monitor.summaries.store import SUMMARY_ROOT

        codec = self.log_codec
        if codec is None:
            raise ConfigurationError("set VIGIL_CAPTURE_ENCRYPTION_KEY_FILE to the key file")
        settings = self.capture_settings
        feedback_dir = settings.resolved_feedback_dir(self.settings.home)
        live = request_rotation(self.capture_dir) + sorted(feedback_dir.glob("*.open"))
        wait_for_rotation(live, 2 * settings.compact_interval_s + 5 if wait is None else wait)
        store = self.artifacts
        with compaction_lock(self.capture_dir):
            parts = [
                rekey(self.capture_dir, "capture", store, CAPTURE_ROOT, codec),
                rekey(feedback_dir, "feedback", store, FEEDBACK_ROOT, codec),
                # The monitor's window summaries hold feature values (frequencies, sketches).
                rekey_files(store, SUMMARY_ROOT, codec, suffix=".summary"),
            ]
        done = Rekeyed(
            [f for p in parts for f in p.rewritten],
            sum(p.current for p in parts),
            [f for p in parts for f in p.live],
        )
        with self.database.session(write=True) as session:
            record_audit(
                session,
                actor=actor or self.settings.resolved_actor,
                action="capture.rekey",
                entity_type="capture",
                entity_name="inference log",
                after={
                    "key_id": codec.keys.primary if codec.encrypt else None,
                    "rewritten": len(done.rewritten),
                    "current": done.current,
                    "left_in_live_segments": len(done.live),
                },
            )
        return done

    def _forget_summaries(self, files: list[str]) -> None:
        """Delete the monitor's stored summaries of the capture parts in ``files`` (they
        count the erased rows, and may hold their values as categories); the next read
        builds them again from the rewritten parts."""
        import posixpath

        from vigil.capture.chain import store_keys  # only when erasing
        from vigil.monitor.summaries.store import summary_key

        for part in files:
            if not (part.startswith("capture/") and part.endswith(".parquet")):
                continue
            stem = summary_key(part).rsplit(".", 2)[0]
            for key in store_keys(self.artifacts, posixpath.dirname(stem)):
                if key.startswith(stem + "."):
                    self.artifacts.fs.rm(self.artifacts.resolve_key(key))

    def capture_runtime(self) -> CaptureRuntime | None:
        """The inference log of one serving worker (``None`` when capture is off)."""
        from vigil.serving.capture_runtime import CaptureRuntime  # serving: only to serve

        settings = self.capture_settings
        root = None
        # A store in this process's memory is not one a child process could write to.
        if (
            settings.compact_isolation == "process"
            and not self.settings.resolved_artifact_url.startswith("memory:")
        ):
            # Compaction never masks: the masking rules and their key stay in the worker;
            # and the child's compactor runs its pass itself.
            child = settings.model_copy(
                update={"mask": {}, "hash_key": None, "compact_isolation": "thread"}
            )
            root = functools.partial(compaction_root, self.settings, child)
        return CaptureRuntime.from_settings(
            settings,
            home=self.settings.home,
            store=self.artifacts,
            codec=self.log_codec,
            compaction_root=root,
        )

    def policy_state(self) -> PolicyStateStore:
        """A new handle on the experiments' shared policy state: Redis when
        ``VIGIL_REDIS_URL`` is set, else the SQL database. The caller owns it."""
        from vigil.experiments.state import RedisPolicyState, SqlPolicyState  # on first use

        if self.settings.redis_url:
            return RedisPolicyState(self.settings.redis_url)
        return SqlPolicyState(self.database)

    # -- the server -------------------------------------------------------------------------

    def serving_provider(
        self,
        *,
        uris: list[str] | tuple[str, ...] = (),
        aliases: Mapping[str, str] | None = None,
        poll_interval: float = 1.0,
    ) -> RegistryProvider:
        """The registered models to serve: ``uris``, or every model's serving alias (see
        :class:`~vigil.serving.registry_provider.RegistryProvider`)."""
        from vigil.serving.registry_provider import RegistryProvider  # serving: only to serve

        capture = self.capture_settings
        return RegistryProvider(
            self,
            uris=uris,
            aliases=aliases,
            poll_interval=poll_interval,
            settings=self.serving_settings,
            admit=(lambda name, manifest: capture.check_masked(name, manifest.get("personal_data")))
            if capture.enabled and capture.require_masking
            else None,
        )

    def authenticator(self, *, ttl: float, executors: Executors) -> Authenticator:
        """API-key checks against this database, cached ``ttl`` seconds, reading the
        database on the key-check pool of ``executors``."""
        from vigil.auth.authenticator import Authenticator  # serving: only to serve
        from vigil.auth.keys import KeyStore

        return Authenticator(KeyStore.from_vigil(self), ttl=ttl, executor=executors.auth)

    def endpoint_router(self, provider: RegistryProvider, **options: Any) -> EndpointRouter:
        """The experiment endpoints' router of one worker serving ``provider`` (``options``
        as :class:`~vigil.serving.endpoints.EndpointRouter`'s)."""
        from vigil.serving.endpoints import EndpointRouter  # serving: only to serve

        return EndpointRouter(self, provider, self.policy_state(), **options)

    def monitor_scheduler(self) -> MonitorScheduler | None:
        """Scheduled monitoring inside a server (``None`` when ``VIGIL_MONITOR_ENABLED`` is
        off or the interval is 0); the server's lifespan starts and stops it."""
        settings = self.monitor_settings
        if not settings.enabled or settings.interval_s <= 0:
            return None
        # only when monitoring is on
        from vigil.monitor.scheduler import MonitorScheduler, compaction_lag_warning

        capture = self.capture_settings
        if capture.enabled and not self.settings.resolved_database_url.startswith("sqlite"):
            # A shared database may mean several replicas, each compacting its own log.
            warning = compaction_lag_warning(
                settings.grace_s, capture.segment_seconds, capture.compact_interval_s
            )
            if warning is not None:
                import logging

                logging.getLogger("vigil.monitor").warning(warning)
        root = None
        # A database in this process's memory is not one a child process could open.
        if (
            settings.isolation == "process"
            and ":memory:" not in self.settings.resolved_database_url
        ):
            root = functools.partial(monitoring_root, self.settings, capture, settings)
        return MonitorScheduler(self, settings, cycle_root=root)

    def policy_scheduler(self) -> PolicyScheduler | None:
        """The update policies' loop inside a server (``None`` when
        ``VIGIL_POLICY_ENABLED`` is off or the interval is 0)."""
        settings = self.policy_settings
        if not settings.enabled or settings.interval_s <= 0:
            return None
        from vigil.policy.scheduler import PolicyScheduler  # only when policies are on

        return PolicyScheduler(self, settings)

    def readiness(self, settings: ServingSettings) -> Readiness:
        """The dependency checks behind ``/readyz`` that ``settings`` ask for: the
        database, the artifact store, and Redis when ``VIGIL_REDIS_URL`` is set."""
        from vigil.serving.readiness import Check, Readiness, redis_check  # only to serve

        wanted = settings.readiness_checks
        checks: dict[str, Check] = {}
        if "database" in wanted:
            checks["database"] = self.database.ping
        if "store" in wanted:
            checks["store"] = self.artifacts.ping
        if "redis" in wanted and self.settings.redis_url:
            checks["redis"] = redis_check(self.settings.redis_url, settings.readiness_timeout)
        return Readiness(
            checks,
            interval=settings.readiness_interval,
            timeout=settings.readiness_timeout,
            grace=settings.readiness_grace,
        )

    def prediction_cache(self, settings: ServingSettings) -> PredictionCache | None:
        """The Redis prediction cache of one serving worker when ``settings.cache`` names a
        model (``None`` otherwise); refuses to start without ``VIGIL_REDIS_URL``."""
        if not settings.cache:
            return None
        if not self.settings.redis_url:
            raise ConfigurationError(
                f"the prediction cache is on for {', '.join(sorted(settings.cache))} "
                "(serve: cache:) but VIGIL_REDIS_URL is not set; set it to a Redis "
                "(redis://host:6379/0) or remove the cache section"
            )
        from vigil.serving.cache import PredictionCache  # serving: only to serve

        return PredictionCache(self.settings.redis_url, timeout=settings.cache_timeout_ms / 1000.0)

    def serving_app(
        self,
        provider: ModelProvider | None = None,
        *,
        capture: CaptureRuntime | CaptureSink | Literal["auto"] | None = "auto",
        endpoints: EndpointRouter | Literal["auto"] | None = "auto",
    ) -> ServingApp:
        """The server of this installation, as ``vigil serve`` runs it in every worker:
        ``provider``'s models (default: :meth:`serving_provider`), the inference log
        (``"auto"``: :meth:`capture_runtime`), API keys when ``VIGIL_SERVE_AUTH`` is on,
        the experiment endpoints of a registry-backed provider (``"auto"``:
        :meth:`endpoint_router`), scheduled monitoring, the admin API, and for a
        registry-backed provider the update policies' admin API and loop
        (:meth:`policy_scheduler`).
        """
        # serving: only to serve
        from vigil.serving.app import create_app
        from vigil.serving.executors import Executors
        from vigil.serving.explaining import Explanations
        from vigil.serving.provider import StaticProvider
        from vigil.serving.registry_provider import RegistryProvider

        if provider is None:
            provider = self.serving_provider()
        settings = (
            provider.settings if isinstance(provider, StaticProvider) else self.serving_settings
        )
        executors = Executors.create()  # shut down by the data plane when the app stops
        authenticator = None
        if settings.auth == "on":
            authenticator = self.authenticator(ttl=settings.auth_cache_seconds, executors=executors)
        if endpoints == "auto":
            endpoints = None
            if isinstance(provider, RegistryProvider):
                endpoints = self.endpoint_router(provider)
        routes: list[Any] = []
        background: list[Any] = []
        if isinstance(provider, RegistryProvider):
            # The update policies sit above serving: their admin API and loop come from here.
            from vigil.policy.routes import ROUTES as POLICY_ROUTES

            routes += POLICY_ROUTES
            if self.console_settings.enabled:
                # The web console sits above serving too: its pages come from here.
                from vigil.ui.routes import console_routes

                routes += console_routes(self.console_settings)
            scheduler = self.policy_scheduler()
            if scheduler is not None:
                background.append(scheduler)
        return create_app(
            provider,
            settings,
            capture=self.capture_runtime() if capture == "auto" else capture,
            authenticator=authenticator,
            endpoints=endpoints,
            monitor=self.monitor_scheduler(),
            services=self,
            executors=executors,
            readiness=self.readiness(settings),
            routes=routes,
            background=background,
            cache=self.prediction_cache(settings),
            explanations=Explanations(reference_sample=self.reference_sample),
        )

    def reference_sample(self, served: ServedModel) -> pd.DataFrame | None:
        """The stored reference rows of a served registered version (its inputs), or
        ``None``: serving loads bundles without them, explaining a model without an exact
        explainer needs them."""
        from vigil.bundle.bundle import read_profile  # only when such a model is explained
        from vigil.explain.explainers import reference_frame

        mv = self.registry.get_version(served.name, served.version)
        profile = read_profile(self.registry.fetch_bundle(mv, self.cache_dir))
        if profile is None:
            return None
        return reference_frame(profile.sample, [f.name for f in served.signature.inputs])

    # -- the lifecycle -------------------------------------------------------------------

    def register(
        self,
        model: Any,
        *,
        name: str,
        reference: pd.DataFrame | str | os.PathLike[str] | None = None,
        target: str | None = None,
        alias: str | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        description: str | None = None,
        flavor: str | None = None,
        trust: TrustPolicy | None = None,
        progress: Progress | None = None,
        candidate_for: str | None = None,
        card: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Package ``model`` (an estimator object or a model file/MLflow directory) with its
        signature and the baseline profile of ``reference``, and register it as a new,
        immutable version of ``name``.

        A live estimator object is trusted implicitly (the caller is holding it); a file
        is trusted only as ``trust`` says. The trust granted here is recorded in the
        registry's metadata (not in the artifact), bound to the artifact's SHA-256, so
        loading the version later needs no flags.

        ``card`` holds the facts of the version's model card (``vigil card``): any of
        ``purpose``, ``owner``, ``intended_use``, ``limitations`` as text; edit them later
        with :meth:`vigil.registry.Registry.update_card` (audited).

        ``candidate_for`` (the model's name) hands the new version to the run of that
        model's update policy waiting for its retraining job (``VIGIL_POLICY_RUN_ID``, set
        for the job, names the run): the run resumes with its validation gate.
        """
        # the model stack: only for the commands that register
        from vigil.bundle.bundle import build_bundle
        from vigil.bundle.trust import TrustPolicy
        from vigil.names import check_alias, check_model_name, check_tag_key
        from vigil.registry import check_card
        from vigil.registry.lineage import git_commit

        check_model_name(name)
        if alias is not None:
            check_alias(alias)
        if candidate_for is not None:
            self._check_candidate(name, candidate_for, alias)
        for key in {**(tags or {}), **(metrics or {})}:
            check_tag_key(key)
        check_card(dict(card or {}))  # before the model is packaged and profiled
        trust = (trust or TrustPolicy()).within(self.settings.max_unpacked_model_bytes)
        # host, vigil version and the git commit of the working directory are added by the
        # registry; here: what only this call knows.
        lineage: dict[str, Any] = {"python": platform.python_version()}
        from_object = not isinstance(model, str | os.PathLike)
        if not from_object:
            source = Path(model).expanduser()
            if not source.exists():
                raise ReferenceDataError(f"model file {str(source)!r} does not exist")
            lineage["source"] = str(source.resolve())  # its digest comes from the bundle
            lineage["git_commit"] = git_commit(source.resolve().parent)
        else:
            lineage.update(source=f"<in-memory {type(model).__module__}.{type(model).__name__}>")
        if isinstance(reference, str | os.PathLike):
            ref_path = Path(reference).expanduser()
            if not ref_path.is_file():
                raise ReferenceDataError(
                    f"reference data {str(ref_path)!r} does not exist; pass a CSV or Parquet file"
                )
            lineage["reference"] = str(ref_path.resolve())  # its digest comes from the bundle
            reference = ref_path
        elif reference is not None:
            lineage["reference"] = "<in-memory DataFrame>"

        scratch = self.private_tempdir("register-")
        try:
            bundle_dir = scratch / "bundle"
            manifest = build_bundle(
                model,
                bundle_dir,
                flavor=flavor,
                reference=reference,
                target=target,
                trust=trust,
                progress=progress,
            )
            approved = set(trust.trusted_types)
            if from_object:
                # The caller handed us the live object: the types skops needs to rebuild it
                # are the ones that object is made of, so they are approved by this call.
                approved |= set(manifest.required_trusted_types)
            lineage["trust"] = {
                "pickle": bool(trust.trust_pickle),
                "types": sorted(approved),
            }
            if not from_object and manifest.source.sha256:
                lineage["source_sha256"] = manifest.source.sha256
            # Global importance, stored in the manifest (the registry keeps it with the
            # version): loaded under the trust this call grants.
            from vigil.explain.importance import record_importance

            record_importance(bundle_dir, dataclasses.replace(trust, trusted_types=tuple(approved)))
            ref_source = manifest.reference.source if manifest.reference else None
            if ref_source is not None and ref_source.sha256:
                lineage["reference_sha256"] = ref_source.sha256
            mv = self.registry.register_version(
                name,
                bundle_dir,
                description=description,
                tags=dict(tags or {}),
                metrics={k: float(v) for k, v in (metrics or {}).items()},
                lineage=lineage,
                alias=alias,
                card=dict(card or {}),
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if candidate_for is not None:
            from vigil.policy.runs import RunStore  # only for a retraining job's candidate

            RunStore(self.database).attach_candidate(
                name,
                mv.version,
                actor=self.settings.resolved_actor,
                run_id=os.environ.get("VIGIL_POLICY_RUN_ID") or None,
            )
        return mv

    def _check_candidate(self, name: str, candidate_for: str, alias: str | None) -> None:
        """Refuse, before anything is stored, a candidate no policy run waits for."""
        from vigil.errors import ConflictError, InvalidParameterError
        from vigil.policy.runs import RunStore  # only for a retraining job's candidate

        if candidate_for != name:
            raise InvalidParameterError(
                f"--candidate-for {candidate_for!r} must name the model being registered "
                f"({name!r}): a candidate is a new version of the model its policy retrains"
            )
        if alias is not None:
            raise InvalidParameterError(
                "a candidate takes no alias: its policy moves the served alias when the "
                "rollout completes; drop --alias"
            )
        run = RunStore(self.database).active(name)
        if run is None or run.state != "training":
            state = f"its run {run.run_id} is {run.state}" if run else "no run is in flight"
            raise ConflictError(
                f"no run of {name!r}'s policy waits for a candidate ({state}); register "
                "without --candidate-for",
                detail={"model": name},
            )

    def load(
        self, uri: str, *, trust: TrustPolicy | None = None, sample: bool = True
    ) -> LoadedBundle:
        """Load a registered version (``models:/NAME/VERSION``, ``models:/NAME@ALIAS``).

        The trust recorded when the version was registered applies, widened by ``trust``.
        ``sample=False`` skips the profile's reference rows (see
        :func:`~vigil.bundle.bundle.load_bundle`).
        """
        # the model stack: only for what loads a model
        from vigil.bundle.bundle import load_bundle
        from vigil.registry.lineage import version_trust

        mv = self.registry.resolve(uri)
        path = self.registry.fetch_bundle(mv, self.cache_dir)
        allowed = version_trust(mv, trust).within(self.settings.max_unpacked_model_bytes)
        bundle = load_bundle(path, trust=allowed, sample=sample)
        bundle.name, bundle.version = mv.name, mv.version
        return bundle


def serving_app_from_environment() -> ServingApp:
    """The app of one ``vigil serve`` worker (the factory ``vigil serve`` names in
    ``VIGIL_WORKER_PROVIDER``), from ``VIGIL_*`` variables.

    ``VIGIL_WORKER_MODELS`` (a JSON list of URIs), ``VIGIL_WORKER_ALIASES`` (a JSON object
    ``{model: alias}``) and ``VIGIL_WORKER_POLL_INTERVAL`` are set by ``vigil serve``;
    everything else comes from the usual settings (``VIGIL_HOME``, ``VIGIL_SERVE_*``...).
    """
    from vigil.serving.registry_provider import ALIASES_ENV, MODELS_ENV, POLL_ENV  # serving

    root = Vigil()
    provider = root.serving_provider(
        uris=json.loads(os.environ.get(MODELS_ENV) or "[]"),
        aliases=json.loads(os.environ.get(ALIASES_ENV) or "{}"),
        poll_interval=float(os.environ.get(POLL_ENV) or 1.0),
    )
    return root.serving_app(provider)


def monitoring_root(
    settings: Settings, capture: CaptureSettings, monitor: MonitorSettings
) -> Vigil:
    """The composition root of a monitoring cycle's child process
    (:mod:`vigil.monitor.isolation`), from the server's own settings objects: the child
    reads the same home, database, inference log, encryption key file, rules and webhooks
    as the server, whatever the environment of the process that forked it.

    >>> import tempfile, pathlib
    >>> from vigil.capture.settings import CaptureSettings
    >>> from vigil.monitor.settings import MonitorSettings
    >>> home = pathlib.Path(tempfile.mkdtemp())
    >>> root = monitoring_root(load_settings(home=home), CaptureSettings(), MonitorSettings(window="15m"))
    >>> root.monitor_settings.window, root.capture_dir == home / "capture"
    ('15m', True)
    """
    root = Vigil(settings)
    # Both are cached properties: seeded, they are never read again from the environment.
    root.__dict__.update(capture_settings=capture, monitor_settings=monitor)
    return root


def compaction_root(settings: Settings, capture: CaptureSettings) -> Compactor:
    """The compactor of a compaction pass's child process (:mod:`vigil.capture.isolation`),
    built as a serving worker builds its own, from the server's own settings objects: the
    same home, segment directories, artifact store and encryption key file, whatever the
    environment of the process that forked it. Its log has no live segment of its own.

    >>> import tempfile, pathlib
    >>> from vigil.capture.settings import CaptureSettings
    >>> home = pathlib.Path(tempfile.mkdtemp())
    >>> compactor = compaction_root(load_settings(home=home), CaptureSettings(retention_days=7))
    >>> compactor.log.directory == home / "capture", compactor.retention_days
    (True, 7)
    """
    root = Vigil(settings)
    # A cached property: seeded, it is never read again from the environment.
    root.__dict__.update(capture_settings=capture)
    runtime = root.capture_runtime()
    compactor = runtime.compactor if runtime is not None else None
    if compactor is None:
        raise ConfigurationError(
            "capture compaction needs capture on (VIGIL_CAPTURE_ENABLED) and an artifact store"
        )
    return compactor


_default: Vigil | None = None


def default() -> Vigil:
    """The process-wide :class:`Vigil` built from the environment (and ``vigil.yaml``)."""
    global _default
    if _default is None:
        _default = Vigil()
    return _default


def reset_default() -> None:
    """Forget the process-wide instance (after changing ``VIGIL_*`` variables)."""
    global _default
    _default = None
