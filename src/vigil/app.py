"""The one composition root: settings → database → artifact store → registry.

The CLI, the Python API (:func:`vigil.register`, :func:`vigil.load`), the server, the demo
and the tests all build their objects here, so there is exactly one place that decides
which database, which store and which actor are in use.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.errors import ReferenceDataError
from vigil.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

    from vigil.bundle.model import LoadedBundle
    from vigil.bundle.trust import TrustPolicy
    from vigil.registry.registry import ModelVersion, Registry
    from vigil.storage.artifacts import ArtifactStore
    from vigil.storage.sql import Database

Progress = Callable[[int, int | None], None]


class Vigil:
    """Everything vigil needs, built lazily from one :class:`Settings`.

    >>> import tempfile, pathlib
    >>> v = Vigil(load_settings(home=pathlib.Path(tempfile.mkdtemp())))
    >>> v.settings.resolved_database_url.startswith("sqlite:///")
    True
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else load_settings()

    # -- wiring ------------------------------------------------------------------------

    @cached_property
    def database(self) -> Database:
        from vigil.storage.sql import Database

        home = self.settings.home
        if self.settings.database_url is None:
            home.mkdir(parents=True, exist_ok=True)
        return Database(self.settings.resolved_database_url)  # migrates on first use

    @cached_property
    def artifacts(self) -> ArtifactStore:
        from vigil.storage.artifacts import ArtifactStore

        return ArtifactStore(
            self.settings.resolved_artifact_url, s3_endpoint_url=self.settings.s3_endpoint_url
        )

    @cached_property
    def registry(self) -> Registry:
        from vigil.registry.registry import Registry

        return Registry(self.database, self.artifacts, actor=self.settings.resolved_actor)

    @property
    def cache_dir(self) -> Path:
        return self.settings.home / "cache" / "bundles"

    def private_tempdir(self, prefix: str) -> Path:
        """A private (0700) scratch directory under the home, removed by the caller."""
        root = self.settings.home / "tmp"
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=root))

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
    ) -> ModelVersion:
        """Package ``model`` (an estimator object or a model file/MLflow directory) with its
        signature and the baseline profile of ``reference``, and register it as a new,
        immutable version of ``name``.

        A live estimator object is trusted implicitly (the caller is holding it); a file
        is trusted only as ``trust`` says. The trust granted here is recorded in the
        registry's metadata (not in the artifact), bound to the artifact's SHA-256, so
        loading the version later needs no flags.
        """
        from vigil.bundle.bundle import build_bundle
        from vigil.bundle.trust import TrustPolicy
        from vigil.names import check_alias, check_model_name, check_tag_key
        from vigil.registry.lineage import git_commit

        check_model_name(name)
        if alias is not None:
            check_alias(alias)
        for key in {**(tags or {}), **(metrics or {})}:
            check_tag_key(key)
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
            ref_source = manifest.reference.source if manifest.reference else None
            if ref_source is not None and ref_source.sha256:
                lineage["reference_sha256"] = ref_source.sha256
            return self.registry.register_version(
                name,
                bundle_dir,
                description=description,
                tags=dict(tags or {}),
                metrics={k: float(v) for k, v in (metrics or {}).items()},
                lineage=lineage,
                alias=alias,
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def load(
        self, uri: str, *, trust: TrustPolicy | None = None, sample: bool = True
    ) -> LoadedBundle:
        """Load a registered version (``models:/NAME/VERSION``, ``models:/NAME@ALIAS``).

        The trust recorded when the version was registered applies, widened by ``trust``.
        ``sample=False`` skips the profile's reference rows (see
        :func:`~vigil.bundle.bundle.load_bundle`).
        """
        from vigil.bundle.bundle import load_bundle

        mv = self.registry.resolve(uri)
        path = self.registry.fetch_bundle(mv, self.cache_dir)
        allowed = version_trust(mv, trust).within(self.settings.max_unpacked_model_bytes)
        bundle = load_bundle(path, trust=allowed, sample=sample)
        bundle.name, bundle.version = mv.name, mv.version
        return bundle


def version_trust(mv: ModelVersion, trust: TrustPolicy | None = None) -> TrustPolicy:
    """What loading ``mv`` may unpickle or import: the trust recorded when it was
    registered, widened by ``trust``."""
    from vigil.bundle.trust import TrustPolicy

    recorded = (mv.lineage or {}).get("trust") or {}
    given = trust or TrustPolicy()
    return TrustPolicy(
        trust_pickle=bool(recorded.get("pickle")) or given.trust_pickle,
        trusted_types=tuple(sorted(set(recorded.get("types", ())) | set(given.trusted_types))),
        max_unpacked_bytes=given.max_unpacked_bytes,
    )


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
