"""Alert rules: which metric, compared how with what, for how many windows in a row.

A rule applies to every series of its metric (one per model version, route and, for
per-feature metrics, feature) that its ``labels`` filter lets through. On each run the
series' latest complete windows are checked:

* a series **fires** when its last ``for_windows`` values all breach the threshold;
* a firing series **resolves** as soon as its latest value no longer breaches.

Each transition is one notification (see :mod:`vigil.monitor.alerts` for how it is
claimed once across workers). Partial windows never fire or resolve anything.

>>> rule = AlertRule(name="drift", metric="drift.dataset", comparison=">=", threshold=1,
...                  for_windows=2)
>>> transition(rule, [1.0, 0.0, 1.0, 1.0], firing=False)
'firing'
>>> transition(rule, [1.0, 1.0, 0.0], firing=True)
'resolved'
>>> AlertRule(name="x", metric="drift.psi", threshold=0.2)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for AlertRule
metric
  Value error, unknown metric 'drift.psi'; use one of: drift.dataset, drift.drifted, ... (see docs/monitoring.md) [type=value_error, input_value='drift.psi', input_type=str]
    For further information visit https://errors.pydantic.dev/2.14/v/value_error
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vigil.monitor.points import (
    FOUR_FIFTHS,
    HIGHER_IS_BETTER,
    PERFORMANCE_MEASURES,
    is_fairness_metric,
    is_known_metric,
    known_metrics,
)
from vigil.names import check_name

Comparison = Literal[">", ">=", "<", "<=", "==", "!="]
Severity = Literal["info", "warning", "critical"]
Transition = Literal["firing", "resolved"]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
LABEL_KEYS = ("model", "version", "route", "feature")


class AlertRule(BaseModel):
    """One alert rule (from settings: ``VIGIL_MONITOR_RULES`` or ``monitor.rules`` in YAML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """Rule name, also the alert's ``alertname`` label (letters, digits, ``.``, ``_``, ``-``)."""
    metric: str
    """A metric from :mod:`vigil.monitor.points`, e.g. ``drift.dataset``; a fairness
    metric may name any attribute or group with ``*``
    (``fairness.*.disparate_impact_ratio``): the rule then watches each matching series,
    and its alerts carry the series' name as the label ``metric``."""
    comparison: Comparison = ">"
    threshold: float
    for_windows: int = Field(default=1, ge=1, le=1000)
    """Fire only after this many consecutive breaching windows."""
    severity: Severity = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    """Only series whose ``model``, ``version``, ``route`` or ``feature`` match these
    shell-style patterns (``churn*``); e.g. ``{"model": "churn"}``."""
    summary: str | None = None
    """One line for people; ``{model}``, ``{version}``, ``{route}``, ``{feature}``,
    ``{value}``, ``{threshold}`` and ``{metric}`` are filled in."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_name("rule name", value)

    @field_validator("metric")
    @classmethod
    def _check_metric(cls, value: str) -> str:
        if "*" in value and is_fairness_metric(value):
            return value
        if not is_known_metric(value):
            names = known_metrics()
            raise ValueError(
                f"unknown metric {value!r}; use one of: {', '.join(names[:2])}, ... "
                "(see docs/monitoring.md)"
            )
        return value

    @field_validator("threshold")
    @classmethod
    def _check_threshold(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("threshold must be a finite number")
        return value

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(LABEL_KEYS))
        if unknown:
            raise ValueError(f"unknown label(s) {unknown}; filter on {', '.join(LABEL_KEYS)}")
        return value

    @property
    def is_pattern(self) -> bool:
        """Whether :attr:`metric` names several series (``fairness.*.<metric>``)."""
        return "*" in self.metric

    def watches(self, metric: str) -> bool:
        """Whether the series named ``metric`` is one this rule's metric names."""
        return fnmatchcase(metric, self.metric) if self.is_pattern else metric == self.metric

    def breaches(self, value: float) -> bool:
        """Whether ``value`` is on the alerting side of the threshold."""
        return _COMPARE[self.comparison](value, self.threshold)

    def matches(self, labels: Mapping[str, str | None]) -> bool:
        """Whether a series with these labels is watched by this rule."""
        return all(fnmatchcase(str(labels.get(k) or ""), p) for k, p in self.labels.items())

    def describe(self, labels: Mapping[str, str | None], value: float) -> str:
        """The alert's summary line."""
        fields = {k: labels.get(k) or "" for k in LABEL_KEYS}
        shown = f"{value:.4g}"
        if self.summary:
            try:
                metric = labels.get("metric") or self.metric
                return self.summary.format(
                    **fields, value=shown, threshold=self.threshold, metric=metric
                )
            except (KeyError, IndexError, ValueError):
                pass  # a bad template must not stop the alert; fall back to the default
        where = f"{fields['model']} v{fields['version']}"
        if fields["route"]:
            where += f" ({fields['route']})"
        if fields["feature"]:
            where += f" feature {fields['feature']}"
        metric = labels.get("metric") or self.metric
        return f"{where}: {metric} = {shown} {self.comparison} {self.threshold:g}"


def transition(rule: AlertRule, values: Sequence[float], *, firing: bool) -> Transition | None:
    """The state change a series' values (oldest first) call for, if any."""
    if not values:
        return None
    if firing:
        return None if rule.breaches(values[-1]) else "resolved"
    recent = values[-rule.for_windows :]
    if len(recent) == rule.for_windows and all(rule.breaches(v) for v in recent):
        return "firing"
    return None


DROP_THRESHOLD = 0.05
"""Default alert on a measure that should stay high (accuracy, ROC AUC, F1...): fire when
it is more than this below its registered value (absolute, as those are in [0, 1])."""
RISE_THRESHOLD = 0.2
"""Default alert on an error measure (log loss, MAE, RMSE, MAPE): fire when it is more than
20 % above its registered value (relative, as they have the target's units)."""


def performance_rules() -> list[AlertRule]:
    """One rule per performance measure, against its value at registration.

    A ``performance.<m>.delta`` or ``.change`` series exists only for a version registered
    with that metric (``--metric auc=0.91``), so these rules watch exactly the metrics each
    version was registered with, with the registered value as the baseline.

    >>> [(r.name, r.metric, r.comparison, r.threshold) for r in performance_rules()][:2]
    [('accuracy_drop', 'performance.accuracy.delta', '<', -0.05), ('ece_rise', 'performance.ece.delta', '>', 0.05)]
    """
    rules = []
    for measure in sorted(PERFORMANCE_MEASURES):
        if measure in HIGHER_IS_BETTER:
            rules.append(
                AlertRule(
                    name=f"{measure}_drop",
                    metric=f"performance.{measure}.delta",
                    comparison="<",
                    threshold=-DROP_THRESHOLD,
                    severity="critical",
                    summary=(
                        f"{{model}} v{{version}}: {measure} changed by {{value}} since it was "
                        "registered (alert below {threshold})"
                    ),
                )
            )
        elif measure == "ece":  # already a share in [0, 1]; often near 0, so not relative
            rules.append(
                AlertRule(
                    name="ece_rise",
                    metric="performance.ece.delta",
                    comparison=">",
                    threshold=DROP_THRESHOLD,
                    severity="warning",
                    summary=(
                        "{model} v{version}: calibration error changed by {value} since it "
                        "was registered (alert above {threshold})"
                    ),
                )
            )
        else:
            rules.append(
                AlertRule(
                    name=f"{measure}_rise",
                    metric=f"performance.{measure}.change",
                    comparison=">",
                    threshold=RISE_THRESHOLD,
                    severity="critical",
                    summary=(
                        f"{{model}} v{{version}}: {measure} changed by {{value}} of the value "
                        "it was registered with (alert above {threshold})"
                    ),
                )
            )
    return rules


def default_rules() -> list[AlertRule]:
    """The rules used when none are configured: dataset drift, an error rate above 5 %,
    one rule per performance measure against the value it was registered with (see
    :func:`performance_rules`), a disparate impact ratio below four fifths between the
    groups of any sensitive attribute (``fairness_disparity``; models with
    ``monitor.fairness`` only), the accuracy estimated before labels arrive falling by
    more than 0.05 from its value on the labelled reference (``estimated_accuracy_drop``),
    and a regressor's estimated MAE or RMSE rising more than 20 % above it
    (``estimated_mae_rise``, ``estimated_rmse_rise``)."""
    return [
        AlertRule(
            name="dataset_drift",
            metric="drift.dataset",
            comparison=">=",
            threshold=1,
            for_windows=1,
            severity="warning",
            summary="{model} v{version}: the input data drifted from the reference",
        ),
        AlertRule(
            name="error_rate",
            metric="traffic.error_rate",
            comparison=">",
            threshold=0.05,
            for_windows=1,
            severity="critical",
            summary="{model} v{version}: error rate {value} (alert above {threshold})",
        ),
        *performance_rules(),
        AlertRule(
            name="fairness_disparity",
            metric="fairness.*.disparate_impact_ratio",
            comparison="<",
            threshold=FOUR_FIFTHS,
            for_windows=1,
            severity="warning",
            summary=(
                "{model} v{version}: {metric} = {value}: a group is selected at less than "
                "four fifths of the most selected group's rate"
            ),
        ),
        AlertRule(
            name="estimated_accuracy_drop",
            metric="estimated.accuracy.delta",
            comparison="<",
            threshold=-DROP_THRESHOLD,
            for_windows=1,
            severity="warning",
            summary=(
                "{model} v{version}: accuracy estimated before labels changed by {value} "
                "against the labelled reference (alert below {threshold})"
            ),
        ),
        *(
            AlertRule(
                name=f"estimated_{measure}_rise",
                metric=f"estimated.{measure}.change",
                comparison=">",
                threshold=RISE_THRESHOLD,
                for_windows=1,
                severity="warning",
                summary=(
                    f"{{model}} v{{version}}: {measure} estimated before labels changed by "
                    "{value} of its value on the labelled reference (alert above {threshold})"
                ),
            )
            for measure in ("mae", "rmse")
        ),
    ]
