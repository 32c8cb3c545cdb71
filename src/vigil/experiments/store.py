"""Where endpoint configurations live: the SQL ``endpoints`` table, every change audited.

:class:`EndpointStore` is the one way to create, change and delete an endpoint; the CLI,
the admin REST API and the Python API all go through it, so they refuse the same things
with the same messages:

* a configuration that does not validate (:func:`~vigil.experiments.config.parse_endpoint`,
  422);
* a variant whose model, version or alias is not in the registry (404, naming the variant
  and what does exist);
* an alert webhook that points inside the network (422, see :mod:`vigil.monitor.webhooks`;
  ``VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS`` allows it), or that is only the label it was
  shown as and matches none of the endpoint's webhooks (422);
* creating an endpoint that exists (409), changing or deleting one that does not (404).

Nothing is written when a check fails. Each change bumps the endpoint's ``revision`` and
writes an audit row (``endpoint.create``, ``endpoint.update``, ``endpoint.delete``) with the
configuration before and after, in the same transaction. Serving workers poll
:meth:`EndpointStore.list_revisions` (one query) and reload only what changed.

An update that does not name a ``salt`` keeps the stored one: a new salt would reshuffle
every sticky unit between the variants. The salt and the webhook URLs are kept as given but
shown (:meth:`StoredEndpoint.to_dict`, the audit trail) without the salt and with each
webhook as its label, which an update may send back to keep that webhook.

>>> import json, pathlib, tempfile
>>> from vigil.app import Vigil
>>> from vigil.settings import load_settings
>>> from vigil.experiments.config import parse_endpoint
>>> v = Vigil(load_settings(home=pathlib.Path(tempfile.mkdtemp())))
>>> bundle = pathlib.Path(tempfile.mkdtemp())
>>> manifest = {"flavor": "sklearn", "model_file": "model.bin", "signature": {"inputs": []},
...             "source": {"kind": "file", "name": "model.bin"}}
>>> _ = (bundle / "vigil.json").write_text(json.dumps(manifest))
>>> _ = v.registry.register_version("churn", bundle, alias="production")
>>> store = EndpointStore(v)
>>> cfg = parse_endpoint({"name": "checkout", "salt": "s1",
...     "variants": [{"name": "a", "model": "models:/churn@production"},
...                  {"name": "b", "model": "models:/churn/1"}],
...     "policy": {"kind": "split", "weights": {"a": 90, "b": 10}}})
>>> store.create(cfg, actor="ada").name, store.revision("checkout")
('checkout', 1)
>>> store.create(cfg.model_copy(update={"name": "bad", "variants": [
...     cfg.variants[0], cfg.variants[1].model_copy(update={"model": "models:/churn/7"})]}),
...     actor="ada")
Traceback (most recent call last):
...
vigil.errors.VersionNotFoundError: variant 'b' (models:/churn/7): model 'churn' has no version 7; it has versions 1..1
>>> store.list_revisions()
{'checkout': 1}
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vigil.audit import record_audit
from vigil.errors import (
    ConflictError,
    EndpointNotFoundError,
    InvalidParameterError,
    NotFoundError,
)
from vigil.experiments.config import EndpointConfig, parse_endpoint
from vigil.experiments.tables import EndpointRow
from vigil.monitor.webhooks import is_label, webhook_label
from vigil.names import check_name
from vigil.storage.sql import utcnow

if TYPE_CHECKING:
    from vigil.monitor.services import MonitorServices
    from vigil.registry.entities import ModelVersion

__all__ = ["EndpointStore", "StoredEndpoint"]

_LISTED = 20


@dataclass(frozen=True)
class StoredEndpoint:
    """An endpoint's configuration with its revision and who made it, when."""

    config: EndpointConfig
    revision: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the configuration as anyone may see it (webhooks as labels, no salt;
        :meth:`~vigil.experiments.config.EndpointConfig.public`) plus ``revision`` and the
        four who/when fields."""
        return {
            **self.config.public(),
            "revision": self.revision,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


def _stored(row: EndpointRow) -> StoredEndpoint:
    return StoredEndpoint(
        config=parse_endpoint(row.config),
        revision=row.revision,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def _dump(config: EndpointConfig) -> dict[str, Any]:
    return config.stored()


def _shown(data: dict[str, Any]) -> dict[str, Any]:
    """A stored configuration as the audit trail may show it (no secrets)."""
    return parse_endpoint(data).public()


def _with_stored_webhooks(config: EndpointConfig, stored: list[str]) -> EndpointConfig:
    """``config`` with each webhook given as its label replaced by the stored URL it stands
    for; a label that stands for none is refused (its URL cannot be recovered)."""
    urls = config.webhook_urls
    if not any(is_label(u) for u in urls):
        return config
    by_label = {webhook_label(u): u for u in stored}
    resolved = []
    for url in urls:
        if is_label(url) and url not in by_label:
            raise InvalidParameterError(
                f"invalid endpoint configuration: alert webhook {url} is shown redacted and "
                "is none of the endpoint's webhooks; give its full URL",
                detail={"field": "alert_webhooks"},
            )
        resolved.append(by_label.get(url, url))
    return config.model_copy(update={"alert_webhooks": [SecretStr(u) for u in resolved]})


class EndpointStore:
    """Create, read, change and delete endpoints in the SQL store of ``vigil``."""

    def __init__(self, app: MonitorServices) -> None:
        self.vigil = app
        self.db = app.database

    def __repr__(self) -> str:
        return f"EndpointStore({self.db!r})"

    @property
    def _allow_private(self) -> bool:
        """Whether alert webhooks may point at non-public addresses (a monitoring setting)."""
        return self.vigil.monitor_settings.allow_private_webhooks

    # -- checks ---------------------------------------------------------------------

    def resolve_variants(self, config: EndpointConfig) -> dict[str, ModelVersion]:
        """The model version each variant serves now; a variant whose model, version or
        alias is missing raises the registry's not-found error (404), naming the variant."""
        found: dict[str, ModelVersion] = {}
        for variant in config.variants:
            try:
                found[variant.name] = self.vigil.registry.resolve(variant.model)
            except NotFoundError as exc:
                raise type(exc)(
                    f"variant {variant.name!r} ({variant.model}): {exc.message}",
                    detail={**exc.detail, "variant": variant.name, "model_uri": variant.model},
                ) from None
        return found

    @staticmethod
    def _check_name(name: str) -> str:
        return check_name("endpoint name", name)

    def _missing(self, session: Session, name: str) -> EndpointNotFoundError:
        names = list(
            session.scalars(
                select(EndpointRow.name)
                .where(EndpointRow.deleted_at.is_(None))
                .order_by(EndpointRow.name)
            )
        )
        shown = ", ".join(names[:_LISTED]) + (" ..." if len(names) > _LISTED else "")
        known = (
            f"endpoints: {shown}"
            if names
            else "no endpoints exist yet; create one with `vigil endpoint create`"
        )
        return EndpointNotFoundError(
            f"no endpoint named {name!r}; {known}", detail={"endpoint": name}
        )

    def _live_row(self, session: Session, name: str, *, lock: bool = False) -> EndpointRow:
        query = select(EndpointRow).where(EndpointRow.name == name)
        if lock:
            query = query.with_for_update()
        row = session.scalars(query).one_or_none()
        if row is None or row.deleted_at is not None:
            self._check_name(name)
            raise self._missing(session, name)
        return row

    # -- changes --------------------------------------------------------------------

    def create(self, config: EndpointConfig, *, actor: str) -> EndpointConfig:
        """Store a new endpoint; :class:`~vigil.errors.ConflictError` if the name is taken."""
        self.resolve_variants(config)
        config = _with_stored_webhooks(config, [])
        if config.alert_webhooks:
            config.check_webhooks(allow_private=self._allow_private)
        data = _dump(config)
        try:
            with self.db.session(write=True) as session:
                now = utcnow()
                row = session.scalars(
                    select(EndpointRow).where(EndpointRow.name == config.name).with_for_update()
                ).one_or_none()
                if row is not None and row.deleted_at is None:
                    raise ConflictError(
                        f"endpoint {config.name!r} already exists (revision {row.revision}); "
                        "change it with `vigil endpoint update` or PUT /v1/admin/endpoints/"
                        f"{config.name}",
                        detail={"endpoint": config.name, "revision": row.revision},
                    )
                if row is None:
                    row = EndpointRow(name=config.name, revision=0)
                    session.add(row)
                # A deleted endpoint's row comes back: its revision keeps counting up.
                row.config = data
                row.revision += 1
                row.created_at = row.updated_at = now
                row.created_by = row.updated_by = actor
                row.deleted_at = None
                record_audit(
                    session,
                    actor=actor,
                    action="endpoint.create",
                    entity_type="endpoint",
                    entity_name=config.name,
                    before=None,
                    after={**_shown(data), "revision": row.revision},
                )
        except IntegrityError:
            # Another process created the same name between our read and our insert.
            raise ConflictError(
                f"endpoint {config.name!r} already exists", detail={"endpoint": config.name}
            ) from None
        return config

    def update(
        self,
        name: str,
        config: EndpointConfig,
        *,
        actor: str,
        action: str = "endpoint.update",
    ) -> EndpointConfig:
        """Replace an endpoint's configuration (404 if it does not exist).

        ``action`` names the change in the audit log (``experiment.conclude`` uses it). An
        identical configuration changes nothing: no new revision, no audit row.
        """
        self._check_name(name)
        if config.name != name:
            raise InvalidParameterError(
                f"the configuration is for endpoint {config.name!r}, not {name!r}; "
                "an endpoint cannot be renamed (create the new one, then delete the old one)",
                detail={"field": "name"},
            )
        self.resolve_variants(config)
        # Checked before the row is locked: a webhook's name may take a while to resolve.
        known = self.describe(name).config.webhook_urls
        config = _with_stored_webhooks(config, known)
        if set(config.webhook_urls) - set(known):
            config.check_webhooks(allow_private=self._allow_private, known=known)
        with self.db.session(write=True) as session:
            row = self._live_row(session, name, lock=True)
            if "salt" not in config.model_fields_set:
                config = config.model_copy(update={"salt": row.config["salt"]})
            data = _dump(config)
            if data == row.config:
                return config
            before = {**_shown(row.config), "revision": row.revision}
            row.config = data
            row.revision += 1
            row.updated_at = utcnow()
            row.updated_by = actor
            record_audit(
                session,
                actor=actor,
                action=action,
                entity_type="endpoint",
                entity_name=name,
                before=before,
                after={**_shown(data), "revision": row.revision},
            )
        return config

    def put(self, config: EndpointConfig, *, actor: str) -> tuple[EndpointConfig, bool]:
        """Create ``config`` or replace the endpoint of that name; ``(config, created)``."""
        try:
            return self.update(config.name, config, actor=actor), False
        except EndpointNotFoundError:
            return self.create(config, actor=actor), True

    def delete(self, name: str, *, actor: str) -> None:
        """Delete an endpoint (404 if it does not exist); its audit trail stays."""
        with self.db.session(write=True) as session:
            row = self._live_row(session, name, lock=True)
            before = {**_shown(row.config), "revision": row.revision}
            now = utcnow()
            row.revision += 1
            row.deleted_at = row.updated_at = now
            row.updated_by = actor
            record_audit(
                session,
                actor=actor,
                action="endpoint.delete",
                entity_type="endpoint",
                entity_name=name,
                before=before,
                after=None,
            )

    # -- reads ----------------------------------------------------------------------

    def get(self, name: str) -> EndpointConfig:
        """The endpoint's configuration; :class:`EndpointNotFoundError` (404) if none."""
        return self.describe(name).config

    def describe(self, name: str) -> StoredEndpoint:
        """The configuration with its revision and who created and changed it, when."""
        with self.db.session() as session:
            return _stored(self._live_row(session, name))

    def list(self) -> list[EndpointConfig]:
        """Every endpoint, by name."""
        return [s.config for s in self.list_stored()]

    def list_stored(self) -> builtins.list[StoredEndpoint]:
        """Every endpoint with its revision and who/when, by name."""
        with self.db.session() as session:
            rows = session.scalars(
                select(EndpointRow)
                .where(EndpointRow.deleted_at.is_(None))
                .order_by(EndpointRow.name)
            )
            return [_stored(r) for r in rows]

    def revision(self, name: str) -> int:
        """The endpoint's revision: 1 when created, one more after every change."""
        with self.db.session() as session:
            return self._live_row(session, name).revision

    def list_revisions(self) -> dict[str, int]:
        """``{name: revision}`` of every endpoint in one query (for polling workers)."""
        with self.db.session() as session:
            rows = session.execute(
                select(EndpointRow.name, EndpointRow.revision).where(
                    EndpointRow.deleted_at.is_(None)
                )
            )
            return {name: revision for name, revision in rows}
