"""What points at a model or one of its versions: its aliases, and the experiment endpoints
whose variants name it. Versions in use are never archived or deleted.

Endpoints live in a layer above the registry, so the registry does not read them itself:
the composition root hands it an :data:`EndpointReferences` function (see
:mod:`vigil.experiments.store`), called inside the registry's write transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from vigil.errors import InvalidURIError
from vigil.uri import parse_model_ref

EndpointReferences = Callable[[Session, str], list[tuple[str, str]]]
"""``(session, model) -> [(endpoint, variant model URI), ...]`` for every live endpoint
with a variant naming ``model``."""


@dataclass
class Usage:
    """The aliases (``{alias: version}``) and endpoints (``{endpoint: uri}``) in the way."""

    aliases: dict[str, int] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.aliases or self.endpoints)

    def describe(self, model: str) -> str:
        """``alias churn@production (version 2), endpoint checkout (models:/churn/2)``"""
        parts = [f"alias {model}@{a} (version {v})" for a, v in sorted(self.aliases.items())]
        parts += [f"endpoint {e} ({uri})" for e, uri in sorted(self.endpoints.items())]
        return ", ".join(parts)

    def detail(self) -> dict[str, Any]:
        return {"aliases": dict(self.aliases), "endpoints": dict(self.endpoints)}


def usage(
    session: Session,
    model: str,
    aliases: dict[str, int],
    references: EndpointReferences | None,
    *,
    version: int | None = None,
    newest_in_service: int | None = None,
) -> Usage:
    """What points at ``version`` of ``model`` (at any version when ``None``). An endpoint
    naming ``models:/NAME/latest`` points at ``newest_in_service``; one naming an alias
    points where the alias does (so the alias already holds that version)."""
    found = Usage(aliases={a: v for a, v in aliases.items() if version is None or v == version})
    for endpoint, uri in references(session, model) if references else []:
        try:
            ref = parse_model_ref(uri)
        except InvalidURIError:  # pragma: no cover - endpoint configs are validated on write
            continue
        if (
            version is None
            or ref.version == version
            or (ref.version is None and ref.alias is None and version == newest_in_service)
        ):
            found.endpoints[endpoint] = uri
    return found
