"""Run the model on a prepared chunk and add its answers as columns.

Output columns are every input column, then ``prediction``, then (with ``proba``) one
``proba_<class>`` column per class in the model's class order. A name an input column
already uses gets a numeric suffix (``prediction_1``), so no input column is overwritten.

>>> unique_name("prediction", {"id", "prediction"})
'prediction_1'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from vigil.errors import InvalidParameterError, PredictionError, VigilError

if TYPE_CHECKING:
    from vigil.batch.inputs import PreparedChunk
    from vigil.bundle.model import LoadedBundle


def unique_name(name: str, taken: Iterable[str]) -> str:
    """``name``, or ``name_1``, ``name_2``... whichever is not ``taken``."""
    used = set(taken)
    if name not in used:
        return name
    k = 1
    while f"{name}_{k}" in used:
        k += 1
    return f"{name}_{k}"


class Scorer:
    """Predicts chunks of one input file with one model and appends the answer columns.

    Parameters
    ----------
    bundle
        The loaded model.
    input_columns
        The input file's columns (to avoid their names).
    proba
        Add class-probability columns (the model must have ``predict_proba``).
    """

    def __init__(self, bundle: LoadedBundle, input_columns: Sequence[str], *, proba: bool) -> None:
        if proba and not bundle.model.has_proba:
            raise InvalidParameterError(
                f"model {self._label(bundle)} has no predict_proba; score without --proba",
                detail={"model": bundle.name, "version": bundle.version},
            )
        self.bundle = bundle
        self.proba = proba
        self._taken = set(input_columns)
        self.prediction_column = unique_name("prediction", self._taken)
        self._taken.add(self.prediction_column)
        self.proba_columns: list[str] | None = None
        classes = bundle.signature.outputs.classes
        if proba and classes:
            self._name_proba([str(c) for c in classes])

    @staticmethod
    def _label(bundle: LoadedBundle) -> str:
        if bundle.name is None:
            return "(unnamed)"
        return f"{bundle.name} version {bundle.version}"

    def _name_proba(self, labels: list[str]) -> None:
        names: list[str] = []
        for label in labels:
            name = unique_name(f"proba_{label}", self._taken | set(names))
            names.append(name)
        self.proba_columns = names

    def score(self, prepared: PreparedChunk) -> pa.Table:
        """The chunk's input columns plus the prediction (and probability) columns."""
        X, table = prepared.X, prepared.table
        first, last = prepared.offset, prepared.offset + table.num_rows - 1
        try:
            pred = np.asarray(self.bundle.predict(X))
            proba = np.asarray(self.bundle.predict_proba(X)) if self.proba else None
        except VigilError:
            raise
        except Exception as exc:
            raise PredictionError(
                f"model {self._label(self.bundle)} failed to predict rows {first}-{last}: "
                f"{type(exc).__name__}: {str(exc)[:300]}",
                detail={"model": self.bundle.name, "version": self.bundle.version, "row": first},
            ) from exc
        if pred.ndim == 2 and pred.shape[1] == 1:
            pred = pred.ravel()
        if pred.shape != (table.num_rows,):
            raise PredictionError(
                f"model {self._label(self.bundle)} returned predictions of shape {pred.shape} "
                f"for {table.num_rows} rows; batch scoring needs one value per row"
            )
        out = table.append_column(self.prediction_column, _arrow(pred))
        if proba is None:
            return out
        if self.proba_columns is None:  # a model without declared classes: number them
            self._name_proba([str(k) for k in range(proba.shape[1])])
        assert self.proba_columns is not None
        if proba.ndim != 2 or proba.shape != (table.num_rows, len(self.proba_columns)):
            raise PredictionError(
                f"model {self._label(self.bundle)} returned probabilities of shape "
                f"{proba.shape}; expected ({table.num_rows}, {len(self.proba_columns)})"
            )
        for k, name in enumerate(self.proba_columns):
            out = out.append_column(name, pa.array(proba[:, k].astype(np.float64, copy=False)))
        return out


def _arrow(values: np.ndarray[Any, Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # e.g. an object array of mixed labels: keep each as its text
        return pa.array([None if v is None else str(v) for v in values.tolist()])
