"""``POST /v1/models/{name}[@{alias}|/versions/{v}]/explain``: per-row feature attributions.

The body is a native predict body (``instances``, ``columns`` + ``data`` or ``inputs``;
see :mod:`vigil.serving.codecs.native`), validated against the model's signature exactly
as a prediction is, plus an optional ``"class"``: the class whose output to explain
(default: the positive class of a binary classifier, each row's predicted class of a
multiclass one). The same API-key role as predicting is needed. The answer::

    {"request_id", "model", "version",
     "method": "linear" | "tree" | "xgboost" | "lightgbm" | "permutation",
     "exact": true, "output": "log-odds", "output_meaning": "...",
     "explanations": [{"label": 1, "base_value": -0.3, "output": 1.2,
                       "attributions": {"feature": 0.8, ...}}, ...]}

in which, for every row, ``base_value + sum(attributions) == output`` in the named output
space. Explaining does not write to the inference log (it predicts nothing new).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vigil.errors import ValidationError
from vigil.serving.codecs import native
from vigil.serving.executors import INLINE_CELLS
from vigil.serving.http import Request, Response, Route, dumps
from vigil.serving.openapi import SCHEMAS as NATIVE_SCHEMAS

if TYPE_CHECKING:
    from vigil.serving.dataplane import DataPlane

_SCALAR = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}


def decode(payload: Any) -> tuple[Any, Any]:
    """``(raw table, class or None)`` from an explain body.

    >>> decode({"inputs": {"a": 1.0}, "class": "yes"})
    (Records(rows=[{'a': 1.0}]), 'yes')
    """
    label = None
    if isinstance(payload, dict) and "class" in payload:
        payload = dict(payload)
        label = payload.pop("class")
        if label is None or isinstance(label, dict | list):
            raise ValidationError(
                "'class' must be one of the model's class labels (a string, number or "
                "boolean); leave it out to explain the default class",
                detail={"field": "class", "row": None, "expected": "a class label", "got": "other"},
            )
    if isinstance(payload, dict) and "return_proba" in payload:
        raise ValidationError(
            "'return_proba' is a predict option; an explanation names its output space",
            detail={"field": "return_proba", "row": None, "expected": "absent", "got": "present"},
        )
    if isinstance(payload, dict) and native.PASSTHROUGH_KEY in payload:
        raise ValidationError(
            "'passthrough' is a predict option (fields logged beside the features); an "
            "explanation logs nothing",
            detail={"field": "passthrough", "row": None, "expected": "absent", "got": "present"},
        )
    table, _ = native.decode(payload)
    return table, label


async def explain(dp: DataPlane, req: Request) -> Response:
    params = req.params
    selector = params.get("version") or (("@" + params["alias"]) if "alias" in params else None)
    served = dp.model(params["name"], selector)
    req.model, req.version = served.name, served.version_label
    table, label = decode(req.json())
    validator = served.validator
    if validator.values(table) <= INLINE_CELLS:
        valid = validator.validate(table)
    else:
        valid = await dp.executors.decoding(validator.validate, table)
    found = await dp.explanations.explain(served, valid.X, valid.n_rows, label)
    from vigil.explain.attributions import OUTPUT_SPACES

    body = {
        "request_id": req.request_id,
        "model": served.name,
        "version": served.version,
        "method": found.method,
        "exact": found.exact,
        "output": found.output,
        "output_meaning": OUTPUT_SPACES[found.output],
        "explanations": found.to_rows(),
    }
    return Response(dumps(body), headers=[(b"x-request-id", req.request_id.encode())])


SCHEMAS: dict[str, Any] = {
    "ExplainRequest": {
        "type": "object",
        "description": "A native predict body (exactly one of instances, columns+data or "
        "inputs) and, optionally, the class to explain.",
        "properties": {  # predict's body, less its options, plus the class
            **{
                name: spec
                for name, spec in NATIVE_SCHEMAS["NativeRequest"]["properties"].items()
                if name not in ("return_proba", "passthrough")
            },
            "class": _SCALAR,
        },
        "additionalProperties": False,
    },
    "ExplainResponse": {
        "type": "object",
        "required": ["request_id", "model", "version", "method", "exact", "output"],
        "properties": {
            "request_id": {"type": "string"},
            "model": {"type": "string"},
            "version": {"type": "integer"},
            "method": {"type": "string"},
            "exact": {"type": "boolean"},
            "output": {"type": "string"},
            "output_meaning": {"type": "string"},
            "explanations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "label": _SCALAR,
                        "base_value": {"type": "number"},
                        "output": {"type": "number"},
                        "attributions": {
                            "type": "object",
                            "additionalProperties": {"type": "number"},
                        },
                    },
                },
            },
        },
    },
}


def _explain_route(template: str, name: str, summary: str) -> Route:
    return Route(
        "POST",
        template,
        explain,
        name,
        "native",
        summary,
        body="json",
        request_schema={"$ref": "#/components/schemas/ExplainRequest"},
        responses={"200": {"description": "OK", "schema": "ExplainResponse"}},
        tags=("native",),
        role="predict",
        prediction=True,
    )


ROUTES: list[Route] = [
    _explain_route(
        "/v1/models/{name}/explain", "native_explain", "Explain predictions of the default version"
    ),
    _explain_route(
        "/v1/models/{name}@{alias}/explain", "native_explain_alias", "Explain with an alias"
    ),
    _explain_route(
        "/v1/models/{name}/versions/{version}/explain",
        "native_explain_version",
        "Explain with a version",
    ),
]
