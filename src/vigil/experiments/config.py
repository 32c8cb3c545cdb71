"""What an experiment endpoint is: its variants, its traffic policy and how units are keyed.

An endpoint is a named route (``POST /v1/endpoints/{endpoint}/predict``) over two or more
*variants*, each a model reference (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``). The
*policy* decides which variant answers each request. These classes only describe and validate
a configuration; storing it, routing by it and keeping its shared state live elsewhere in
:mod:`vigil.experiments`.

Every check lives here, so the CLI, the admin REST API and the Python API refuse the same bad
configurations with the same messages.

>>> cfg = parse_endpoint({
...     "name": "checkout",
...     "variants": [{"name": "a", "model": "models:/churn@production"},
...                  {"name": "b", "model": "models:/churn/3"}],
...     "policy": {"kind": "split", "weights": {"a": 90, "b": 10}},
... })
>>> cfg.policy.normalised_weights(cfg.variant_names)
{'a': 0.9, 'b': 0.1}
>>> parse_endpoint({
...     "name": "checkout",
...     "variants": [{"name": "a", "model": "models:/churn@production"}],
...     "policy": {"kind": "split", "weights": {"a": 1, "zz": 1}},
... })
Traceback (most recent call last):
...
vigil.errors.InvalidParameterError: invalid endpoint configuration: policy names unknown variant 'zz'; the variants are: a
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from itertools import pairwise
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

from vigil.errors import invalid_configuration
from vigil.monitor.webhooks import check_webhook_url, webhook_label
from vigil.names import check_alias, check_name
from vigil.uri import parse_model_ref

__all__ = [
    "BanditTrafficPolicy",
    "CanaryGuards",
    "CanaryPolicy",
    "CanaryStep",
    "EndpointConfig",
    "FixedPolicy",
    "Policy",
    "ShadowPolicy",
    "SplitPolicy",
    "UnitKey",
    "Variant",
    "parse_endpoint",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_variant_name(value: str) -> str:
    # Variant names share the model-name alphabet: they end up in URLs, metric labels and logs.
    return check_name("variant name", value)


def _check_endpoint_name(value: str) -> str:
    return check_name("endpoint name", value)


class Variant(_Strict):
    """One arm of an endpoint: a name and the model reference it serves."""

    name: str
    model: str
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``; an alias is followed as it moves."""

    _name = field_validator("name")(classmethod(lambda cls, v: _check_variant_name(v)))

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        if not value.startswith("models:/"):
            raise ValueError(
                f"model must be models:/NAME@ALIAS or models:/NAME/VERSION, got {value[:80]!r}"
            )
        parse_model_ref(value)  # raises InvalidURIError / InvalidNameError with the reason
        return value


class UnitKey(_Strict):
    """Where the unit id (user, session, ...) is found for sticky assignment.

    The header is read first, then the top-level field of a native JSON body; without a unit
    id, each request is assigned at random.
    """

    header: str | None = "x-unit-id"
    field: str | None = None

    @field_validator("header")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value


class FixedPolicy(_Strict):
    """Every request goes to one variant."""

    kind: Literal["fixed"] = "fixed"
    variant: str


class SplitPolicy(_Strict):
    """Fixed weights (A/B/n); weights are relative and need not sum to 1 or 100."""

    kind: Literal["split"] = "split"
    weights: dict[str, float]

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, value: dict[str, float]) -> dict[str, float]:
        for name, weight in value.items():
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"weight of {name!r} must be a finite number >= 0, got {weight}")
        if not value or sum(value.values()) <= 0:
            raise ValueError("at least one weight must be positive")
        return value

    def normalised_weights(self, variants: list[str]) -> dict[str, float]:
        total = sum(self.weights.values())
        return {v: self.weights.get(v, 0.0) / total for v in variants}


class CanaryStep(_Strict):
    """One rung of the ramp: the canary's share of traffic and when it may move on."""

    percent: float = Field(gt=0, le=100)
    min_duration_s: float = Field(default=60.0, ge=0)
    min_requests: int = Field(default=100, ge=0)


