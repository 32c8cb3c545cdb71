"""What an update policy is: when to retrain a model, how, and how to roll the result out.

A policy belongs to one registered model (its ``model``). It names its *triggers* (alert
rules firing about the model, a cron schedule, a threshold on a monitored series, or by
hand), the *retrain action* (a command vigil runs, or a webhook it calls: generic JSON or
Airflow's ``dagRuns`` API), the *training-data export* handed to that job, the *validation
gate* the candidate must pass against the served version, and the *rollout* (shadow, then
canary, then promotion) through an experiment endpoint the policy manages.

These classes only describe and validate; every check lives here, so the CLI, the admin
REST API and ``vigil.yaml`` refuse the same configurations with the same messages.

>>> cfg = parse_policy({"model": "churn", "action": {"kind": "command",
...     "argv": ["python", "train.py"]}, "triggers": {"alerts": ["dataset_drift"]}})
>>> cfg.action.timeout_s, cfg.gate.min_improvement, cfg.rollout.endpoint
(3600.0, 0.0, 'churn-live')
>>> parse_policy({"model": "churn", "action": {"kind": "command", "argv": []}})
Traceback (most recent call last):
...
vigil.errors.InvalidParameterError: invalid update policy: action.command.argv: List should have at least 1 item after validation, not 0
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FieldSerializationInfo,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from vigil.durations import parse_duration
from vigil.errors import InvalidParameterError, invalid_configuration
from vigil.experiments.config import CanaryGuards, CanaryStep
from vigil.monitor.webhooks import webhook_label
from vigil.names import check_alias, check_model_name, check_name

__all__ = [
    "CommandAction",
    "ExportSettings",
    "GateSettings",
    "PolicyConfig",
    "RolloutSettings",
    "ShadowStage",
    "Threshold",
    "Triggers",
    "WebhookAction",
    "parse_policy",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _duration(value: str, what: str) -> str:
    try:
        parse_duration(value, what=what)
    except InvalidParameterError as exc:
        raise ValueError(exc.message) from None
    return value


class Threshold(_Strict):
    """Trigger when the newest window's value of a monitored series crosses a limit."""

    metric: str = Field(min_length=1, max_length=64)
    """A series name as monitoring stores it (``accuracy``, ``drift.share``, ...)."""
    comparison: Literal[">", ">=", "<", "<="]
    value: float
    feature: str | None = None

    def crossed(self, observed: float) -> bool:
        """Whether ``observed`` crosses the limit.

        >>> Threshold(metric="accuracy", comparison="<", value=0.8).crossed(0.75)
        True
        """
        ops = {
            ">": observed > self.value,
            ">=": observed >= self.value,
            "<": observed < self.value,
            "<=": observed <= self.value,
        }
        return ops[self.comparison]


class Triggers(_Strict):
    """What starts a run besides ``vigil policy run`` (which always may)."""

    alerts: list[str] = Field(default_factory=list)
    """Alert rule names (``dataset_drift``, ``accuracy_drop``...): a firing about the model."""
    schedule: str | None = None
    """A cron expression (five fields, UTC), e.g. ``0 3 * * 1`` for Mondays at 03:00."""
    thresholds: list[Threshold] = Field(default_factory=list)

    @field_validator("alerts")
    @classmethod
    def _check_alerts(cls, value: list[str]) -> list[str]:
        for name in value:
            check_name("alert rule name", name)
        return value

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str | None) -> str | None:
        if value is None:
            return None
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(
                f"schedule {value[:60]!r} must be a cron expression of five fields "
                "(minute hour day month weekday), e.g. '0 3 * * 1'"
            )
        from vigil.policy.cron import check_cron  # croniter: only with a schedule

        check_cron(value)
        return " ".join(fields)


class CommandAction(_Strict):
    """Run a program (no shell): ``argv[0]`` with its arguments, the documented
    ``VIGIL_POLICY_*`` variables added to vigil's environment (see
    :mod:`vigil.policy.actions`), output appended to the run's log file."""

    kind: Literal["command"] = "command"
    argv: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=3600.0, gt=0)
    """Killed past this; a run with no candidate by then fails."""
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    """Extra variables for the job (not secrets: they are shown)."""


