"""Settings of update policies: the server's policy loop and the policies in ``vigil.yaml``.

Read from ``VIGIL_POLICY_*`` environment variables and the ``policy:`` section of
``vigil.yaml``::

    policy:
      interval_s: 10
      policies:
        - model: churn
          triggers: {alerts: [dataset_drift], schedule: "0 3 * * 1"}
          action: {kind: command, argv: [python, retrain.py], timeout_s: 1800}

The server writes the policies listed here to the store when it starts (audited as
``vigil.yaml``); the CLI and the admin API change them afterwards.

>>> PolicySettings().interval_s
10.0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from vigil.errors import InvalidParameterError
from vigil.policy.config import PolicyConfig, parse_policy
from vigil.settings import VigilSettings


class PolicySettings(VigilSettings):
    """How the policy loop runs. Every field can be set as ``VIGIL_POLICY_<FIELD>``."""

    yaml_section: ClassVar[str] = "policy"

    model_config = SettingsConfigDict(
        env_prefix="VIGIL_POLICY_", extra="forbid", frozen=True, hide_input_in_errors=True
    )

    enabled: bool = True
    """Run the policy loop inside the server (triggers, and advancing runs)."""

    interval_s: float = Field(default=10.0, ge=0)
    """Seconds between two ticks of the loop (``0`` turns it off)."""

    dir: Path | None = None
    """Where runs keep their exports and job logs (default ``<home>/policy``)."""

    keep_runs: int = Field(default=10, ge=1)
    """How many of a model's runs keep their directory (export, holdout, job log): when a
    run ends, the directories of that model's older ended runs are deleted, so a policy
    that runs every night does not fill the disk with training-data exports."""

    lease_s: float = Field(default=600.0, gt=0)
    """How long a replica may hold a run's long step (export, gate) before another retries."""

    allow_remote_commands: bool = False
    """Let the admin REST API set ``command`` actions. Off, a command (which the server
    runs) may only be set from this host (``vigil policy set``, ``vigil.yaml``): an admin
    API key must not be a way to run programs on the server."""

    policies: list[PolicyConfig] = Field(default_factory=list)
    """Policies declared in ``vigil.yaml``, written to the store by the server at start."""

    @field_validator("policies", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, list):
            try:
                return [v if isinstance(v, PolicyConfig) else parse_policy(v) for v in value]
            except InvalidParameterError as exc:
                raise ValueError(exc.message) from None
        return value

    def resolved_dir(self, home: Path) -> Path:
        return self.dir if self.dir is not None else home / "policy"