class CanaryGuards(_Strict):
    """Breaches that roll the canary back to 0 %, each relative to the stable variant."""

    max_error_rate_increase: float = Field(default=0.01, ge=0, le=1)
    """Canary error rate minus stable error rate (5xx and prediction failures)."""
    max_latency_ratio: float = Field(default=2.0, gt=1)
    """Allowed ratio of the canary's tail latency to the stable's (the stable's p99, or a
    lower quantile before 1,000 requests; tested, see :mod:`vigil.experiments.canary`)."""
    max_quality_drop: float | None = Field(default=None, ge=0, le=1)
    """Stable accuracy (or mean reward) minus canary's, once labels or rewards arrive."""
    min_requests: int = Field(default=50, ge=1)
    """Canary requests needed before a guard is judged (avoids noise from a handful)."""
    min_labels: int = Field(default=30, ge=1)
    """Labels (or else rewards) each variant needs before the quality guard is judged."""
    max_group_accuracy_drop: float | None = Field(default=None, ge=0, le=1)
    """Stable accuracy minus canary's in any one group of the model's sensitive
    attributes (``monitor.fairness``): a canary better on average but worse for one group
    is rolled back (:mod:`vigil.experiments.group_guard`). None: not judged."""
    min_group_labels: int = Field(default=30, ge=1)
    """Labelled rows each variant needs in a group before that group is judged."""


class CanaryPolicy(_Strict):
    """Ramp ``canary`` up against ``stable`` step by step; roll back on a breach."""

    kind: Literal["canary"] = "canary"
    stable: str
    canary: str
    steps: list[CanaryStep] = Field(
        default_factory=lambda: [CanaryStep(percent=p) for p in (5, 25, 50, 100)]
    )
    guards: CanaryGuards = Field(default_factory=CanaryGuards)
    promote_alias: str | None = "production"
    """Alias moved to the canary's version when the ramp completes (None: do not move)."""

    @model_validator(mode="after")
    def _check_ramp(self) -> CanaryPolicy:
        if self.stable == self.canary:
            raise ValueError("stable and canary must be different variants")
        if not self.steps:
            raise ValueError("the ramp needs at least one step")
        percents = [s.percent for s in self.steps]
        if any(b <= a for a, b in pairwise(percents)):
            raise ValueError(f"ramp steps must increase strictly, got {percents}")
        if percents[-1] != 100:
            raise ValueError(f"the ramp must end at 100 percent, got {percents[-1]}")
        if self.promote_alias is not None:
            check_alias(self.promote_alias)
        return self


class ShadowPolicy(_Strict):
    """``primary`` answers; each shadow gets a copy of the request off the hot path."""

    kind: Literal["shadow"] = "shadow"
    primary: str
    shadows: list[str] = Field(min_length=1)
    sample_rate: float = Field(default=1.0, gt=0, le=1)
    """Share of requests copied to the shadows."""


class BanditTrafficPolicy(_Strict):
    """A multi-armed bandit over all variants, learning from feedback rewards (the
    algorithm itself is a :class:`vigil.bandits.BanditPolicy`)."""

    kind: Literal["epsilon_greedy", "ucb1", "thompson"]
    epsilon: float = Field(default=0.1, ge=0, le=1)
    """Exploration rate of ``epsilon_greedy``."""
    reward: Literal["bernoulli", "gaussian"] = "bernoulli"
    """``bernoulli``: rewards are 0/1 (Beta posteriors for ``thompson``); ``gaussian``:
    continuous rewards (Normal posteriors)."""
    refresh_s: float = Field(default=1.0, gt=0, le=3600)
    """Longest a worker uses cached shared state before re-reading it."""


Policy = Annotated[
    FixedPolicy | SplitPolicy | CanaryPolicy | ShadowPolicy | BanditTrafficPolicy,
    Field(discriminator="kind"),
]


