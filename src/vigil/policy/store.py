"""Where update policies live: the SQL ``update_policies`` table, every change audited.

:class:`PolicyStore` is the one way to set, read and delete a policy; the CLI, the admin REST
API and ``vigil.yaml`` (synced by the server) all go through it, so they refuse the same
things with the same messages: a configuration that does not validate (422), a model that is
not registered (404), a webhook that points inside the network (422, unless
``VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS``). Each change bumps the policy's ``revision`` and
writes an audit row (``policy.set``, ``policy.delete``) in the same transaction.

>>> import pathlib, tempfile
>>> from vigil.app import Vigil
>>> from vigil.settings import load_settings
>>> v = Vigil(load_settings(home=pathlib.Path(tempfile.mkdtemp())))
>>> PolicyStore(v).get("churn")
Traceback (most recent call last):
...
vigil.errors.NotFoundError: model 'churn' has no policy; give it one with `vigil policy set churn -f policy.yaml` (vigil policy list shows them)
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from vigil.audit import record_audit
from vigil.errors import NotFoundError, PermissionDeniedError
from vigil.monitor.webhooks import check_webhook_url
from vigil.names import check_model_name
from vigil.policy.config import CommandAction, PolicyConfig, WebhookAction, parse_policy
from vigil.policy.tables import UpdatePolicyRow
from vigil.storage.sql import utcnow

if TYPE_CHECKING:
    from vigil.policy.services import PolicyServices

__all__ = ["PolicyStore", "StoredPolicy"]


@dataclass(frozen=True)
class StoredPolicy:
    """A policy with its revision, trigger cursors and who changed it, when."""

    config: PolicyConfig
    revision: int
    trigger_state: dict[str, Any]
    updated_at: datetime
    updated_by: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, secrets hidden."""
        return {
            **self.config.public(),
            "revision": self.revision,
            "trigger_state": self.trigger_state,
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


def _stored(row: UpdatePolicyRow) -> StoredPolicy:
    return StoredPolicy(
        config=parse_policy(row.config),
        revision=row.revision,
        trigger_state=dict(row.trigger_state or {}),
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def _missing(model: str) -> NotFoundError:
    return NotFoundError(
        f"model {model!r} has no policy; give it one with `vigil policy set "
        f"{model} -f policy.yaml` (vigil policy list shows them)",
        detail={"model": model},
    )


class PolicyStore:
    """Set, read, list and delete update policies (see the module documentation)."""

    def __init__(self, app: PolicyServices) -> None:
        self.vigil = app
        self.db = app.database

    def __repr__(self) -> str:
        return f"PolicyStore({self.db!r})"

    def set(
        self, config: PolicyConfig, *, actor: str, remote: bool = False
    ) -> tuple[StoredPolicy, bool]:
        """Create or replace the policy of ``config.model``; the stored policy and whether
        it was created. The model must be registered. ``remote`` (the admin REST API): a
        ``command`` action is refused (403) unless ``VIGIL_POLICY_ALLOW_REMOTE_COMMANDS``."""
        if (
            remote
            and isinstance(config.action, CommandAction)
            and not self.vigil.policy_settings.allow_remote_commands
        ):
            raise PermissionDeniedError(
                "a command action runs a program on the server, so the admin API may not "
                "set one: use `vigil policy set` on the server's host, vigil.yaml, or a "
                "webhook action (VIGIL_POLICY_ALLOW_REMOTE_COMMANDS=true lifts this)",
                detail={"field": "action.kind"},
            )
        self.vigil.registry.get_model(config.model)  # 404 naming the models when it is not
        if isinstance(config.action, WebhookAction):
            check_webhook_url(
                config.action.url.get_secret_value(),
                allow_private=self.vigil.monitor_settings.allow_private_webhooks,
                resolve=True,
            )
        data = config.stored()
        with self.db.session(write=True) as session:
            row = session.get(UpdatePolicyRow, config.model, with_for_update=True)
            now = utcnow()
            created = row is None
            before = None if row is None else parse_policy(row.config).public()
            if row is None:
                row = UpdatePolicyRow(
                    model=config.model,
                    revision=0,
                    trigger_state={},
                    created_at=now,
                    created_by=actor,
                )
                session.add(row)
            elif row.config == data:
                return _stored(row), False  # nothing changed: no revision, no audit row
            row.config = data
            row.revision += 1
            row.updated_at = now
            row.updated_by = actor
            record_audit(
                session,
                actor=actor,
                action="policy.set",
                entity_type="policy",
                entity_name=config.model,
                model_name=config.model,
                before=before,
                after={**config.public(), "revision": row.revision},
            )
            session.flush()
            stored = _stored(row)
        self._ensure_endpoint(config, actor)
        return stored, created

    def _ensure_endpoint(self, config: PolicyConfig, actor: str) -> None:
        """Create the rollout's endpoint, serving the served alias, when it is missing (an
        existing one is left as it is until a run rolls out through it)."""
        from vigil.experiments.store import EndpointStore
        from vigil.policy.rollout import idle_config

        endpoints = EndpointStore(self.vigil)
        try:
            endpoints.get(config.endpoint)
        except NotFoundError:
            endpoints.create(idle_config(config), actor=actor)

    def get(self, model: str) -> StoredPolicy:
        check_model_name(model)
        with self.db.session() as session:
            row = session.get(UpdatePolicyRow, model)
            if row is None:
                raise _missing(model)
            return _stored(row)

    def find(self, model: str) -> StoredPolicy | None:
        """The policy of ``model``, or ``None``."""
        try:
            return self.get(model)
        except NotFoundError:
            return None

    def list(self) -> builtins.list[StoredPolicy]:
        with self.db.session() as session:
            rows = session.scalars(select(UpdatePolicyRow).order_by(UpdatePolicyRow.model)).all()
            return [_stored(r) for r in rows]

    def delete(self, model: str, *, actor: str) -> None:
        """Delete the policy of ``model`` (its runs stay, for the record)."""
        check_model_name(model)
        with self.db.session(write=True) as session:
            row = session.get(UpdatePolicyRow, model, with_for_update=True)
            if row is None:
                raise _missing(model)
            before = parse_policy(row.config).public()
            session.delete(row)
            record_audit(
                session,
                actor=actor,
                action="policy.delete",
                entity_type="policy",
                entity_name=model,
                model_name=model,
                before=before,
                after=None,
            )

    def update_trigger_state(self, model: str, changes: dict[str, Any]) -> None:
        """Merge ``changes`` into the policy's trigger cursors (no audit: bookkeeping)."""
        with self.db.session(write=True) as session:
            row = session.get(UpdatePolicyRow, model, with_for_update=True)
            if row is not None:
                row.trigger_state = {**(row.trigger_state or {}), **changes}
