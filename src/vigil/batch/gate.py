"""A validation gate: should a candidate model replace the current one?

Both models score the same labelled rows (a holdout file here; replayed traffic later), so
their results are paired, and the comparison uses paired statistics
(:mod:`vigil.stats.paired`): McNemar's test for accuracy, a paired bootstrap interval for
any other metric. The rule has one parameter, ``min_improvement`` (δ, in the metric's
units, "better" meaning higher accuracy or lower error):

* δ ≥ 0 (the candidate must be better): the paired test must find the candidate better at
  level ``alpha`` (McNemar's one-sided p < α for accuracy; the one-sided lower bound of the
  improvement's interval above 0 otherwise) **and** the observed improvement be ≥ δ;
* δ < 0 (it may be a little worse: non-inferiority): the one-sided lower bound of the
  improvement's interval must be ≥ δ.

Guards must hold as well: the candidate takes every input the current model's clients send
(no new required feature, the same kind of value for each) and answers the same task and
classes; and its prediction time per row is within ``max_latency_ratio`` of the current
model's (the best of several interleaved CPU-time measurements on the same rows, which a
busy machine disturbs far less than wall time), the current model's time counted as at
least :data:`LATENCY_FLOOR_S` a row: a model that costs nanoseconds a row (a linear model
on vigil's fast path) would otherwise fail every candidate that costs a few hundred, all
of it lost in the serving stack's tens of microseconds a request. When the model has sensitive attributes
(``fairness``, as ``monitor.fairness`` declares them), a classifier's accuracy must not
fall by more than ``max_group_drop`` in any group of at least ``min_group_size`` rows
(smaller groups are listed with their numbers, not judged): the ``fairness`` guard, with
every group's numbers in the verdict.

Memory holds the labels and the two models' answers per row (a few numbers a row), never
the features beyond one chunk.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from time import process_time
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.batch.inputs import ChunkValidator
from vigil.batch.labels import as_classes
from vigil.batch.readers import open_reader
from vigil.errors import DataFileError, InvalidParameterError
from vigil.file_formats import ROWS, format_of
from vigil.monitor.fairness import ModelFairness, SensitiveAttribute
from vigil.monitor.performance import label_key
from vigil.params import check_probability
from vigil.stats.paired import mcnemar_test, paired_bootstrap_ci, paired_mean_difference_ci
from vigil.stats.results import Estimate, TestResult, jsonable

if TYPE_CHECKING:
    from vigil.bundle.model import LoadedBundle
    from vigil.bundle.signature import Signature

DEFAULT_CHUNK_ROWS = 65_536
LATENCY_ROWS = 10_000
"""Rows timed for the latency guard (the first chunk, at most this many)."""
LATENCY_REPEATS = 5
TIMING_SECONDS = 0.05
"""Each timing of the latency guard lasts at least this long (repeated calls)."""
LATENCY_FLOOR_S = 1e-6
"""The least prediction time per row the latency guard compares a candidate with: below a
microsecond a row, a model's cost does not move what a request costs."""


@dataclass(frozen=True)
class GateMetric:
    """A metric the gate can compare: which direction is better, whether it needs
    probabilities, and how to compute it (per row when it is a mean of per-row values,
    which makes its bootstrap fast)."""

    name: str
    task: str
    higher_is_better: bool
    needs_proba: bool = False


METRICS: dict[str, GateMetric] = {
    m.name: m
    for m in [
        GateMetric("accuracy", "classification", True),
        GateMetric("f1", "classification", True),
        GateMetric("precision", "classification", True),
        GateMetric("recall", "classification", True),
        GateMetric("roc_auc", "classification", True, needs_proba=True),
        GateMetric("log_loss", "classification", False, needs_proba=True),
        GateMetric("mae", "regression", False),
        GateMetric("rmse", "regression", False),
        GateMetric("r2", "regression", True),
    ]
}
ALIASES = {"auc": "roc_auc", "logloss": "log_loss", "f1_score": "f1"}


@dataclass(frozen=True)
class Guard:
    """One condition besides the metric: its name, whether it held, and what was seen."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GroupComparison:
    """The two models in one group of a sensitive attribute, on the gate's rows."""

    attribute: str
    group: str
    rows: int
    current: float
    candidate: float
    drop: float
    """Current accuracy minus the candidate's (positive: the candidate is worse)."""
    judged: bool
    """False for a group below the minimum size (shown, not judged)."""


