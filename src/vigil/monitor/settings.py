"""Settings of monitoring: windows, schedule, alert rules, webhooks and Alertmanagers.

Read from ``VIGIL_MONITOR_*`` environment variables (lists and objects as JSON) and from
the ``monitor:`` section of the YAML file named by ``VIGIL_CONFIG`` (or ``./vigil.yaml``)::

    monitor:
      window: 1h or 1000
      interval_s: 300
      webhooks:
        - https://alerts.example.com/hook
        - {url: "https://hooks.slack.com/services/T0/B0/XXXX", format: slack}
      alertmanagers:
        - url: http://alertmanager:9093
          bearer_token_file: /run/secrets/alertmanager-token
      fairness:
        churn: {attributes: [region, {name: sex, source: passthrough}], min_group_size: 30}
      rules:
        - {name: churn_drift, metric: drift.share, comparison: ">", threshold: 0.3,
           for_windows: 2, labels: {model: churn}}

Webhook URLs often carry a token, so they are secrets: never printed in full, never logged.
An Alertmanager's credentials are settings of their own (``basic_auth``, ``bearer_token``,
or files holding them), never part of its URL.

>>> s = MonitorSettings(webhooks=["https://h.example/hook?token=abc"], slack=True)
>>> s.window, s.targets()[0].format, "abc" in repr(s)
('1h or 1000', 'slack', False)
>>> load_monitor_settings(window="fortnight")
Traceback (most recent call last):
...
vigil.errors.ConfigurationError: invalid setting VIGIL_MONITOR_WINDOW: Value error, invalid window 'fortnight': give a duration such as 15m, 1h or 1d, or a number of predictions such as 500
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    SettingsConfigDict,
)

from vigil.durations import parse_duration
from vigil.errors import ConfigurationError, InvalidNameError, InvalidParameterError
from vigil.monitor.fairness import ModelFairness
from vigil.monitor.rules import AlertRule, default_rules
from vigil.monitor.webhooks import check_webhook_url, webhook_label
from vigil.monitor.windows import WindowSpec, parse_window
from vigil.names import check_name
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


def _read_secret(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the Alertmanager {what} file {path}: {exc.strerror or exc}; "
            "mount it there or fix the setting"
        ) from None


def _check_readable(path: Path | None) -> Path | None:
    if path is not None and not path.is_file():
        raise ValueError(f"{path} is not a readable file")
    return path


SecretFile = Annotated[Path | None, AfterValidator(_check_readable)]


class BasicAuth(BaseModel):
    """HTTP basic authentication: a user name and a password, or a file holding it."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    username: str = Field(min_length=1)
    password: SecretStr | None = None
    password_file: SecretFile = None
    """Read at every call, so a rotated secret is picked up without a restart."""

    @model_validator(mode="after")
    def _one_password(self) -> BasicAuth:
        if (self.password is None) == (self.password_file is None):
            raise ValueError("give basic_auth exactly one of password and password_file")
        return self

    def secret(self) -> str:
        if self.password_file is not None:
            return _read_secret(self.password_file, "password")
        assert self.password is not None
        return self.password.get_secret_value()


