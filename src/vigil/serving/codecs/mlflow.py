"""The MLflow scoring protocol, as ``mlflow models serve`` speaks it.

``POST /invocations`` (the model named by ``VIGIL_SERVE_MLFLOW_MODEL``, else the only model
served) and ``POST /v1/models/{name}/invocations`` accept:

* ``application/json`` with exactly one of ``dataframe_split`` (``{"columns", "data"}``,
  optional ``"index"``: what ``df.to_json(orient="split")`` writes), ``dataframe_records``
  (a list of row objects), ``instances`` or ``inputs`` (row objects, rows as arrays in
  signature order, or an object of columns); an optional ``params`` is ignored;
* ``text/csv`` with a header row (what ``df.to_csv(index=False)`` writes).

The answer is ``{"predictions": [...]}`` (a classifier's labels: pyfunc's ``predict``).
Errors are ``{"error_code": "BAD_REQUEST", "message": ...}`` with 400 for any problem
with the input, as MLflow does. ``GET /ping`` and ``GET /health`` answer 200,
``GET /version`` the server version.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from vigil.errors import MalformedRequestError, UnsupportedMediaTypeError
from vigil.serving.codecs import predict_served
from vigil.serving.codecs.recording import records_failures
from vigil.serving.http import TEXT, Request, Response, dumps
from vigil.serving.validation import Columns, Matrix, RawTable, Records, Split
from vigil.version import VERSION

if TYPE_CHECKING:
    from vigil.serving.dataplane import DataPlane
    from vigil.serving.provider import ServedModel

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def _bad(message: str) -> MalformedRequestError:
    return MalformedRequestError(message)


def _tensor_like(value: Any, key: str) -> RawTable:
    if isinstance(value, dict):
        if value and all(isinstance(v, list) for v in value.values()):
            return Columns(value)
        return Records([value])
    if isinstance(value, list) and value and isinstance(value[0], list):
        return Matrix(value)
    if isinstance(value, list):
        return Records(value)
    raise _bad(f"'{key}' must be a list of rows or an object of columns")


def decode_json(payload: Any) -> RawTable:
    """The raw table of an MLflow JSON scoring request.

    >>> decode_json({"dataframe_split": {"columns": ["a"], "index": [0], "data": [[1.0]]}})
    Split(columns=['a'], data=[[1.0]])
    """
    if not isinstance(payload, dict):
        raise _bad(
            "the body must be a JSON object with one of the keys "
            f"{list(FORMATS)}; got a {type(payload).__name__}"
        )
    keys = [k for k in FORMATS if k in payload]
    if len(keys) != 1:
        raise _bad(
            f"the JSON body must hold exactly one of {list(FORMATS)}; "
            f"received fields {list(payload)[:10]}"
        )
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise _bad("'dataframe_split' must be an object with 'columns' and 'data'")
        if "columns" not in value:
            return Matrix(value["data"])
        return Split(value["columns"], value["data"])
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise _bad("'dataframe_records' must be a list of row objects")
        return Records(value)
    return _tensor_like(value, key)


def decode_csv(body: bytes) -> RawTable:
    """The raw table of a CSV body with a header row (pandas parses it, as MLflow does)."""
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except Exception as exc:
        raise _bad(
            "failed to parse the input as CSV; send a header row then one line per row "
            f"(what DataFrame.to_csv(index=False) writes): {str(exc)[:200]}"
        ) from None
    return Columns({str(c): frame[c].tolist() for c in frame.columns})


def _json_with_nan(req: Request) -> Any:
    try:
        return req.json()
    except MalformedRequestError:
        # MLflow's own client writes missing values as the bare token NaN (not JSON, but
        # what Python's json module reads), so accept it here as mlflow models serve does.
        try:
            return json.loads(req.body)
        except ValueError:
            pass
        raise


def decode_request(req: Request) -> RawTable:
    """The raw table of a scoring request, by its content type (JSON or CSV, UTF-8)."""
    content_type = req.content_type or ""
    mime, _, parameters = content_type.partition(";")
    mime = mime.strip().lower()
    charset = parameters.partition("charset=")[2].strip().lower() or "utf-8"
    if charset != "utf-8":
        raise UnsupportedMediaTypeError("the scoring server only supports UTF-8")
    if mime == "text/csv":
        return decode_csv(req.body)
    if mime == "application/json":
        return decode_json(_json_with_nan(req))
    raise UnsupportedMediaTypeError(
        "this predictor only supports the content types application/json and text/csv; "
        f"got {content_type[:80]!r}"
    )


def _default_model(dp: DataPlane) -> ServedModel:
    name = dp.settings.mlflow_model
    if name is not None:
        return dp.model(name)
    names = sorted({m.name for m in dp.models()})
    if len(names) != 1:
        raise _bad(
            f"this server serves {len(names)} models {names[:10]}; post to "
            "/v1/models/{name}/invocations or set VIGIL_SERVE_MLFLOW_MODEL"
        )
    return dp.model(names[0])


async def _invoke(dp: DataPlane, req: Request, served: ServedModel) -> Response:
    req.model, req.version = served.name, served.version_label
    table = decode_request(req)
    result = await predict_served(dp, req, served, table)
    return Response(
        dumps({"predictions": result.predictions}),
        headers=[(b"x-request-id", result.request_id.encode())],
    )


@records_failures("mlflow")
async def invocations(dp: DataPlane, req: Request) -> Response:
    return await _invoke(dp, req, _default_model(dp))


@records_failures("mlflow")
async def model_invocations(dp: DataPlane, req: Request) -> Response:
    return await _invoke(dp, req, dp.model(req.params["name"]))


async def ping(dp: DataPlane, req: Request) -> Response:
    return Response(b"\n", 200, TEXT)


async def version(dp: DataPlane, req: Request) -> Response:
    return Response(VERSION.encode(), 200, TEXT)
