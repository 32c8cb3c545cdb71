"""The MLflow scoring protocol, as ``mlflow models serve`` speaks it.

``POST /invocations`` (the model named by ``VIGIL_SERVE_MLFLOW_MODEL``, else the only model
served) and ``POST /v1/models/{name}/invocations`` accept:

* ``application/json`` with exactly one of ``dataframe_split`` (``{"columns", "data"}``,
  optional ``"index"``: what ``df.to_json(orient="split")`` writes), ``dataframe_records``
  (a list of row objects), ``instances`` or ``inputs`` (row objects, rows as arrays in
  signature order, or an object of columns); an optional ``params`` object (MLflow's
  inference parameters) may carry ``passthrough``: fields logged beside the features and
  never given to the model, checked as the native body's (see :func:`passthrough_of`);
  its other entries are ignored;
* ``text/csv`` with a header row (what ``df.to_csv(index=False)`` writes).

The answer is ``{"predictions": [...]}`` (a classifier's labels: pyfunc's ``predict``).
Errors are ``{"error_code": "BAD_REQUEST", "message": ...}`` with 400 for any problem
with the input, as MLflow does. ``GET /ping`` and ``GET /health`` answer 200,
``GET /version`` the server version.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
import re
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from vigil.errors import MalformedRequestError, PayloadTooLargeError, UnsupportedMediaTypeError
from vigil.serving.codecs import native, predict_served
from vigil.serving.codecs.recording import records_failures
from vigil.serving.config import json_values_limit
from vigil.serving.executors import INLINE_BODY_BYTES
from vigil.serving.http import TEXT, Request, Response, check_values, dumps
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


class Scoring(NamedTuple):
    """A decoded scoring request: its raw table and its passthrough fields (if any)."""

    table: RawTable
    passthrough: dict[str, list[Any]] | None = None


def passthrough_of(payload: Any) -> dict[str, list[Any]] | None:
    """The ``params.passthrough`` fields of a JSON scoring request (``None`` without):
    where MLflow's client puts inference parameters
    (``dump_input_data(df, params={"passthrough": {...}})``), checked as the native body's
    ``passthrough`` (:func:`vigil.serving.codecs.native.passthrough_of`).

    >>> passthrough_of({"inputs": [[1.0]], "params": {"passthrough": {"region": ["north"]}}})
    {'region': ['north']}
    """
    params = payload.get("params") if isinstance(payload, dict) else None
    return native.passthrough_of(params) if isinstance(params, dict) else None


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
        received = [str(k)[:40] for k in itertools.islice(payload, 10)]
        raise _bad(
            f"the JSON body must hold exactly one of {list(FORMATS)}; received fields {received}"
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


# One field of a CSV header as pandas reads it: quoted ("a,b", "" for a quote, any text
# after the closing quote) or not (a quote inside it is a plain character). Possessive
# quantifiers never backtrack, so a match costs the length of the fields it reads.
_FIELD = rb'(?:"(?:[^"]++|"")*+"[^,\r\n]*+|[^,\r\n"][^,\r\n]*+)?+'
_QUOTED = re.compile(rb'(?:^|(?<=,))"(?:[^"]++|"")*+"')


@functools.lru_cache(maxsize=16)
def _header(limit: int) -> re.Pattern[bytes]:
    """The first ``limit + 1`` fields of a header: reading stops there, however wide it is."""
    return re.compile(rb"%s(?:,%s){0,%d}+" % (_FIELD, _FIELD, limit))


def csv_columns(body: bytes, limit: int) -> int:
    """The number of columns of a CSV body's header row, read no further than needed to
    tell: ``limit + 1`` stands for "more than ``limit``".

    >>> csv_columns(b"a,b,c\\n1,2,3\\n", 10), csv_columns(b'"a,b",c\\r\\n1,2', 10)
    (3, 2)
    >>> csv_columns(b'"a\\nb","c""d",e"f\\n1,2,3\\n', 10), csv_columns(b'"a",' * 50, 10)
    (3, 11)
    """
    end = body.find(b"\n")
    line = body if end < 0 else body[:end]
    if b'"' not in line:
        return line.count(b",") + 1  # no quoting: every comma separates two names
    header = _header(limit).match(body)
    assert header is not None  # every field may be empty: the pattern matches anything
    after = body[header.end() : header.end() + 1]
    if after == b",":
        return limit + 1
    if after not in (b"", b"\n", b"\r"):
        raise _bad(
            'the CSV header has a quote that is never closed; quote a name as "a,b" and '
            'write a quote inside it as ""'
        )
    return _QUOTED.sub(b"", header.group()).count(b",") + 1


def decode_csv(body: bytes, *, max_columns: int | None = None) -> RawTable:
    """The raw table of a CSV body with a header row (pandas parses it, as MLflow does);
    a header wider than ``max_columns`` is refused (413) before pandas sees the body."""
    import pandas as pd  # only for a CSV body: pandas stays off the server's start

    if max_columns is not None:
        columns = csv_columns(body, max_columns)
        if columns > max_columns:
            counted = f"{columns}" if columns > max_columns + 1 else f"more than {max_columns}"
            raise PayloadTooLargeError(
                f"the CSV header has {counted} columns; this server accepts at most "
                f"{max_columns} per request: send only the model's features (or raise "
                "VIGIL_SERVE_MAX_COLUMNS)",
                detail={"limit": max_columns, "columns": columns},
            )
    try:
        frame = pd.read_csv(io.BytesIO(body))
    except Exception as exc:
        raise _bad(
            "failed to parse the input as CSV; send a header row then one line per row "
            f"(what DataFrame.to_csv(index=False) writes): {str(exc)[:200]}"
        ) from None
    return Columns({str(c): frame[c].tolist() for c in frame.columns})


def _json_int(text: str) -> int | float:
    # As orjson does: an integer past 64 bits becomes a float (inf past 1.8e308), so no
    # integer slow to convert or too large for a float64 reaches validation.
    return int(text) if len(text) <= 20 else float(text)


def _json_with_nan(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = exc
    # MLflow's own client writes missing values as the bare token NaN (not JSON, but what
    # Python's json module reads), so accept it here as mlflow models serve does. Python's
    # reader recurses per nesting level and stops at the interpreter's recursion limit.
    if b"NaN" in body or b"Infinity" in body:
        try:
            return json.loads(body, parse_int=_json_int)
        except (ValueError, RecursionError):
            pass
    raise MalformedRequestError(
        f"the request body is not valid JSON ({error}); send a JSON document",
        detail={"field": None, "row": None, "expected": "JSON", "got": "invalid JSON"},
    )


def decode_request(
    req: Request, *, max_columns: int | None = None, max_values: int | None = None
) -> Scoring:
    """A scoring request's raw table and passthrough fields, by its content type (JSON or
    CSV, UTF-8; a CSV body has no passthrough fields); a CSV
    header wider than ``max_columns`` or a JSON body of more than about ``max_values``
    values (see :func:`~vigil.serving.http.check_values`) is refused before it is parsed."""
    content_type = req.content_type or ""
    mime, _, parameters = content_type.partition(";")
    mime = mime.strip().lower()
    charset = parameters.partition("charset=")[2].strip().lower() or "utf-8"
    if charset != "utf-8":
        raise UnsupportedMediaTypeError("the scoring server only supports UTF-8")
    if mime == "text/csv":
        return Scoring(decode_csv(req.body, max_columns=max_columns))
    if mime == "application/json":
        if max_values is not None:
            check_values(req.body, max_values)
        payload = _json_with_nan(req.body)
        return Scoring(decode_json(payload), passthrough_of(payload))
    raise UnsupportedMediaTypeError(
        "this predictor only supports the content types application/json and text/csv; "
        f"got {content_type[:80]!r}; with curl, use --json '{{...}}' or add "
        "-H 'Content-Type: application/json' (or text/csv)"
    )


async def decoded(dp: DataPlane, req: Request, max_columns: int | None) -> Scoring:
    """:func:`decode_request`, on a worker thread for a large body (pandas, or Python's
    JSON reader, on megabytes take a good part of a second)."""
    if len(req.body) <= INLINE_BODY_BYTES:
        return decode_request(req, max_columns=max_columns)
    max_values = json_values_limit(dp.settings)
    return await dp.executors.decoding(
        functools.partial(decode_request, req, max_columns=max_columns, max_values=max_values)
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
    table, passthrough = await decoded(dp, req, served.validator.max_columns)
    result = await predict_served(dp, req, served, table, passthrough=passthrough)
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