class Alertmanager(BaseModel):
    """One Alertmanager vigil sends its alerts to, through its API v2
    (:mod:`vigil.monitor.alertmanager`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    url: str
    """Its base URL (``http://alertmanager:9093``, plus its ``--web.route-prefix`` if it has
    one); vigil posts to ``<url>/api/v2/alerts``. No user name, password or query in it."""
    basic_auth: BasicAuth | None = None
    bearer_token: SecretStr | None = None
    """Sent as ``Authorization: Bearer ...`` (e.g. to a proxy in front of Alertmanager)."""
    bearer_token_file: SecretFile = None
    """A file holding the bearer token, read at every call."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "an Alertmanager URL must start with http:// or https:// and name a host, "
                "e.g. http://alertmanager:9093"
            )
        if "@" in parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                "an Alertmanager URL holds no credentials, query or fragment: give them as "
                "basic_auth, bearer_token or bearer_token_file"
            )
        if parts.path.rstrip("/").endswith("/api/v2/alerts"):
            raise ValueError(
                "give Alertmanager's base URL (http://alertmanager:9093): vigil adds /api/v2/alerts"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_credential(self) -> Alertmanager:
        given = [self.basic_auth, self.bearer_token, self.bearer_token_file]
        if sum(c is not None for c in given) > 1:
            raise ValueError(
                "give an Alertmanager at most one of basic_auth, bearer_token and bearer_token_file"
            )
        return self

    @property
    def api_url(self) -> str:
        """Where alerts are posted."""
        return f"{self.url}/api/v2/alerts"

    @property
    def label(self) -> str:
        """How this Alertmanager is shown in logs and delivery outcomes."""
        return webhook_label(self.api_url)

    def headers(self) -> dict[str, str]:
        """The ``authorization`` header, if any (secret files are read now)."""
        if self.basic_auth is not None:
            import base64

            pair = f"{self.basic_auth.username}:{self.basic_auth.secret()}".encode()
            return {"authorization": f"Basic {base64.b64encode(pair).decode()}"}
        if self.bearer_token is not None:
            return {"authorization": f"Bearer {self.bearer_token.get_secret_value()}"}
        if self.bearer_token_file is not None:
            token = _read_secret(self.bearer_token_file, "bearer token")
            return {"authorization": f"Bearer {token}"}
        return {}


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

    isolation: Literal["process", "thread"] = "process"
    """Where a scheduled cycle's work runs: ``process`` (a child process per cycle, at a
    lower CPU priority, so the statistics never hold the serving worker's GIL and their
    memory is returned when the child exits; see :mod:`vigil.monitor.isolation`) or
    ``thread`` (a thread of the serving worker: to debug a cycle in-process, or for a
    script that runs the app without an ``if __name__ == "__main__":`` guard, which each
    child would run again)."""

    cycle_timeout_s: float | None = Field(default=None, gt=0)
    """Longest a scheduled cycle's child process may run (``isolation=process``): past it
    the child is killed, the failure logged, and the next interval runs the cycle again,
    which finishes the windows this one left (each is stored on its own). A hung child (a
    deadlock, stuck I/O) would otherwise stop monitoring for good. Default: three
    intervals, at least ten minutes (:attr:`cycle_timeout`). A thread cannot be killed:
    with ``isolation=thread`` there is no timeout."""

    lookback: str = "7d"
    """How far back a run reads the log: windows older than this are neither computed nor
    updated with late labels."""

    grace_s: float = Field(default=60.0, ge=0)
    """A time window counts as complete this long after its end (lets slow requests and
    other workers' records land)."""

    summaries: bool = True
    """Judge time windows of whole hours (``1h``, ``6h``, ``1d``) from mergeable summaries
    stored beside the compacted log (:mod:`vigil.monitor.summaries`), so memory does not
    grow with traffic; windows small enough for exact tests are still read raw. Needs
    ``pip install 'vigil[monitor]'``: without it such windows are read as rows (a warning
    says so once). ``false`` reads every window as rows."""

    rules: list[AlertRule] = Field(default_factory=default_rules)
    """Alert rules; setting any replaces the defaults (``[]`` turns alerting off)."""

    fairness: dict[str, ModelFairness] = Field(default_factory=dict)
    """Sensitive attributes per model name, measured by group in every window
    (:mod:`vigil.monitor.fairness`; docs/fairness.md)."""

    allow_private_webhooks: bool = False
    """Allow webhooks on loopback, link-local and private addresses (a receiver on this
    machine or network). Off, every webhook must point at public addresses, checked when
    configured and when called (see :mod:`vigil.monitor.webhooks`)."""

    webhooks: list[Webhook] = Field(default_factory=list)
    """Where notifications go: URLs, or ``{url, format}`` objects."""

    alertmanagers: list[Alertmanager] = Field(default_factory=list)
    """Alertmanagers that receive every alert through their API v2: base URLs, or
    ``{url, basic_auth | bearer_token | bearer_token_file}`` objects. Each transition is
    sent once, like a webhook's; firing alerts are sent again by every cycle, so
    Alertmanager keeps them until vigil resolves them (see ``alertmanager_hold_s``). The
    same address rule as webhooks applies (``allow_private_webhooks``)."""

    alertmanager_hold_s: float | None = Field(default=None, gt=0)
    """How long Alertmanager keeps a firing alert vigil stops sending (its ``endsAt``):
    a vigil that stopped watching leaves no alert firing for ever. Default: four
    monitoring intervals (``4 × interval_s``, or 20 minutes without a schedule), so three
    missed cycles resolve nothing; when ``vigil monitor run`` runs from cron, set it to
    four times the cron period."""

    external_url: str | None = None
    """vigil's address as people reach it (e.g. its load balancer's); alerts sent to
    Alertmanager link to the alert list there (``generatorURL``)."""

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

    @field_validator("webhooks", "alertmanagers", mode="before")
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

    @field_validator("alertmanagers")
    @classmethod
    def _public_alertmanagers(
        cls, value: list[Alertmanager], info: ValidationInfo
    ) -> list[Alertmanager]:
        allow = bool(info.data.get("allow_private_webhooks", False))
        for target in value:
            check_webhook_url(target.api_url, allow_private=allow)
        return value

    @field_validator("external_url")
    @classmethod
    def _check_external_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError("give vigil's address as http(s)://host[:port][/path], no query")
        return value.rstrip("/")

    @field_validator("fairness")
    @classmethod
    def _check_fairness_models(cls, value: dict[str, ModelFairness]) -> dict[str, ModelFairness]:
        for name in value:
            try:
                check_name("model name", name)
            except (InvalidNameError, InvalidParameterError) as exc:
                raise ValueError(exc.message) from None
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

    @property
    def hold_s(self) -> float:
        """``alertmanager_hold_s``, or its default."""
        if self.alertmanager_hold_s is not None:
            return self.alertmanager_hold_s
        return 4 * (self.interval_s or 300.0)

    @property
    def cycle_timeout(self) -> float:
        """``cycle_timeout_s``, or its default: three intervals, at least ten minutes (a
        first cycle over a long lookback takes minutes; a short interval must not kill it).

        >>> [MonitorSettings(interval_s=s).cycle_timeout for s in (300, 1)]
        [900.0, 600.0]
        >>> MonitorSettings(interval_s=1, cycle_timeout_s=2).cycle_timeout
        2.0
        """
        if self.cycle_timeout_s is not None:
            return self.cycle_timeout_s
        return max(3 * (self.interval_s or 300.0), 600.0)

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
