"""Settings: environment (``VIGIL_*``), an optional ``vigil.yaml``, then defaults.

The embedded default needs nothing: ``VIGIL_HOME`` (``~/.vigil``) holds a SQLite database
and a local artifact store, created on first use. Point ``VIGIL_DATABASE_URL`` at
PostgreSQL and ``VIGIL_ARTIFACT_URL`` at ``s3://bucket/prefix`` to scale out.

Precedence, highest first: keyword arguments, environment variables, the YAML file named by
``VIGIL_CONFIG`` (or ``./vigil.yaml`` when present), defaults. Invalid values fail at start
with a :class:`~vigil.errors.ConfigurationError` naming the setting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from vigil._redact import redact_url
from vigil.errors import ConfigurationError

# Sections of vigil.yaml read by the subsystems' own settings classes, not by Settings.
SUBSYSTEM_SECTIONS = frozenset({"serve", "monitor", "capture", "policy"})

_DB_SCHEMES = ("sqlite://", "postgresql://", "postgresql+psycopg://")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_URL_FIELDS = frozenset({"database_url", "artifact_url", "s3_endpoint_url", "redis_url"})


def _config_file() -> Path | None:
    explicit = os.environ.get("VIGIL_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigurationError(f"VIGIL_CONFIG points to {explicit!r}, which is not a file")
        return path
    local = Path("vigil.yaml")
    return local if local.is_file() else None


def yaml_section(path: Path, section: str) -> dict[str, Any]:
    """The ``section:`` mapping of the YAML file at ``path`` (empty when absent)."""
    import yaml  # only with a vigil.yaml: every command reads the settings

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    found = data.get(section) if isinstance(data, dict) else None
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise ConfigurationError(f"{path}: {section!r} must be a mapping of settings")
    return found


class VigilSettings(BaseSettings):
    """Settings read the one vigil way: keyword arguments, then ``VIGIL_*`` environment
    variables, then ``vigil.yaml`` — its top level for :class:`Settings`, a subsystem's
    ``section:`` for the others (less the keys in ``yaml_ignore``, which another reader of
    that section owns). Built through :func:`build_settings`."""

    yaml_section: ClassVar[str | None] = None
    yaml_ignore: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        section_name = cls.yaml_section
        if path is not None and section_name is None:
            sources.append(_TopLevelYaml(settings_cls, yaml_file=path))
        elif path is not None and section_name is not None:
            section = yaml_section(path, section_name)
            values = {k: v for k, v in section.items() if k not in cls.yaml_ignore}
            sources.append(InitSettingsSource(settings_cls, init_kwargs=values))
        return tuple(sources)


class _TopLevelYaml(PydanticBaseSettingsSource):
    """The YAML file without the sections that belong to subsystems (``serve:``, ...)."""

    def __init__(self, settings_cls: type[BaseSettings], yaml_file: Path) -> None:
        super().__init__(settings_cls)
        self._inner = YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ answers for the whole file

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._inner().items() if k not in SUBSYSTEM_SECTIONS}


class Settings(VigilSettings):
    """Where vigil keeps its state. Every field can be set as ``VIGIL_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="VIGIL_", extra="forbid", validate_default=True)

    home: Path = Field(default_factory=lambda: Path.home() / ".vigil")
    """Home directory of the embedded default (SQLite database, local artifacts, logs)."""

    database_url: str | None = None
    """SQLAlchemy URL of the metadata store; default ``sqlite:///<home>/vigil.db``.
    PostgreSQL: ``postgresql+psycopg://user:password@host:5432/vigil``."""

    database_migrate: Literal["auto", "refuse"] = "auto"
    """What a vigil process does with a database whose schema is behind its newest
    migration: ``auto`` migrates it on first use (under a lock, so replicas starting
    together migrate once); ``refuse`` stops with an error saying to run ``vigil db
    upgrade``, for deployments where a one-off job migrates (a Kubernetes Job) and
    servers never change the schema."""

    artifact_url: str | None = None
    """Artifact store root: a local directory (default ``<home>/artifacts``) or an fsspec URL
    such as ``s3://bucket/prefix``."""

    s3_endpoint_url: str | None = None
    """Endpoint of an S3-compatible server (MinIO, moto, ...); AWS when unset."""

    redis_url: str | None = None
    """Redis shared by all workers and replicas for experiment policy state
    (``redis://host:6379/0``, ``rediss://`` or ``unix://``); default: the SQL store."""

    actor: str | None = None
    """Who is acting, for the audit log; default: the operating-system user."""

    max_unpacked_model_bytes: int = Field(default=1 << 30, ge=1)
    """Most bytes a model file may unpack to (a skops file's members, counting an array
    once per mention): a zip bomb is refused before it is unpacked, at registration and at
    every load. 1 GiB by default; raise it for a larger model you trust."""

    def __repr_args__(self) -> Any:
        # repr() and str() of the settings end up in logs and tracebacks: no password.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name in _URL_FIELDS and value else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(_DB_SCHEMES):
            raise ValueError(
                "must start with sqlite:/// or postgresql+psycopg:// "
                f"(got {value.split(':', 1)[0]!r})"
            )
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value[len("postgresql://") :]
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(_REDIS_SCHEMES):
            raise ValueError(
                f"must start with redis://, rediss:// or unix:// (got {value.split(':', 1)[0]!r})"
            )
        return value

    @field_validator("artifact_url")
    @classmethod
    def _check_artifact_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "://" in value and not value.startswith(("s3://", "file://", "memory://")):
            raise ValueError("must be a local path, file://, or s3://bucket/prefix")
        return value

    # -- derived -----------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'vigil.db'}"

    @property
    def resolved_artifact_url(self) -> str:
        return self.artifact_url or str(self.home / "artifacts")

    @property
    def bundle_cache_dir(self) -> Path:
        """Where bundles fetched from the artifact store are kept, verified by digest."""
        return self.home / "cache" / "bundles"

    @property
    def resolved_actor(self) -> str:
        if self.actor:
            return self.actor
        try:
            import getpass  # only without VIGIL_ACTOR: it loads the terminal modules

            return getpass.getuser()
        except Exception:  # getuser raises various errors in containers without a passwd entry
            return "unknown"


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`, turning pydantic's errors into one clear message.

    >>> import os; os.environ["VIGIL_DATABASE_URL"] = "mysql://x"
    >>> load_settings()
    Traceback (most recent call last):
    ...
    vigil.errors.ConfigurationError: invalid setting VIGIL_DATABASE_URL: Value error, must start with sqlite:/// or postgresql+psycopg:// (got 'mysql')
    >>> del os.environ["VIGIL_DATABASE_URL"]
    """
    return build_settings(Settings, **overrides)


S = TypeVar("S", bound=BaseSettings)


def build_settings(cls: type[S], **overrides: Any) -> S:
    """Build the settings class ``cls`` (this module's :class:`Settings` or a subsystem's,
    read from ``VIGIL_<SUBSYSTEM>_*`` and its section of ``vigil.yaml``), turning pydantic's
    errors into one :class:`~vigil.errors.ConfigurationError` naming the variable: the one
    way every settings object of vigil is made (see :class:`vigil.app.Vigil`)."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise invalid_setting(exc, str(cls.model_config.get("env_prefix") or "")) from None


def invalid_setting(exc: ValidationError, prefix: str) -> ConfigurationError:
    """One clear message for the first problem pydantic found in settings read from
    ``<prefix><FIELD>`` variables (a nested field is named after its variable)."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "?"
    top = str(first["loc"][0]) if first["loc"] else "?"
    where = f" ({field})" if field != top else ""
    return ConfigurationError(
        f"invalid setting {prefix}{top.upper()}{where}: {first['msg']}",
        detail={"setting": field},
    )
