"""PLACEHOLDER (helper "ui"): the model page's data and actions, minimal, so the framework
that mounts them can be tested. Helper "uipages" owns this module (see the console's
contract); the lead replaces it with theirs at merge.

:func:`model_view` and :data:`ACTIONS` keep the contract's shape: a plain dataclass from
the installation's stores, and actions ``(services, name, fields, actor) -> message``
calling the registry as the admin REST API does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vigil.errors import ValidationError
from vigil.registry.entities import ModelVersion

Action = Callable[[Any, str, Mapping[str, str], str], str]


@dataclass(frozen=True)
class ModelView:
    name: str
    aliases: dict[str, int]
    versions: list[ModelVersion]


def model_view(services: Any, name: str, *, versions: int = 20) -> ModelView:
    """The model ``name``'s aliases and newest versions (NotFoundError when unknown)."""
    model = services.registry.get_model(name)
    newest = services.registry.list_versions(name)[-versions:]
    return ModelView(model.name, dict(model.aliases), list(reversed(newest)))


def _promote(services: Any, name: str, form: Mapping[str, str], actor: str) -> str:
    alias = form.get("alias") or "production"
    version = form.get("version", "")
    if not version.isdigit() or len(version) > 9:
        raise ValidationError(
            "choose a version to promote", detail={"field": "version", "got": version[:40]}
        )
    services.registry.acting_as(actor).set_alias(name, alias, int(version))
    return f"{alias} → v{version}"


ACTIONS: dict[str, Action] = {"promote": _promote}