class WebhookAction(_Strict):
    """POST a JSON body that starts the job elsewhere.

    ``format: generic`` sends ``{"run_id", "model", "served_version", "export": {...}}``;
    ``format: airflow`` calls Airflow's REST API (``url`` is the ``.../api/v1/dags/{dag_id}/
    dagRuns`` endpoint) with ``{"dag_run_id": ..., "conf": {...}}``.
    """

    kind: Literal["webhook"] = "webhook"
    url: SecretStr
    format: Literal["generic", "airflow"] = "generic"
    timeout_s: float = Field(default=3600.0, gt=0)
    """How long to wait for the candidate after the call."""
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """E.g. ``Authorization: Basic ...`` for Airflow; secrets, never shown."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("the webhook URL must start with http:// or https://")
        return value

    @field_serializer("url")
    def _show_url(self, value: SecretStr, info: FieldSerializationInfo) -> str:
        if info.context and info.context.get("secrets"):
            return value.get_secret_value()
        return webhook_label(value.get_secret_value())

    @field_serializer("headers")
    def _show_headers(self, value: dict[str, SecretStr], info: FieldSerializationInfo) -> Any:
        if info.context and info.context.get("secrets"):
            return {k: v.get_secret_value() for k, v in value.items()}
        return {k: "***" for k in value}


Action = Annotated[CommandAction | WebhookAction, Field(discriminator="kind")]


class ExportSettings(_Strict):
    """The training-data export: recent captured features with their labels."""

    window: str = "7d"
    """How far back the captured traffic is read."""
    holdout_share: float = Field(default=0.2, ge=0, lt=1)
    """Share of the labelled rows kept back from the job (by request id) for the gate."""
    min_rows: int = Field(default=1, ge=0)
    """Fewer labelled rows than this: the run fails before calling the job."""

    _window = field_validator("window")(classmethod(lambda cls, v: _duration(v, "export window")))


class GateSettings(_Strict):
    """The validation gate (:mod:`vigil.batch.gate`) of the candidate against the served
    version, on the held-out labelled traffic and/or a holdout file."""

    metric: str | None = None
    """Default: accuracy for a classifier, rmse for a regressor."""
    min_improvement: float = 0.0
    alpha: float = Field(default=0.05, gt=0, lt=1)
    max_latency_ratio: float = Field(default=2.0, gt=0)
    max_group_drop: float = Field(default=0.05, ge=0, le=1)
    """When the model has sensitive attributes (``monitor.fairness``): the most accuracy
    the candidate may lose in any group of at least their ``min_group_size`` rows."""
    replay: bool = True
    """Score both on the held-out share of the exported (replayed) labelled traffic."""
    holdout: str | None = None
    """A labelled file (CSV, Parquet, JSON lines) on this host, scored as well."""
    target: str | None = None
    """The holdout file's label column (default: the served version's)."""

    @model_validator(mode="after")
    def _some_data(self) -> GateSettings:
        if not self.replay and self.holdout is None:
            raise ValueError("the gate needs data: keep replay on or name a holdout file")
        return self


class ShadowStage(_Strict):
    """The candidate answers copies of live requests before it answers anyone."""

    min_requests: int = Field(default=100, ge=0)
    min_duration_s: float = Field(default=300.0, ge=0)
    max_disagreement: float | None = Field(default=None, ge=0, le=1)
    """Most share of shadowed rows where the candidate's prediction differs from the
    served one (None: not judged; a retrained model is expected to differ somewhat)."""
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_latency_ratio: float = Field(default=3.0, gt=0)
    """Candidate's mean latency over the served version's, on the same requests."""


class RolloutSettings(_Strict):
    """Shadow, then canary, through the endpoint ``endpoint`` (created when missing; the
    policy owns its configuration while a run rolls out)."""

    endpoint: str | None = None
    """Default: ``<model>-live``."""
    shadow: ShadowStage | None = Field(default_factory=ShadowStage)
    """``null`` skips the shadow stage."""
    steps: list[CanaryStep] = Field(
        default_factory=lambda: [CanaryStep(percent=p) for p in (5, 25, 50, 100)]
    )
    guards: CanaryGuards = Field(default_factory=CanaryGuards)
    timeout_s: float = Field(default=86400.0, gt=0)
    """A stage still undecided after this fails the run (rolled back)."""

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        return None if value is None else check_name("endpoint name", value)


class PolicyConfig(_Strict):
    """One model's update policy."""

    model: str
    action: Action
    triggers: Triggers = Field(default_factory=Triggers)
    cooldown: str = "1h"
    """No automatic run starts sooner than this after the last one started."""
    served_alias: str = "production"
    """The alias of the served version: the gate's baseline, moved on promotion."""
    export: ExportSettings = Field(default_factory=ExportSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    enabled: bool = True
    """Off: triggers are ignored (``vigil policy run`` still works)."""

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        return check_model_name(value)

    @field_validator("served_alias")
    @classmethod
    def _check_alias(cls, value: str) -> str:
        return check_alias(value)

    _cooldown = field_validator("cooldown")(classmethod(lambda cls, v: _duration(v, "cooldown")))

    @model_validator(mode="after")
    def _fill_endpoint(self) -> PolicyConfig:
        if self.rollout.endpoint is None:
            rollout = self.rollout.model_copy(update={"endpoint": f"{self.model}-live"})
            object.__setattr__(self, "rollout", rollout)
        return self

    @property
    def endpoint(self) -> str:
        """The endpoint the rollout goes through."""
        return self.rollout.endpoint or f"{self.model}-live"

    def stored(self) -> dict[str, Any]:
        """The whole configuration as JSON, secrets included: what the store keeps."""
        out: dict[str, Any] = self.model_dump(mode="json", context={"secrets": True})
        return out

    def public(self) -> dict[str, Any]:
        """The configuration as anyone may see it (webhook as its label, headers hidden)."""
        out: dict[str, Any] = self.model_dump(mode="json")
        return out


def parse_policy(data: object) -> PolicyConfig:
    """Validate ``data`` (a JSON body, a YAML mapping) as a policy, raising
    :class:`~vigil.errors.InvalidParameterError` (422) that names the field and the reason."""
    try:
        return PolicyConfig.model_validate(data)
    except PydanticValidationError as exc:
        raise invalid_configuration(exc, "update policy") from None