@dataclass(frozen=True)
class GateVerdict:
    """The gate's answer and every number behind it (``to_dict()`` for JSON)."""

    passed: bool
    metric: str
    rows: int
    current: float
    candidate: float
    improvement: Estimate
    """Candidate better by this much (higher accuracy, lower error), with the one-sided
    bound at ``1 - alpha`` as ``low`` (the interval is two-sided at ``1 - 2 alpha``)."""
    test: TestResult | None
    min_improvement: float
    alpha: float
    guards: list[Guard]
    reasons: list[str] = field(default_factory=list)
    current_model: str = ""
    candidate_model: str = ""
    groups: list[GroupComparison] = field(default_factory=list)
    """Both models' accuracy in each group of each sensitive attribute (fairness guard)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = jsonable(self)
        return out


def resolve_metric(name: str | None, signature: Signature) -> GateMetric:
    """The metric named (``auc`` reads as ``roc_auc``), or the task's default: accuracy
    for a classifier, RMSE for a regressor."""
    task = signature.outputs.task
    if name is None:
        if task not in ("classification", "regression"):
            raise InvalidParameterError(
                f"the current model's task is {task!r}; name the metric to compare with "
                f"--metric (one of {', '.join(METRICS)})"
            )
        return METRICS["accuracy" if task == "classification" else "rmse"]
    key = ALIASES.get(name.lower(), name.lower())
    if key not in METRICS:
        raise InvalidParameterError(
            f"unknown metric {name!r}; the gate compares {', '.join(METRICS)}",
            detail={"metric": name},
        )
    metric = METRICS[key]
    if task in ("classification", "regression") and metric.task != task:
        raise InvalidParameterError(
            f"{metric.name} is a {metric.task} metric but the current model is a {task} "
            "model; choose another --metric"
        )
    return metric


def _label(bundle: LoadedBundle) -> str:
    return f"models:/{bundle.name}/{bundle.version}" if bundle.name else "(unnamed)"


def signature_guard(current: Signature, candidate: Signature) -> Guard:
    """The candidate accepts what the current model's clients send and answers alike."""
    theirs = {f.name: f for f in current.inputs}
    problems: list[str] = []
    for spec in candidate.inputs:
        sent = theirs.get(spec.name)
        if sent is None:
            if spec.required:
                problems.append(f"needs feature {spec.name!r}, which clients do not send")
            continue
        numeric = {spec.dtype in ("string", "category"), sent.dtype in ("string", "category")}
        if len(numeric) != 1:
            problems.append(f"reads {spec.name!r} as {spec.dtype}, clients send {sent.dtype}")
    if candidate.outputs.task != current.outputs.task:
        problems.append(
            f"answers a {candidate.outputs.task} task, the current model {current.outputs.task}"
        )
    mine, yours = current.outputs.classes, candidate.outputs.classes
    if mine is not None and yours is not None and sorted(map(str, mine)) != sorted(map(str, yours)):
        problems.append(f"predicts classes {yours}, the current model {mine}")
    if problems:
        return Guard("signature", False, "; ".join(problems))
    return Guard("signature", True, "takes every input clients send; same task and classes")


