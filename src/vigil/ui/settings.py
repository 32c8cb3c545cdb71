"""Settings of the web console, from ``VIGIL_UI_*`` and the ``ui:`` section of
``vigil.yaml``.

>>> ConsoleSettings().session_ttl_s
28800.0
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from vigil.settings import VigilSettings


class ConsoleSettings(VigilSettings):
    """How the console behaves. Every field can be set as ``VIGIL_UI_<FIELD>``."""

    yaml_section: ClassVar[str] = "ui"

    model_config = SettingsConfigDict(
        env_prefix="VIGIL_UI_", extra="forbid", frozen=True, hide_input_in_errors=True
    )

    enabled: bool = True
    """Serve the console under ``/ui`` (``vigil serve`` with a registry)."""

    session_ttl_s: float = Field(default=8 * 3600.0, gt=0, le=30 * 86400)
    """Seconds a console session lasts from sign-in (default 8 hours)."""

    audit_page_size: int = Field(default=50, ge=1, le=500)
    """Audit events per page."""

    overview_cache_s: float = Field(default=5.0, ge=0, le=300)
    """Seconds the overview's data (registry, monitoring windows, alerts) are reused
    between page loads (``0``: read on every load). However many consoles are open and
    refreshing, the server reads them at most this often; an action from the console
    drops them at once, so its author sees the change. The live counters are fresh on
    every load."""
