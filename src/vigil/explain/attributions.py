"""What an explanation is: per-row feature attributions that add up to the model's output.

Every explainer (:mod:`vigil.explain.explainers`) computes, for ``n`` rows, ``f`` features
and ``k`` outputs (one per class, or one for a regressor), SHAP values of shape
``(n, f, k)`` and base values of shape ``(n, k)``. :func:`select` then picks one output per
row (a requested class, the positive class of a binary classifier, or each row's predicted
class) and returns :class:`Attributions`, in which, for every row,

    ``base_value + sum(values) == output``

in the output space the explainer names (``value`` for a regressor's prediction,
``probability``, ``log-odds`` for a binary classifier's margin, ``margin`` for the raw
per-class scores a multiclass model turns into probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vigil.errors import NotExplainableError

OUTPUT_SPACES = {
    "value": "the model's prediction",
    "probability": "the class probability",
    "log-odds": "the log-odds of the class (the margin before the logistic function)",
    "margin": "the class's raw score before the model turns scores into probabilities",
}
"""Each output space an explainer may attribute, and what it means."""


@dataclass(frozen=True)
class RawAttributions:
    """An explainer's answer before one output is picked per row."""

    values: npt.NDArray[np.float64]
    """SHAP values, ``(rows, features, outputs)``."""
    base_values: npt.NDArray[np.float64]
    """``(rows, outputs)``."""


@dataclass(frozen=True)
class Attributions:
    """Per-row feature attributions of one output each (see the module docstring)."""

    feature_names: list[str]
    values: npt.NDArray[np.float64]
    """``(rows, features)``: how much each feature moved the output from the base value."""
    base_values: npt.NDArray[np.float64]
    """``(rows,)``: the expected output over the background (the reference data)."""
    labels: list[Any] | None
    """The class each row's attributions explain (``None`` for a regressor)."""
    method: str
    """How they were computed: ``linear``, ``tree``, ``xgboost``, ``lightgbm`` (exact) or
    ``permutation`` (a sampled estimate)."""
    output: str
    """The output space they add up to (a key of :data:`OUTPUT_SPACES`)."""
    exact: bool
    """Whether the values are exact SHAP values (else a sampled estimate)."""

    @property
    def outputs(self) -> npt.NDArray[np.float64]:
        """``base_values + values.sum(axis=1)``: the model's output in :attr:`output` space."""
        out: npt.NDArray[np.float64] = self.base_values + self.values.sum(axis=1)
        return out

    def to_rows(self) -> list[dict[str, Any]]:
        """One JSON-friendly object per row: ``base_value``, ``output``, ``label`` (for a
        classifier) and ``attributions`` (feature -> value, in signature order)."""
        outputs = self.outputs
        rows: list[dict[str, Any]] = []
        for i in range(len(self.base_values)):
            row: dict[str, Any] = {
                "base_value": float(self.base_values[i]),
                "output": float(outputs[i]),
                "attributions": dict(
                    zip(self.feature_names, (float(v) for v in self.values[i]), strict=True)
                ),
            }
            if self.labels is not None:
                row["label"] = self.labels[i]
            rows.append(row)
        return rows


def class_indexes(
    raw: RawAttributions, classes: list[Any] | None, label: Any | None
) -> npt.NDArray[np.intp]:
    """The output each row explains: ``label``'s, the positive class of a binary model, or
    each row's highest-scoring class (its predicted class) for a multiclass model."""
    n, _, k = raw.values.shape
    if label is not None:
        if not classes:
            raise NotExplainableError(
                "this model is a regressor: it has no classes to explain; leave out 'class'",
                detail={"field": "class", "got": label},
            )
        matches = [i for i, c in enumerate(classes) if c == label or str(c) == str(label)]
        if not matches:
            raise NotExplainableError(
                f"unknown class {label!r}; the model's classes are {classes[:20]}",
                detail={"field": "class", "expected": classes[:20], "got": label},
            )
        return np.full(n, matches[0], dtype=np.intp)
    if k == 1:
        return np.zeros(n, dtype=np.intp)
    if k == 2:
        return np.ones(n, dtype=np.intp)
    scores = raw.base_values + raw.values.sum(axis=1)
    return np.asarray(scores.argmax(axis=1), dtype=np.intp)


def select(
    raw: RawAttributions,
    *,
    feature_names: list[str],
    classes: list[Any] | None,
    label: Any | None,
    method: str,
    output: str,
    exact: bool,
) -> Attributions:
    """One output per row of ``raw`` (see :func:`class_indexes`)."""
    idx = class_indexes(raw, classes, label)
    rows = np.arange(len(idx))
    return Attributions(
        feature_names=feature_names,
        values=np.ascontiguousarray(raw.values[rows, :, idx], dtype=np.float64),
        base_values=np.asarray(raw.base_values[rows, idx], dtype=np.float64),
        labels=[classes[i] for i in idx] if classes else None,
        method=method,
        output=output,
        exact=exact,
    )


def two_sided(values: npt.NDArray[np.float64], base: npt.NDArray[np.float64]) -> RawAttributions:
    """A binary model's one margin as two outputs: class 0's log-odds are the negation of
    class 1's, so either class can be explained. ``values`` ``(n, f)``, ``base`` ``(n,)``."""
    return RawAttributions(
        values=np.stack([-values, values], axis=2), base_values=np.stack([-base, base], axis=1)
    )


def mean_absolute(raw: RawAttributions) -> npt.NDArray[np.float64]:
    """Global importance: each feature's mean absolute attribution over the rows, averaged
    over the outputs (the classes) — the usual SHAP summary."""
    out: npt.NDArray[np.float64] = np.abs(raw.values).mean(axis=(0, 2))
    return out
