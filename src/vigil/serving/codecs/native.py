"""vigil's own JSON protocol: ``POST /v1/models/{name}[@{alias}|/versions/{v}]/predict``.

Request bodies (exactly one input key, plus options):

* ``{"instances": [{"f1": 1.0, "f2": "a"}, ...]}`` rows as objects (any column order), or
  ``{"instances": [[1.0, "a"], ...]}`` rows as arrays in signature order;
* ``{"columns": ["f1", "f2"], "data": [[1.0, "a"], ...]}`` the pandas "split" layout;
* ``{"inputs": {"f1": 1.0, "f2": "a"}}`` one row.

Option ``"return_proba": true`` adds class probabilities. Option ``"passthrough"``
carries fields that are logged with each row but never given to the model (sensitive
attributes for fairness monitoring): ``{"sex": ["f", "m"]}``, one list per field with a
value per row (JSON scalars). The response is
``{"request_id", "model", "version", "predictions": [...], "classes": [...]}`` plus
``"probabilities": [[...], ...]`` (rows in ``classes`` order) when asked.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from vigil.errors import ValidationError
from vigil.serving.codecs import predict_served
from vigil.serving.codecs.recording import records_failures
from vigil.serving.http import Request, Response, dumps, json_response
from vigil.serving.validation import Matrix, RawTable, Records, Split

if TYPE_CHECKING:
    from vigil.serving.dataplane import DataPlane
    from vigil.serving.provider import ServedModel

_INPUT_KEYS = ("instances", "columns", "inputs")
PASSTHROUGH_KEY = "passthrough"
_ALLOWED_KEYS = frozenset(
    {"instances", "columns", "data", "inputs", "return_proba", PASSTHROUGH_KEY}
)
MAX_PASSTHROUGH_FIELDS = 16
MAX_PASSTHROUGH_CHARS = 256
_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def _bad(message: str, field: str | None, expected: str, got: str) -> ValidationError:
    return ValidationError(
        message, detail={"field": field, "row": None, "expected": expected, "got": got}
    )


def decode(payload: Any) -> tuple[RawTable, bool]:
    """``(raw table, return_proba)`` from a native request body.

    >>> decode({"inputs": {"a": 1.0}, "return_proba": True})
    (Records(rows=[{'a': 1.0}]), True)
    """
    if not isinstance(payload, dict):
        raise _bad(
            'the body must be a JSON object such as {"instances": [{...}]}',
            None,
            "an object",
            type(payload).__name__,
        )
    if not _ALLOWED_KEYS.issuperset(payload):  # checked in C; the first one named
        unknown = next(k for k in payload if k not in _ALLOWED_KEYS)
        raise _bad(
            f"unknown key {unknown[:40]!r}; use one of instances, columns+data or inputs, "
            "and optionally return_proba and passthrough",
            unknown[:40],
            "instances | columns+data | inputs",
            "an unknown key",
        )
    if ("instances" in payload) + ("columns" in payload) + ("inputs" in payload) != 1:
        present = [k for k in _INPUT_KEYS if k in payload]
        raise _bad(
            "send exactly one of 'instances', 'columns'+'data' or 'inputs' "
            f"(got {present or 'none'})",
            None,
            "exactly one input key",
            f"{len(present)} input keys",
        )
    want_proba = payload.get("return_proba", False)
    if not isinstance(want_proba, bool):
        raise _bad("'return_proba' must be true or false", "return_proba", "a boolean", "other")
    key = "instances" if "instances" in payload else "columns" if "columns" in payload else "inputs"
    if key == "columns":
        if "data" not in payload:
            raise _bad("'columns' needs 'data' (rows of values)", "data", "an array", "missing")
        return Split(payload["columns"], payload["data"]), want_proba
    if "data" in payload:
        raise _bad("'data' goes with 'columns' only", "data", "no 'data'", "'data'")
    value = payload[key]
    if key == "inputs":
        if not isinstance(value, dict):
            raise _bad("'inputs' must be one row as an object", "inputs", "an object", "other")
        return Records([value]), want_proba
    if isinstance(value, list) and value and isinstance(value[0], list):
        return Matrix(value), want_proba
    return Records(value), want_proba


def passthrough_of(payload: Any) -> dict[str, list[Any]] | None:
    """The ``passthrough`` fields of a native body (``None`` when it has none), checked:
    at most :data:`MAX_PASSTHROUGH_FIELDS` fields named like identifiers, each a list of
    JSON scalars (text of at most :data:`MAX_PASSTHROUGH_CHARS` characters). The data
    plane checks that each list has a value per row.

    >>> passthrough_of({"instances": [], "passthrough": {"sex": ["f", None]}})
    {'sex': ['f', None]}
    """
    if not isinstance(payload, dict) or PASSTHROUGH_KEY not in payload:
        return None
    value = payload[PASSTHROUGH_KEY]
    where = PASSTHROUGH_KEY
    if not isinstance(value, dict) or len(value) > MAX_PASSTHROUGH_FIELDS:
        raise _bad(
            f"'{where}' must be an object of at most {MAX_PASSTHROUGH_FIELDS} fields, each a "
            'list with one value per row, e.g. {"sex": ["f", "m"]}',
            where,
            "an object of lists",
            type(value).__name__,
        )
    out: dict[str, list[Any]] = {}
    for name, column in value.items():
        if not _FIELD.fullmatch(name):
            raise _bad(
                f"invalid passthrough field {name[:40]!r}: use letters, digits, '_' or '-', "
                "starting with a letter",
                where,
                "a field name",
                "other",
            )
        if not isinstance(column, list):
            raise _bad(
                f"passthrough field {name!r} must be a list with one value per row",
                f"{where}.{name}",
                "a list",
                type(column).__name__,
            )
        for v in column:
            ok = (
                v is None
                or isinstance(v, bool | int)
                or (isinstance(v, float) and math.isfinite(v))
                or (isinstance(v, str) and len(v) <= MAX_PASSTHROUGH_CHARS)
            )
            if not ok:
                raise _bad(
                    f"passthrough field {name!r} holds a value that is not a JSON scalar "
                    f"(text of at most {MAX_PASSTHROUGH_CHARS} characters, a finite number, "
                    "a boolean or null)",
                    f"{where}.{name}",
                    "a JSON scalar",
                    type(v).__name__,
                )
        out[name] = column
    return out


def encode(request_id: str, served: ServedModel, predictions: Any, proba: Any) -> bytes:
    body: dict[str, Any] = {
        "request_id": request_id,
        "model": served.name,
        "version": served.version,
        "predictions": predictions,
    }
    if served.classes is not None:
        body["classes"] = served.classes
    if proba is not None:
        body["probabilities"] = proba
    return dumps(body)


@records_failures("native")
async def predict(dp: DataPlane, req: Request) -> Response:
    params = req.params
    selector = params.get("version") or (("@" + params["alias"]) if "alias" in params else None)
    served = dp.model(params["name"], selector)
    req.model, req.version = served.name, served.version_label
    payload = req.json()
    table, want_proba = decode(payload)  # a dict from here on
    passthrough = passthrough_of(payload) if PASSTHROUGH_KEY in payload else None
    result = await predict_served(
        dp, req, served, table, want_proba=want_proba, passthrough=passthrough
    )
    return Response(
        encode(result.request_id, served, result.predictions, result.probabilities),
        headers=[(b"x-request-id", result.request_id.encode())],
    )


async def list_models(dp: DataPlane, req: Request) -> Response:
    return json_response({"models": [describe(m) for m in dp.models()]})


async def model_metadata(dp: DataPlane, req: Request) -> Response:
    params = req.params
    selector = params.get("version") or (("@" + params["alias"]) if "alias" in params else None)
    served = dp.model(params["name"], selector)
    req.model, req.version = served.name, served.version_label
    return json_response(describe(served))


def describe(served: ServedModel) -> dict[str, Any]:
    """Name, version, readiness and signature of a served model."""
    return {
        "name": served.name,
        "version": served.version,
        "ready": served.ready,
        "flavor": served.bundle.model.flavor,
        "signature": served.signature.model_dump(mode="json"),
    }
