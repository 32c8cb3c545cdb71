"""PLACEHOLDER (helper "ui"): the endpoint page's data, minimal, so the framework that
mounts it can be tested. Helper "uipages" owns this module (see the console's contract);
the lead replaces it with theirs at merge."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Action = Callable[[Any, str, Mapping[str, str], str], str]


@dataclass(frozen=True)
class EndpointView:
    name: str
    policy: str
    variants: list[tuple[str, str]]


def endpoint_view(services: Any, name: str) -> EndpointView:
    """The endpoint ``name``'s policy and variants (NotFoundError when unknown)."""
    from vigil.experiments.store import EndpointStore

    config = EndpointStore(services).get(name)
    return EndpointView(
        config.name, config.policy.kind, [(v.name, v.model) for v in config.variants]
    )


ACTIONS: dict[str, Action] = {}
