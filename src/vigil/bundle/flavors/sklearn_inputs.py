"""What a fitted scikit-learn model records of its input columns: which it reads, and of
which type, where that can be known.

A ``ColumnTransformer`` lists the columns each of its transformers reads; an encoder
(``OneHotEncoder``, ``OrdinalEncoder``, ``TargetEncoder``) records the categories it
saw, so its columns are categorical with those categories (strings, or integers); a
numeric transformer or estimator (a scaler, a linear model, a forest...) only takes
numbers. A ``Pipeline`` is read through its first step; a ``SimpleImputer`` fitted on
text hands its columns on to the step after it; ``passthrough`` columns take the type of
what consumes them. Where the model does not record a column's type (a
``FunctionTransformer``, an estimator from another library, a meta-estimator over
models of different inputs), the column's type is *unknown*: the caller must ask for
reference data rather than guess.

>>> import pandas as pd
>>> from sklearn.compose import ColumnTransformer
>>> from sklearn.linear_model import LogisticRegression
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import OneHotEncoder
>>> X = pd.DataFrame({"plan": ["basic", "pro", "basic"], "tenure": [1.0, 5.0, 9.0]})
>>> model = make_pipeline(
...     ColumnTransformer([("p", OneHotEncoder(), ["plan"])], remainder="passthrough"),
...     LogisticRegression()).fit(X, [0, 1, 0])
>>> inputs = model_inputs(model)
>>> [(s.name, s.dtype, s.categories) for s in inputs.specs.values()], inputs.unknown
([('plan', 'string', ['basic', 'pro']), ('tenure', 'float64', None)], {})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vigil.bundle.flavors.base import default_feature_names, python_values
from vigil.bundle.signature import FeatureSpec

_ENCODERS = frozenset({"OneHotEncoder", "OrdinalEncoder", "TargetEncoder"})
_ANY_INPUT = frozenset({"FunctionTransformer", "DictVectorizer", "FeatureHasher"})


@dataclass
class ModelInputs:
    """The columns a model reads, in its fitted order: typed ones and unknown ones."""

    names: list[str]
    """Every column the model reads, in the order it was fitted on."""
    specs: dict[str, FeatureSpec] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)
    """Column -> why its type cannot be known."""


def model_inputs(estimator: Any) -> ModelInputs | None:
    """The columns ``estimator`` reads; ``None`` when it records neither names nor width."""
    names = getattr(estimator, "feature_names_in_", None)
    n = getattr(estimator, "n_features_in_", None)
    if names is not None:
        all_names = [str(x) for x in names]
    elif n is not None:
        all_names = default_feature_names(int(n))
    else:
        return None
    found: dict[str, FeatureSpec | str] = {}
    _walk(estimator, all_names, [], found)
    used = [n for n in all_names if n in found]
    inputs = ModelInputs(names=used)
    for name in used:
        spec = found[name]
        if isinstance(spec, FeatureSpec):
            inputs.specs[name] = spec
        else:
            inputs.unknown[name] = spec
    return inputs


def _is(step: Any, *names: str) -> bool:
    return type(step).__name__ in names and type(step).__module__.startswith("sklearn.")


def _walk(
    step: Any,
    columns: list[str],
    then: list[Any],
    found: dict[str, FeatureSpec | str],
) -> None:
    """Record in ``found`` the type of each of ``columns`` fed to ``step``, whose output
    goes on to the steps ``then``."""
    if isinstance(step, str) and step == "drop":
        return
    if _passes_through(step):
        if then:
            _walk(then[0], columns, then[1:], found)
        else:
            found.update(dict.fromkeys(columns, "the model passes it through untouched"))
        return
    if _is(step, "Pipeline"):
        steps = [s for _, s in step.steps]
        _walk(steps[0], columns, steps[1:] + then, found)
        return
    if _is(step, "ColumnTransformer"):
        for _, transformer, selected in step.transformers_:
            picked = _selected(selected, columns)
            if _passes_through(transformer):
                # Passed-through columns reach the next step mixed with encoded ones.
                consumer = then[0] if then else None
                if consumer is not None and _numeric_only(consumer):
                    found.update({c: FeatureSpec(name=c, dtype="float64") for c in picked})
                else:
                    reason = "it is passed through to a step that records no input types"
                    found.update(dict.fromkeys(picked, reason))
            else:
                _walk(transformer, picked, [], found)
        return
    if _is(step, *_ENCODERS):
        for column, categories in zip(columns, step.categories_, strict=True):
            found[column] = _categorical(column, categories)
        return
    if _is(step, "SimpleImputer"):
        if np.dtype(getattr(step, "_fit_dtype", np.float64)).kind in "biuf":
            found.update({c: FeatureSpec(name=c, dtype="float64") for c in columns})
        elif then:  # text imputed, then encoded (or otherwise read) by the next step
            _walk(then[0], columns, then[1:], found)
        else:
            found.update(dict.fromkeys(columns, "a SimpleImputer fitted on text ends the model"))
        return
    if hasattr(step, "best_estimator_"):  # a fitted search: its best model is the model
        _walk(step.best_estimator_, columns, then, found)
        return
    if _numeric_only(step):
        found.update({c: FeatureSpec(name=c, dtype="float64") for c in columns})
        return
    kind = type(step)
    reason = f"the model's {kind.__module__}.{kind.__qualname__} does not record its input types"
    found.update(dict.fromkeys(columns, reason))


def _passes_through(step: Any) -> bool:
    """``None``, ``"passthrough"`` or an identity ``FunctionTransformer`` (what a fitted
    ``ColumnTransformer`` holds for ``remainder="passthrough"``)."""
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return True
    return _is(step, "FunctionTransformer") and step.func is None


def _selected(selected: Any, columns: list[str]) -> list[str]:
    """The names a ``ColumnTransformer`` entry selects (names, indexes, a mask or slice)."""
    if isinstance(selected, str):
        return [selected]
    if isinstance(selected, slice):
        return columns[selected]
    items = list(selected)
    if not items:
        return []
    if all(isinstance(i, bool | np.bool_) for i in items):
        return [c for c, keep in zip(columns, items, strict=True) if keep]
    if all(isinstance(i, int | np.integer) for i in items):
        return [columns[int(i)] for i in items]
    return [str(i) for i in items]


def _categorical(column: str, categories: Any) -> FeatureSpec | str:
    values = [v for v in python_values(categories) if v is not None and v == v]
    if all(isinstance(v, str) for v in values):
        return FeatureSpec(name=column, dtype="string", categories=values)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return FeatureSpec(name=column, dtype="category", categories=values)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return FeatureSpec(name=column, dtype="float64")
    return "its encoder saw categories of mixed types"


def _numeric_only(step: Any) -> bool:
    """Whether ``step`` (a fitted scikit-learn estimator) only ever takes numbers."""
    if not type(step).__module__.startswith("sklearn."):
        return False
    if _is(step, *_ENCODERS, *_ANY_INPUT, "Pipeline", "ColumnTransformer", "SimpleImputer"):
        return False
    if _is(step, "HistGradientBoostingClassifier", "HistGradientBoostingRegressor"):
        categorical = getattr(step, "is_categorical_", None)
        if categorical is not None and bool(np.any(categorical)):
            return False
    from sklearn.base import BaseEstimator
    from sklearn.utils import get_tags

    tags = get_tags(step).input_tags
    if tags.categorical or tags.string or tags.dict:
        return False
    # A meta-estimator is numeric only if every model inside it is.
    for value in step.get_params(deep=False).values():
        inner = [value] if isinstance(value, BaseEstimator) else _estimators_in(value)
        if any(not _numeric_only(e) for e in inner):
            return False
    return True


def _estimators_in(value: Any) -> list[Any]:
    from sklearn.base import BaseEstimator

    if not isinstance(value, list | tuple):
        return []
    found = []
    for item in value:
        if isinstance(item, BaseEstimator):
            found.append(item)
        elif isinstance(item, tuple) and any(isinstance(x, BaseEstimator) for x in item):
            found.extend(x for x in item if isinstance(x, BaseEstimator))
    return found