class EndpointConfig(_Strict):
    """A named endpoint: variants, policy, unit key, salt and where its alerts go.

    The salt and the webhooks are secrets (the salt predicts every unit's variant, a
    webhook URL often holds a token): the salt stays out of the ``repr`` and of
    :meth:`public`, and a dump shows each webhook as its label (scheme and host plus a
    digest, :func:`~vigil.monitor.webhooks.webhook_label`) unless asked for the secrets
    (:meth:`stored`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str
    variants: list[Variant] = Field(min_length=1)
    policy: Policy
    unit: UnitKey = Field(default_factory=UnitKey)
    salt: str = Field(
        default_factory=lambda: secrets.token_hex(8), min_length=1, max_length=64, repr=False
    )
    """Mixed into the unit hash so two endpoints split the same users independently."""
    alert_webhooks: list[SecretStr] = Field(default_factory=list)
    """Extra webhook URLs told about canary rollbacks and promotions (besides the monitoring
    webhooks); they must point at public addresses (see :mod:`vigil.monitor.webhooks`)."""
    cache: bool = False
    """Use the prediction cache of the variants' models (``serve: cache:``) on a canary or
    bandit endpoint, whose comparisons of latency and outcomes a cache would skew; fixed,
    split and shadow endpoints use it whenever the model has one."""

    _name = field_validator("name")(classmethod(lambda cls, v: _check_endpoint_name(v)))

    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    @model_validator(mode="after")
    def _check_references(self) -> EndpointConfig:
        names = self.variant_names
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        known = set(names)
        policy = self.policy
        used: list[str]
        if isinstance(policy, FixedPolicy):
            used = [policy.variant]
        elif isinstance(policy, SplitPolicy):
            used = list(policy.weights)
        elif isinstance(policy, CanaryPolicy):
            used = [policy.stable, policy.canary]
        elif isinstance(policy, ShadowPolicy):
            used = [policy.primary, *policy.shadows]
            if policy.primary in policy.shadows:
                raise ValueError("the primary cannot also be a shadow")
        else:
            used = []
            if len(names) < 2:
                raise ValueError(f"a {policy.kind} bandit needs at least two variants")
        for name in used:
            if name not in known:
                raise ValueError(
                    f"policy names unknown variant {name!r}; the variants are: {', '.join(names)}"
                )
        if isinstance(policy, SplitPolicy | CanaryPolicy) and len(names) < 2:
            raise ValueError(f"a {policy.kind} policy needs at least two variants")
        for url in self.webhook_urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(
                    f"alert webhook must be an http(s) URL, got {webhook_label(url)!r}"
                )
        return self

    @field_serializer("alert_webhooks")
    def _show_webhooks(self, value: list[SecretStr], info: FieldSerializationInfo) -> list[str]:
        if info.context and info.context.get("secrets"):
            return [v.get_secret_value() for v in value]
        return [webhook_label(v.get_secret_value()) for v in value]

    @property
    def webhook_urls(self) -> list[str]:
        """The webhooks' URLs, secrets and all (to call them)."""
        return [v.get_secret_value() for v in self.alert_webhooks]

    def check_webhooks(self, *, allow_private: bool, known: Sequence[str] = ()) -> None:
        """Refuse webhooks that point inside the network, resolving their names
        (:func:`~vigil.monitor.webhooks.check_webhook_url`; 422). The ``known`` ones,
        already stored, were checked when written and are checked again at every call."""
        for url in self.webhook_urls:
            if url not in known:
                check_webhook_url(url, allow_private=allow_private, resolve=True)

    def stored(self) -> dict[str, Any]:
        """The whole configuration as JSON, secrets included: what the store keeps."""
        out: dict[str, Any] = self.model_dump(mode="json", context={"secrets": True})
        return out

    def public(self) -> dict[str, Any]:
        """The configuration as JSON for anyone to see: webhooks as labels, no salt."""
        out: dict[str, Any] = self.model_dump(mode="json", exclude={"salt"})
        return out


def parse_endpoint(data: object) -> EndpointConfig:
    """Validate ``data`` (a mapping, e.g. a JSON body or a YAML file) as an endpoint, raising
    :class:`~vigil.errors.InvalidParameterError` (422) that names the field and the reason."""
    try:
        return EndpointConfig.model_validate(data)
    except PydanticValidationError as exc:
        raise invalid_configuration(exc, "endpoint configuration") from None
