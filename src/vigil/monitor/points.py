"""The metric names a monitoring window produces, and one stored value: :class:`Point`.

Names are dotted, ``<family>.<measure>``; a point either describes the whole window
(``feature`` is ``None``) or one input feature. The set is fixed, so series, Prometheus
labels and alert rules all speak the same small vocabulary:

==============================  =======  ================================================
metric                          feature  value
==============================  =======  ================================================
``traffic.rows``                         successful predicted rows
``traffic.requests``                     requests (answered or rejected)
``traffic.rejected``                     requests answered with an error (4xx/5xx)
``traffic.error_rate``                   rejected / requests
``drift.share``                          share of compared features that drifted
``drift.dataset``                        1 when the dataset verdict is "drifted", else 0
``drift.n_drifted``                      number of drifted features
``drift.prediction``                     drift statistic of the predictions
``drift.prediction_drifted``             1 when the predictions drifted
``drift.statistic``             yes      the feature's drift statistic (method-dependent)
``drift.p_value``               yes      its Benjamini–Hochberg adjusted p-value (tests)
``drift.effect_size``           yes      its effect size
``drift.drifted``               yes      1 when the feature drifted
``quality.schema_violation_rate``        requests refused by validation / (those + rows)
``quality.missing_rate``        yes      share of rows missing the feature
``quality.missing_rate_change`` yes      that rate minus the baseline's
``quality.type_error_rate``     yes      share of values of the wrong type
``quality.out_of_range_rate``   yes      share outside the reference min..max
``quality.outlier_rate``        yes      share beyond the Tukey fences of the reference
``quality.unseen_category_rate`` yes     share of categories the reference never held
``performance.labelled``                 rows with a label
``performance.<m>``                      metric ``m`` on the labelled rows (accuracy, f1,
                                         roc_auc, log_loss, ece, precision, recall, mae,
                                         rmse, mape, r2)
``performance.<m>.delta``                ``m`` minus its value stored at registration
``performance.<m>.change``               that difference relative to the registered value
                                         (``0.2``: 20 % higher than at registration)
``estimated.<m>``                        metric ``m`` estimated before labels arrive from
                                         the logged probabilities (CBPE: accuracy,
                                         precision, recall, f1, roc_auc; classifiers) or
                                         features and predictions (DLE: mae, rmse;
                                         regressors)
``estimated.<m>.low`` / ``.high``        the 95 % interval of the value labels will realise
``estimated.<m>.delta``                  the estimate minus ``m`` on the labelled reference
                                         sample
``estimated.<m>.change``                 mae, rmse: that difference relative to the
                                         reference's value
``fairness.<a>.<m>``                     between the groups of sensitive attribute ``a``:
                                         demographic parity difference and ratio,
                                         disparate impact ratio, four_fifths (1: holds),
                                         equalized odds difference and ratio, equal
                                         opportunity difference, groups, small_groups
``fairness.<a>.<g>.<m>``                 group ``g`` of ``a``: count, labelled, small,
                                         selection_rate, accuracy, tpr, fpr (and each
                                         rate's ``_low`` / ``_high`` Wilson bounds)
==============================  =======  ================================================

A metric registered under a common other name (``--metric auc=0.91``) is compared with the
measure it names (``roc_auc``): see :func:`performance_measure`.

>>> is_known_metric("performance.accuracy.delta"), is_known_metric("drift.psi")
(True, False)
>>> is_known_metric("estimated.accuracy.low"), is_known_metric("estimated.log_loss")
(True, False)
>>> performance_measure("AUC"), performance_measure("rmse"), performance_measure("revenue")
('roc_auc', 'rmse', None)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

WINDOW_METRICS = frozenset(
    {
        "traffic.rows",
        "traffic.requests",
        "traffic.rejected",
        "traffic.error_rate",
        "drift.share",
        "drift.dataset",
        "drift.n_drifted",
        "drift.prediction",
        "drift.prediction_drifted",
        "quality.schema_violation_rate",
        "performance.labelled",
    }
)
FEATURE_METRICS = frozenset(
    {
        "drift.statistic",
        "drift.p_value",
        "drift.effect_size",
        "drift.drifted",
        "quality.missing_rate",
        "quality.missing_rate_change",
        "quality.type_error_rate",
        "quality.out_of_range_rate",
        "quality.outlier_rate",
        "quality.unseen_category_rate",
    }
)
PERFORMANCE_MEASURES = frozenset(
    {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
        "ece",
        "mae",
        "rmse",
        "mape",
        "r2",
    }
)
PROBABILITY_MEASURES = frozenset({"roc_auc", "log_loss", "ece"})
"""Measures computed from the class probabilities, so the server logs those when a
version was registered with one of them."""
HIGHER_IS_BETTER = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "r2"})
"""Measures that fall when the model gets worse (the others rise)."""
MEASURE_ALIASES = {
    "auc": "roc_auc",
    "roc-auc": "roc_auc",
    "rocauc": "roc_auc",
    "auroc": "roc_auc",
    "acc": "accuracy",
    "f1_score": "f1",
    "f1-score": "f1",
    "logloss": "log_loss",
    "log-loss": "log_loss",
    "r2_score": "r2",
    "mean_absolute_error": "mae",
    "root_mean_squared_error": "rmse",
    "mean_absolute_percentage_error": "mape",
}
"""Other names people register a measure under, and the measure they mean."""
ESTIMATED_ERRORS = frozenset({"mae", "rmse"})
"""A regressor's errors estimated before labels arrive (DLE), which also get ``.change``."""
ESTIMATED_MEASURES = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc"}) | (
    ESTIMATED_ERRORS
)
"""Measures estimated before labels arrive (:mod:`vigil.monitor.estimation`)."""
ESTIMATED_PREFIX = "estimated."
ESTIMATED_SUFFIXES = (".low", ".high", ".delta")
PERFORMANCE_PREFIX = "performance."
DELTA_SUFFIX = ".delta"
CHANGE_SUFFIX = ".change"