@dataclass
class _Answers:
    """Labels and both models' answers, row by row, over the whole file."""

    y: list[np.ndarray] = field(default_factory=list)
    pred: tuple[list[np.ndarray], list[np.ndarray]] = field(default_factory=lambda: ([], []))
    proba: tuple[list[np.ndarray], list[np.ndarray]] = field(default_factory=lambda: ([], []))
    latency: tuple[float, float] = (math.inf, math.inf)
    """Each model's CPU seconds per row (:func:`_time_both` on the first chunk's head)."""
    groups: dict[str, list[np.ndarray]] = field(default_factory=dict)
    """Each sensitive attribute's group per row (``None`` where missing)."""

    def joined(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        proba = np.concatenate(self.proba[k]) if self.proba[k] else None
        return np.concatenate(self.y), np.concatenate(self.pred[k]), proba


def _time_both(
    models: tuple[LoadedBundle, LoadedBundle], inputs: tuple[Any, Any]
) -> tuple[float, float]:
    """Each model's prediction time for the same rows: the best of several interleaved
    timings, each of enough calls to last ``TIMING_SECONDS`` (as ``timeit`` does), so a
    millisecond's call is not judged on one noisy reading. CPU time of this process (all
    its threads), which other jobs on a busy machine stretch far less than wall time."""
    loops = []
    for model, x in zip(models, inputs, strict=True):
        started = process_time()
        model.predict(x)
        loops.append(max(1, math.ceil(TIMING_SECONDS / max(process_time() - started, 1e-6))))
    best = [math.inf, math.inf]
    for repeat in range(LATENCY_REPEATS):
        for k in (0, 1) if repeat % 2 == 0 else (1, 0):
            started = process_time()
            for _ in range(loops[k]):
                models[k].predict(inputs[k])
            best[k] = min(best[k], (process_time() - started) / loops[k])
    return best[0], best[1]


def _group_column(attribute: SensitiveAttribute) -> str:
    """Where a data file holds an attribute: a feature under its name, a passthrough field
    as the inference log and its export name it (``passthrough.<field>``), a field of
    feedback as ``feedback.<field>``."""
    name = attribute.field or attribute.name
    return name if attribute.source == "feature" else attribute.column


def _score(
    models: tuple[LoadedBundle, LoadedBundle],
    data: Path,
    target: str,
    metric: GateMetric,
    chunk_rows: int,
    progress: Callable[[int], None] | None,
    attributes: Sequence[SensitiveAttribute] = (),
) -> _Answers:
    fmt = format_of(data, ROWS)
    if not data.is_file():
        raise DataFileError(f"data file {str(data)!r} does not exist", detail={"path": str(data)})
    # The reader types every feature either model reads (CSV text parsed per feature).
    current, candidate = (m.signature for m in models)
    theirs = {f.name for f in current.inputs}
    both = current.model_copy(
        update={"inputs": [*current.inputs, *(f for f in candidate.inputs if f.name not in theirs)]}
    )
    reader = open_reader(data, fmt, both, chunk_rows=chunk_rows)
    answers = _Answers()
    try:
        if target not in reader.columns:
            raise DataFileError(
                f"the label column {target!r} is not in {data.name}; its columns are "
                f"{reader.columns}; name the label with --target",
                detail={"column": target},
            )
        # A field of feedback is in an export only when its feedback carried it: the
        # groups of such an attribute are judged where the file has them.
        attributes = [a for a in attributes if a.source != "feedback" or a.column in reader.columns]
        missing = [_group_column(a) for a in attributes if _group_column(a) not in reader.columns]
        if missing:
            raise DataFileError(
                f"the sensitive attribute column(s) {missing} are not in {data.name}; its "
                f"columns are {reader.columns}",
                detail={"columns": missing},
            )
        checks = [ChunkValidator(m.signature, source=data.name) for m in models]
        own = [frozenset(f.name for f in m.signature.inputs) for m in models]
        for check in checks:
            check.check_columns(reader.columns)
        for chunk in reader.chunks():
            prepared = [
                check.prepare(replace(chunk, text_columns=chunk.text_columns & names))
                for check, names in zip(checks, own, strict=True)
            ]
            labels = prepared[0].table.column(target).to_numpy(zero_copy_only=False)
            if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in labels):
                raise DataFileError(
                    f"the label column {target!r} has empty values (rows from "
                    f"{chunk.offset}); the gate needs a label on every row",
                    detail={"column": target},
                )
            answers.y.append(labels)
            for attribute in attributes:
                values = prepared[0].table.column(_group_column(attribute)).to_pylist()
                keys = [None if v is None else label_key(v) for v in values]
                answers.groups.setdefault(attribute.name, []).append(np.asarray(keys, dtype=object))
            if not answers.pred[0]:
                head = tuple(p.X[:LATENCY_ROWS] for p in prepared)
                first, second = _time_both(models, (head[0], head[1]))
                answers.latency = (first / len(head[0]), second / len(head[0]))  # a row
            for k, model in enumerate(models):
                answers.pred[k].append(np.asarray(model.predict(prepared[k].X)).ravel())
                if metric.needs_proba:
                    answers.proba[k].append(np.asarray(model.predict_proba(prepared[k].X)))
            if progress is not None:
                progress(chunk.num_rows)
    finally:
        reader.close()
    if not answers.y:
        raise DataFileError(f"{data.name} has no rows; the gate needs labelled rows")
    return answers


def _metric_fn(metric: GateMetric, classes: list[Any] | None) -> Callable[..., float]:
    from sklearn import metrics as skm  # scikit-learn: what scores a classifier's answers

    if metric.name in ("f1", "precision", "recall"):
        score = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}
        fn = score[metric.name]
        if classes is not None and len(classes) == 2:
            return lambda y, p: fn(y, p, pos_label=classes[1], zero_division=0)
        return lambda y, p: fn(y, p, average="macro", zero_division=0)
    if metric.name == "roc_auc":
        if classes is not None and len(classes) == 2:
            return lambda y, s: skm.roc_auc_score(y == classes[1], s[:, 1])
        return lambda y, s: skm.roc_auc_score(y, s, multi_class="ovr", labels=classes)
    chosen: Callable[..., float] = (
        skm.root_mean_squared_error if metric.name == "rmse" else skm.r2_score
    )
    return chosen


