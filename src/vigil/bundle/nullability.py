"""Which inputs may be missing: asked of the model itself, at registration.

Whether a model takes a missing value is a fact about the model, not the data: a
``LogisticRegression`` raises on NaN, a ``HistGradientBoostingClassifier``, XGBoost or
LightGBM model routes it down a learned branch, a pipeline that imputes one column takes
a missing value there only. Each input is probed on a few real rows (complete reference
rows, or a row built from the signature when there is no reference data) with that input
set missing; an input whose probe raises is marked ``nullable=False``, so serving answers
a null there with a 422 naming the feature instead of failing inside the model.

Cost: one call on all inputs missing at once (when it succeeds every input is nullable),
else one call per input, each on at most :data:`PROBE_ROWS` rows.

>>> import numpy as np, pandas as pd
>>> from sklearn.linear_model import LogisticRegression
>>> from vigil.bundle.signature import FeatureSpec, Signature
>>> X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
>>> model = LogisticRegression().fit(X, [0, 0, 1, 1])
>>> sig = Signature(inputs=[FeatureSpec(name="a", dtype="float64"),
...                         FeatureSpec(name="b", dtype="float64")])
>>> [f.nullable for f in with_nullability(sig, model.predict, X.to_dict("list")).inputs]
[False, False]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vigil.bundle.signature import FeatureSpec, Signature

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("vigil.bundle")

PROBE_ROWS = 8
"""Most rows each probe predicts on."""

Predict = Callable[["pd.DataFrame"], Any]


def with_nullability(
    signature: Signature,
    predict: Predict,
    rows: Mapping[str, Sequence[Any]] | None = None,
) -> Signature:
    """``signature`` with ``nullable=False`` on every input ``predict`` cannot take missing.

    ``rows`` maps input names to values of reference rows (a profile's sample); the first
    :data:`PROBE_ROWS` complete ones are used, else one row built from the signature. When
    the model fails on those rows as they are, nothing can be learnt: the signature is
    returned unchanged (serving still answers a model's refusal with a 422).
    """
    base = _base_rows(signature, rows)
    if base is None or not _answers(predict, serving_frame(signature, base, missing=())):
        log.info("nullability not probed: the model fails on the probe rows as they are")
        return signature
    names = [f.name for f in signature.inputs if f.nullable]
    if not names or _answers(predict, serving_frame(signature, base, missing=names)):
        return signature
    refused = {
        n for n in names if not _answers(predict, serving_frame(signature, base, missing=[n]))
    }
    inputs = [
        f.model_copy(update={"nullable": False}) if f.name in refused else f
        for f in signature.inputs
    ]
    return signature.model_copy(update={"inputs": inputs})


def _answers(predict: Predict, frame: pd.DataFrame) -> bool:
    try:
        predict(frame)
    except Exception:
        return False
    return True


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _base_rows(
    signature: Signature, rows: Mapping[str, Sequence[Any]] | None
) -> list[list[Any]] | None:
    names = signature.feature_names
    if rows and all(n in rows for n in names):
        columns = [rows[n] for n in names]
        complete = [list(r) for r in zip(*columns, strict=True) if not any(map(_missing, r))]
        if complete:
            return complete[:PROBE_ROWS]
    example = [_example(f) for f in signature.inputs]
    return None if any(v is None for v in example) else [example]


def _example(spec: FeatureSpec) -> Any:
    if spec.categories:
        return spec.categories[0]
    if spec.dtype == "bool":
        return False
    if spec.dtype in ("int64", "int32"):
        return 0
    if spec.is_numeric:
        return 0.0
    return None  # a category nobody listed: no value can be made up


def serving_frame(
    signature: Signature, base: list[list[Any]], *, missing: Sequence[str]
) -> pd.DataFrame:
    """The rows as serving hands them to the model: numbers as float64 (int64 and bool
    when complete), categories as objects, ``missing`` columns NaN / None."""
    import numpy as np
    import pandas as pd

    gone = set(missing)
    data: dict[str, Any] = {}
    for j, spec in enumerate(signature.inputs):
        values = [row[j] for row in base]
        if spec.is_numeric:
            if spec.name in gone:
                data[spec.name] = np.full(len(base), np.nan)
            elif spec.dtype in ("int64", "int32"):
                data[spec.name] = np.asarray(values, dtype=np.int64)
            elif spec.dtype == "bool":
                data[spec.name] = np.asarray(values, dtype=bool)
            else:
                data[spec.name] = np.asarray(values, dtype=np.float64)
        else:
            column = [None] * len(base) if spec.name in gone else values
            data[spec.name] = np.array(column, dtype=object)
    return pd.DataFrame(data, columns=signature.feature_names)
