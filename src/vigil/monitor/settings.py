"""Settings of monitoring: windows, schedule, alert rules and webhooks.

Read from ``VIGIL_MONITOR_*`` environment variables (lists and objects as JSON) and from
the ``monitor:`` section of the YAML file named by ``VIGIL_CONFIG`` (or ``./vigil.yaml``)::

    monitor:
      window: 1h or 1000
      interval_s: 300
      webhooks:
        - https://alerts.example.com/hook
        - {url: "https://hooks.slack.com/services/T0/B0/XXXX", format: slack}
      rules:
        - {name: churn_drift, metric: drift.share, comparison: ">", threshold: 0.3,
           for_windows: 2, labels: {model: churn}}

Webhook URLs often carry a token, so they are secrets: never printed in full, never logged.

>>> s = MonitorSettings(webhooks=["https://h.example/hook?token=abc"], slack=True)
>>> s.window, s.targets()[0].format, "abc" in repr(s)
('1h or 1000', 'slack', False)
>>> load_monitor_settings(window="fortnight")
Traceback (most recent call last):
...
vigil.errors.ConfigurationError: invalid setting VIGIL_MONITOR_WINDOW: Value error, invalid window 'fortnight': give a duration such as 15m, 1h or 1d, or a number of predictions such as 500
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import (
    SettingsConfigDict,
)

from vigil.durations import parse_duration
from vigil.errors import InvalidParameterError
from vigil.monitor.rules import AlertRule, default_rules
from vigil.monitor.webhooks import check_webhook_url, webhook_label
from vigil.monitor.windows import WindowSpec, parse_window
from vigil.settings import VigilSettings, build_settings

PayloadFormat = Literal["json", "slack"]


class Webhook(BaseModel):
    """One receiver of alert notifications."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    url: SecretStr
    """``http(s)://`` URL; may hold a token, so it is kept secret."""
    format: PayloadFormat | None = None
    """``json`` (Alertmanager-like) or ``slack``; default: ``slack`` when the ``slack``
    setting is on, else ``json``."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a webhook URL must start with http:// or https:// and name a host")
        return value

    @property
    def label(self) -> str:
        """The URL with everything after the host hidden, plus a short digest of the whole
        URL so two webhooks on one host stay apart (safe to log and show)."""
        return webhook_label(self.url.get_secret_value())


class MonitorSettings(VigilSettings):
    """How monitoring runs. Every field can be set as ``VIGIL_MONITOR_<FIELD>``."""

    yaml_section: ClassVar[str] = "monitor"

    model_config = SettingsConfigDict(
        env_prefix="VIGIL_MONITOR_", extra="forbid", frozen=True, hide_input_in_errors=True
    )

    enabled: bool = True
    """Run monitoring inside the server on a schedule (``vigil monitor run`` works either way)."""

    window: str = "1h or 1000"
    """Window size: a duration (``15m``, ``1h``, ``1d``), a number of predictions (``500``),
    or whichever of the two comes first (``1h or 1000``: an hourly window on a quiet
    service, a verdict every 1,000 predictions on a busy one)."""

    interval_s: float = Field(default=300.0, ge=0)
    """Seconds between two scheduled runs inside the server (``0`` turns the schedule off)."""

    lookback: str = "7d"
    """How far back a run reads the log: windows older than this are neither computed nor
    updated with late labels."""

    grace_s: float = Field(default=60.0, ge=0)
    """A time window counts as complete this long after its end (lets slow requests and
    other workers' records land)."""

    summaries: bool = False
    """Judge time windows of whole hours (``1h``, ``6h``, ``1d``) from mergeable summaries
    stored beside the compacted log (:mod:`vigil.monitor.summaries`), so memory does not
    grow with traffic; windows small enough for exact tests are still read raw. Needs
    ``pip install 'vigil[monitor]'``."""

    rules: list[AlertRule] = Field(default_factory=default_rules)
    """Alert rules; setting any replaces the defaults (``[]`` turns alerting off)."""

    allow_private_webhooks: bool = False
    """Allow webhooks on loopback, link-local and private addresses (a receiver on this
    machine or network). Off, every webhook must point at public addresses, checked when
    configured and when called (see :mod:`vigil.monitor.webhooks`)."""

    webhooks: list[Webhook] = Field(default_factory=list)
    """Where notifications go: URLs, or ``{url, format}`` objects."""

    slack: bool = False
    """Send Slack-compatible payloads (``{"text", "blocks"}``) to webhooks without a format."""

    timeout_s: float = Field(default=5.0, gt=0)
    """Timeout of one webhook call."""

    retries: int = Field(default=3, ge=0, le=10)
    """Retries after a failed webhook call (with exponential backoff)."""

    backoff_s: float = Field(default=0.5, ge=0)
    """Wait before the first retry; doubled before each next one."""

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        spec: WindowSpec = _as_value_error(lambda: parse_window(value))
        return spec.text

    @field_validator("lookback")
    @classmethod
    def _check_lookback(cls, value: str) -> str:
        _as_value_error(lambda: parse_duration(value, what="lookback"))
        return value

    @field_validator("webhooks", mode="before")
    @classmethod
    def _urls_as_webhooks(cls, value: Any) -> Any:
        if isinstance(value, str | dict):
            value = [value]
        if isinstance(value, list):
            return [{"url": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("webhooks")
    @classmethod
    def _public_webhooks(cls, value: list[Webhook], info: ValidationInfo) -> list[Webhook]:
        allow = bool(info.data.get("allow_private_webhooks", False))
        for webhook in value:
            check_webhook_url(webhook.url.get_secret_value(), allow_private=allow)
        return value

    @field_validator("rules")
    @classmethod
    def _unique_rule_names(cls, value: list[AlertRule]) -> list[AlertRule]:
        seen: set[str] = set()
        for rule in value:
            if rule.name in seen:
                raise ValueError(f"two rules are named {rule.name!r}; rule names must be unique")
            seen.add(rule.name)
        return value

    @property
    def window_spec(self) -> WindowSpec:
        return parse_window(self.window)

    def targets(self) -> list[Webhook]:
        """The webhooks with their payload format settled."""
        default: PayloadFormat = "slack" if self.slack else "json"
        return [w if w.format else w.model_copy(update={"format": default}) for w in self.webhooks]


def _as_value_error(check: Any) -> Any:
    # pydantic reports ValueErrors raised in validators with the field's name.
    try:
        return check()
    except InvalidParameterError as exc:
        raise ValueError(exc.message) from None


def load_monitor_settings(**overrides: Any) -> MonitorSettings:
    """Build :class:`MonitorSettings`, turning pydantic's errors into one clear message."""
    return build_settings(MonitorSettings, **overrides)