FAIRNESS_PREFIX = "fairness."
FOUR_FIFTHS = 0.8
"""The four-fifths rule: a group selected at less than 80 % of the most selected group's
rate suffers adverse impact (:mod:`vigil.stats.fairness`)."""
GROUP_METRICS = (
    "count",
    "labelled",
    "small",
    "selection_rate",
    "selection_rate_low",
    "selection_rate_high",
    "accuracy",
    "accuracy_low",
    "accuracy_high",
    "tpr",
    "tpr_low",
    "tpr_high",
    "fpr",
    "fpr_low",
    "fpr_high",
)
"""Measures of one group of a sensitive attribute (``small``: 1 when below the minimum
size); the keys of :attr:`vigil.stats.fairness.GroupRates.values`."""
BETWEEN_METRICS = (
    "groups",
    "small_groups",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "disparate_impact_ratio",
    "four_fifths",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
)
"""Measures between the groups (``groups``: groups compared; ``small_groups``: left
out); the keys of :attr:`vigil.stats.fairness.FairnessReport.between`."""
METRIC_LENGTH = 64
"""Longest stored metric name (the ``monitor_points.metric`` column)."""
ATTRIBUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,23}")
"""A sensitive attribute's name, as it appears in fairness series names."""


def is_fairness_metric(name: str) -> bool:
    """Whether ``name`` is a fairness series name, ``fairness.<attribute>.<metric>`` or
    ``fairness.<attribute>.<group>.<metric>`` (``*`` may stand for the attribute or the
    group, as in an alert rule's ``fairness.*.disparate_impact_ratio``).

    >>> is_fairness_metric("fairness.sex.f.tpr"), is_fairness_metric("fairness.sex.tpr")
    (True, False)
    >>> is_fairness_metric("fairness.*.disparate_impact_ratio")
    True
    """
    if not name.startswith(FAIRNESS_PREFIX) or len(name) > METRIC_LENGTH:
        return False
    parts = name[len(FAIRNESS_PREFIX) :].split(".")
    if len(parts) < 2 or not all(parts):
        return False
    attribute, metric = parts[0], parts[-1]
    if attribute != "*" and not ATTRIBUTE_NAME.fullmatch(attribute):
        return False
    if len(parts) == 2:
        return metric in BETWEEN_METRICS
    return metric in GROUP_METRICS


def performance_measure(name: str) -> str | None:
    """The performance measure a registered metric's name means, or ``None`` when
    monitoring cannot compute it from labels (a business metric, say)."""
    key = name.strip().lower()
    key = MEASURE_ALIASES.get(key, key)
    return key if key in PERFORMANCE_MEASURES else None


def is_known_metric(name: str) -> bool:
    """Whether ``name`` is a metric some window can produce."""
    if name in WINDOW_METRICS or name in FEATURE_METRICS:
        return True
    if name.startswith(FAIRNESS_PREFIX):
        return "*" not in name and is_fairness_metric(name)
    if name.startswith(PERFORMANCE_PREFIX):
        measure = name[len(PERFORMANCE_PREFIX) :]
        for suffix in (DELTA_SUFFIX, CHANGE_SUFFIX):
            if measure.endswith(suffix):
                return measure.removesuffix(suffix) in PERFORMANCE_MEASURES
        return measure in PERFORMANCE_MEASURES
    if name.startswith(ESTIMATED_PREFIX):
        measure = name[len(ESTIMATED_PREFIX) :]
        if measure.endswith(CHANGE_SUFFIX):
            return measure.removesuffix(CHANGE_SUFFIX) in ESTIMATED_ERRORS
        for suffix in ESTIMATED_SUFFIXES:
            measure = measure.removesuffix(suffix)
        return measure in ESTIMATED_MEASURES and name.count(".") <= 2
    return False


def known_metrics() -> list[str]:
    """Every metric name, sorted (for error messages and docs)."""
    perf = [f"{PERFORMANCE_PREFIX}{m}" for m in sorted(PERFORMANCE_MEASURES)]
    derived = [p + suffix for p in perf for suffix in (DELTA_SUFFIX, CHANGE_SUFFIX)]
    est = [f"{ESTIMATED_PREFIX}{m}" for m in sorted(ESTIMATED_MEASURES)]
    est_derived = [e + suffix for e in est for suffix in ESTIMATED_SUFFIXES]
    est_derived += [f"{ESTIMATED_PREFIX}{m}{CHANGE_SUFFIX}" for m in sorted(ESTIMATED_ERRORS)]
    return sorted(WINDOW_METRICS | FEATURE_METRICS) + perf + derived + est + est_derived


@dataclass(frozen=True)
class Point:
    """One value of one metric in one window (``feature`` set for per-feature metrics)."""

    metric: str
    value: float
    feature: str | None = None


def point(metric: str, value: float | int | bool | None, feature: str | None = None) -> list[Point]:
    """``[Point]`` for a finite value, ``[]`` for ``None``/NaN/inf (never stored).

    >>> point("drift.dataset", True), point("drift.p_value", None, "age")
    ([Point(metric='drift.dataset', value=1.0, feature=None)], [])
    """
    if value is None:
        return []
    number = float(value)
    return [Point(metric, number, feature)] if math.isfinite(number) else []