def _per_row(
    metric: GateMetric,
    y: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None,
    classes: list[Any] | None,
) -> np.ndarray | None:
    """The per-row values whose mean is the metric (None when it is not such a mean),
    signed so that higher is better."""
    if metric.name == "accuracy":
        correct: np.ndarray = np.asarray(pred == y, dtype=np.float64)
        return correct
    if metric.name == "mae":
        errors: np.ndarray = np.abs(pred.astype(np.float64) - y.astype(np.float64))
        return -errors
    if metric.name == "log_loss" and proba is not None and classes is not None:
        index = {c: i for i, c in enumerate(classes)}
        column = np.array([index.get(v, -1) for v in y.tolist()])
        if (column < 0).any():
            raise DataFileError("a label is not one of the model's classes; log loss needs them")
        p = np.clip(proba[np.arange(len(y)), column], 1e-15, 1.0)
        logs: np.ndarray = np.log(p)
        return logs
    return None


def compare_groups(
    groups: dict[str, np.ndarray],
    correct: tuple[np.ndarray, np.ndarray],
    *,
    min_group_size: int,
) -> list[GroupComparison]:
    """Each group's accuracy for the current and the candidate model, from whether each
    row was answered right (``correct``: current's, candidate's).

    >>> ok = (np.array([1, 1, 1, 0]), np.array([1, 0, 1, 1]))
    >>> [(g.group, g.drop) for g in compare_groups({"sex": np.array(["f", "f", "m", "m"])},
    ...                                             ok, min_group_size=2)]
    [('f', 0.5), ('m', -0.5)]
    """
    out: list[GroupComparison] = []
    for attribute, values in groups.items():
        names = sorted({v for v in values.tolist() if v is not None})
        for name in names:
            mask = values == name
            n = int(mask.sum())
            a, b = float(correct[0][mask].mean()), float(correct[1][mask].mean())
            out.append(GroupComparison(attribute, name, n, a, b, a - b, n >= min_group_size))
    return out


