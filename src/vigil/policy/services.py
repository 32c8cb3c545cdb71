"""What update policies use of the composition root: the experiments' services (endpoints,
policy state, alerts) plus the policy settings.

:class:`vigil.app.Vigil` satisfies :class:`PolicyServices`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from vigil.experiments.services import ExperimentServices

if TYPE_CHECKING:
    from pathlib import Path

    from vigil.policy.settings import PolicySettings

__all__ = ["PolicyServices"]


class PolicyServices(ExperimentServices, Protocol):
    """:class:`~vigil.experiments.services.ExperimentServices` plus the policy settings."""

    @property
    def policy_settings(self) -> PolicySettings:
        """The loop's interval, the runs' directory, the policies of ``vigil.yaml``."""
        ...

    @property
    def policy_dir(self) -> Path:
        """Where policy runs keep their exports and job logs."""
        ...
