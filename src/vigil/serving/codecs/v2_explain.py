"""Explanations on the Open Inference Protocol v2 infer route: ``parameters.explain``.

An inference request whose ``parameters`` hold ``"explain": true`` (and, optionally,
``"explain_class"``: the class to explain, as in ``POST /v1/models/{name}/explain``) is
answered with its predictions **and** the rows' feature attributions, as two more output
tensors and response parameters (the v2 spec's ways to carry extra results):

* ``explanation``: FP64, shape ``[N, F]``, row-major: each row's attributions, features in
  the order ``parameters.explain_features`` lists them (the signature's);
* ``explanation_base_value``: FP64, shape ``[N]``: each row's base value, so that
  ``base_value + sum(row) == output`` in the ``parameters.explain_output`` space;
* ``parameters``: ``explain_method``, ``explain_exact``, ``explain_output`` and
  ``explain_features`` (a JSON list), plus ``explain_labels`` (a JSON list: the class each
  row explains) for a classifier. v2 parameters are scalars, hence the JSON text.

The rows are validated and explained exactly as the native explain route does (the same
limits, the same 422 for a model that cannot be explained), before anything is predicted.
The two tensors go back as binary data when the request's ``binary_data_output`` says so.
Over gRPC (``ModelInfer``) the same parameters do the same, the tensors raw or typed as the
other outputs; through an experiment endpoint ``explain`` is not available.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from vigil.errors import MalformedRequestError
from vigil.serving.executors import INLINE_CELLS

if TYPE_CHECKING:
    from vigil.explain.attributions import Attributions
    from vigil.serving.dataplane import DataPlane
    from vigil.serving.provider import ServedModel
    from vigil.serving.validation import RawTable

OUTPUTS = ("explanation", "explanation_base_value")
_SCALARS = (str, int, float, bool)


def requested(payload: Any) -> tuple[bool, Any]:
    """``(explain?, class or None)`` from the request's ``parameters``.

    >>> requested({"parameters": {"explain": True, "explain_class": 1}})
    (True, 1)
    >>> requested({"inputs": []})
    (False, None)
    """
    parameters = payload.get("parameters") if isinstance(payload, dict) else None
    if not isinstance(parameters, dict) or "explain" not in parameters:
        if isinstance(parameters, dict) and "explain_class" in parameters:
            raise _bad("parameters.explain_class needs parameters.explain: true", "explain")
        return False, None
    if type(parameters["explain"]) is not bool:
        raise _bad("parameters.explain must be true or false", "explain")
    label = parameters.get("explain_class")
    if label is not None and not isinstance(label, _SCALARS):
        raise _bad(
            "parameters.explain_class must be one of the model's class labels (a string, "
            "number or boolean)",
            "explain_class",
        )
    return bool(parameters["explain"]), label


def refuse_on_endpoint(payload: Any) -> None:
    """An experiment endpoint predicts with whichever variant it picks: explaining there
    would explain a model the caller did not name, so ``explain`` is refused.

    >>> refuse_on_endpoint({"parameters": {"explain": True}})
    Traceback (most recent call last):
    ...
    vigil.errors.MalformedRequestError: parameters.explain is not available on an experiment endpoint; call the model's own infer route (/v2/models/NAME/infer)
    """
    parameters = payload.get("parameters") if isinstance(payload, dict) else None
    if isinstance(parameters, dict) and ("explain" in parameters or "explain_class" in parameters):
        raise _bad(
            "parameters.explain is not available on an experiment endpoint; call the model's "
            "own infer route (/v2/models/NAME/infer)",
            "explain",
        )


def _bad(message: str, field: str) -> MalformedRequestError:
    return MalformedRequestError(message, detail={"field": f"parameters.{field}"})


async def explain(dp: DataPlane, served: ServedModel, table: RawTable, label: Any) -> Attributions:
    """The attributions of the request's rows (validated as a prediction's)."""
    validator = served.validator
    if validator.values(table) <= INLINE_CELLS:
        valid = validator.validate(table)
    else:
        valid = await dp.executors.decoding(validator.validate, table)
    return await dp.explanations.explain(served, valid.X, valid.n_rows, label)


def tensors(found: Attributions) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The two output tensors and the response parameters of ``found``."""
    values = found.values
    out = [
        {
            "name": "explanation",
            "shape": [int(values.shape[0]), int(values.shape[1])],
            "datatype": "FP64",
            "data": values.ravel(),
        },
        {
            "name": "explanation_base_value",
            "shape": [int(found.base_values.shape[0])],
            "datatype": "FP64",
            "data": found.base_values,
        },
    ]
    parameters: dict[str, Any] = {
        "explain_method": found.method,
        "explain_exact": found.exact,
        "explain_output": found.output,
        "explain_features": json.dumps(found.feature_names),
    }
    if found.labels is not None:
        parameters["explain_labels"] = json.dumps([_plain(v) for v in found.labels])
    return out, parameters


def _plain(value: Any) -> Any:
    """A class label as JSON holds it (NumPy scalars as Python ones)."""
    return value.item() if hasattr(value, "item") else value