def validate_candidate(
    current: LoadedBundle,
    candidate: LoadedBundle,
    data: str | os.PathLike[str],
    *,
    target: str,
    metric: str | None = None,
    min_improvement: float = 0.0,
    alpha: float = 0.05,
    max_latency_ratio: float = 2.0,
    n_resamples: int = 2000,
    seed: int = 0,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
    fairness: ModelFairness | None = None,
    max_group_drop: float = 0.05,
) -> GateVerdict:
    """Score ``current`` and ``candidate`` on the labelled rows of ``data`` and decide
    whether the candidate may replace the current model (see the module's rules);
    ``fairness`` names the sensitive attributes whose groups the candidate must not
    harm by more than ``max_group_drop`` accuracy."""
    check_probability("validate_candidate", "alpha", alpha)
    if not math.isfinite(min_improvement):
        raise InvalidParameterError("min_improvement must be a finite number")
    if not (math.isfinite(max_latency_ratio) and max_latency_ratio > 0):
        raise InvalidParameterError("max_latency_ratio must be a finite number > 0")
    chosen = resolve_metric(metric, current.signature)
    guards = [signature_guard(current.signature, candidate.signature)]
    for model in (current, candidate):
        if chosen.needs_proba and not model.model.has_proba:
            raise InvalidParameterError(
                f"{chosen.name} needs probabilities and {_label(model)} has no predict_proba; "
                "choose another --metric"
            )
    if not (math.isfinite(max_group_drop) and 0 <= max_group_drop <= 1):
        raise InvalidParameterError("max_group_drop must be a number from 0 to 1")
    judged = fairness is not None and current.signature.outputs.task == "classification"
    attributes = fairness.attributes if fairness is not None and judged else []
    models = (current, candidate)
    answers = _score(models, Path(data), target, chosen, chunk_rows, progress, attributes)
    classes = current.signature.outputs.classes
    classes = list(classes) if classes is not None else None
    (y, pred_a, proba_a), (_, pred_b, proba_b) = answers.joined(0), answers.joined(1)
    if chosen.task == "classification" and classes is not None:
        # Labels read from a file may be text where the model's classes are numbers.
        y = as_classes(y, classes)
    sign = 1.0 if chosen.higher_is_better else -1.0
    level = 1.0 - 2.0 * alpha
    rows_a = _per_row(chosen, y, pred_a, proba_a, classes)
    rows_b = _per_row(chosen, y, pred_b, proba_b, classes)
    if rows_a is not None and rows_b is not None:
        value_a, value_b = float(rows_a.mean()), float(rows_b.mean())
        if chosen.name != "accuracy":  # the per-row values are signed: higher is better
            value_a, value_b = -value_a, -value_b
        improvement = paired_mean_difference_ci(
            rows_a, rows_b, level=level, n_resamples=n_resamples, seed=seed
        )
    else:
        fn = _metric_fn(chosen, classes)
        a, b = (proba_a, proba_b) if chosen.needs_proba else (pred_a, pred_b)
        value_a, value_b = float(fn(y, a)), float(fn(y, b))

        def signed(yy: np.ndarray, s: np.ndarray) -> float:
            return sign * float(fn(yy, s))

        improvement = paired_bootstrap_ci(
            signed, y, a, b, level=level, n_resamples=n_resamples, seed=seed
        )
    improvement = Estimate(
        improvement.value, improvement.low, improvement.high, 1.0 - alpha, improvement.method
    )
    test = (
        mcnemar_test(pred_a == y, pred_b == y, alternative="larger")
        if chosen.name == "accuracy"
        else None
    )

    current_s, candidate_s = answers.latency
    ratio = candidate_s / max(current_s, LATENCY_FLOOR_S)
    guards.append(
        Guard(
            "latency",
            ratio <= max_latency_ratio,
            f"{ratio:.2f}× the current model's prediction time per row "
            f"(limit {max_latency_ratio:g}×; {candidate_s * 1e6:.3g} against "
            f"{current_s * 1e6:.3g} µs a row, counted as at least {LATENCY_FLOOR_S * 1e6:g})",
        )
    )
    groups: list[GroupComparison] = []
    if fairness is not None and not judged:
        guards.append(Guard("fairness", True, "not judged: group accuracy needs a classifier"))
    elif fairness is not None:
        columns = {a: np.concatenate(parts) for a, parts in answers.groups.items()}
        groups = compare_groups(
            columns, (pred_a == y, pred_b == y), min_group_size=fairness.min_group_size
        )
        guards.append(_fairness_guard(groups, max_group_drop, fairness.min_group_size))
    reasons: list[str] = []
    if min_improvement >= 0:
        significant = test.p_value < alpha if test is not None else improvement.low > 0
        if not significant:
            evidence = (
                f"McNemar p = {test.p_value:.3g}"
                if test is not None
                else f"the one-sided {1 - alpha:.0%} bound of the improvement is {improvement.low:.4g}"
            )
            reasons.append(f"the candidate is not shown better at alpha {alpha:g} ({evidence})")
        if improvement.value < min_improvement:
            reasons.append(
                f"{chosen.name} improves by {improvement.value:.4g}, less than the "
                f"{min_improvement:g} required"
            )
    elif improvement.low < min_improvement:
        reasons.append(
            f"the candidate may be worse by more than {-min_improvement:g} {chosen.name} "
            f"(one-sided {1 - alpha:.0%} bound of the improvement: {improvement.low:.4g})"
        )
    reasons += [f"{g.name} guard: {g.detail}" for g in guards if not g.passed]
    return GateVerdict(
        passed=not reasons,
        metric=chosen.name,
        rows=len(y),
        current=value_a,
        candidate=value_b,
        improvement=improvement,
        test=test,
        min_improvement=min_improvement,
        alpha=alpha,
        guards=guards,
        reasons=reasons,
        current_model=_label(current),
        candidate_model=_label(candidate),
        groups=groups,
    )


def _fairness_guard(groups: list[GroupComparison], margin: float, min_size: int) -> Guard:
    judged = [g for g in groups if g.judged]
    if not judged:
        return Guard("fairness", True, f"no group has {min_size} rows: nothing judged")
    worst = max(judged, key=lambda g: g.drop)
    where = f"{worst.attribute}={worst.group}"
    seen = f"accuracy for {where} ({worst.rows} rows) {worst.current:.4g} → {worst.candidate:.4g}"
    if worst.drop > margin:
        return Guard("fairness", False, f"{seen}: a drop of {worst.drop:.4g} > {margin:g}")
    return Guard("fairness", True, f"no group loses more than {margin:g} accuracy (worst: {seen})")
