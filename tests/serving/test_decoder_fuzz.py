"""Fuzzing the request decoders: any body, of any shape or bytes, is either decoded and
validated or refused with one of vigil's typed errors, which map to a 4xx status.

Each protocol's decoder (native, Open Inference Protocol v2, MLflow JSON and CSV) is fed
arbitrary JSON values, values shaped like its own requests, and arbitrary bytes, then the
served model's validator checks what came out, for a numeric model and for one with a
categorical feature. Nothing else may escape: no ``KeyError``, ``TypeError``,
``OverflowError``, ``RecursionError`` or ``ValueError`` of Python's own. Derandomized, so
every run tries the same examples.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.errors import VigilError
from vigil.serving.codecs import mlflow, native, v2
from vigil.serving.http import Request
from vigil.serving.provider import ServedModel, StaticProvider
from vigil.serving.registry_provider import targets_from

FUZZ = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Numbers as Python's JSON reader may hand them over (integers of hundreds of digits, past
# a float64), as well as ordinary ones.
NUMBERS = (
    st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, -1, 2**63, 2**64, 10**309, 1e308, -1e308, 0.5])
)
NAMES = st.sampled_from(["f0", "f1", "f19", "age", "income", "city", "x", "", "²"]) | st.text(
    max_size=8
)
SCALARS = st.none() | st.booleans() | NUMBERS | st.text(max_size=12) | NAMES
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(NAMES, children, max_size=6),
    max_leaves=40,
)
ROW = st.lists(SCALARS, max_size=22) | st.dictionaries(NAMES, SCALARS, max_size=22)
ROWS = st.lists(ROW, max_size=5)
SHAPE = st.lists(st.integers(min_value=-2, max_value=2**64), max_size=4) | JSON

NATIVE = st.fixed_dictionaries(
    {},
    optional={
        "instances": ROWS | JSON,
        "columns": st.lists(NAMES, max_size=22) | JSON,
        "data": ROWS | JSON,
        "inputs": st.dictionaries(NAMES, SCALARS, max_size=22) | JSON,
        "return_proba": st.booleans() | JSON,
    },
)
TENSOR = st.fixed_dictionaries(
    {},
    optional={
        "name": NAMES | JSON,
        "shape": SHAPE,
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BOOL", "BYTES", "X"]) | JSON,
        "data": ROWS | st.lists(SCALARS, max_size=25) | JSON,
    },
)
V2 = st.fixed_dictionaries(
    {},
    optional={
        "inputs": st.lists(TENSOR, max_size=22) | JSON,
        "outputs": st.lists(st.fixed_dictionaries({"name": NAMES | JSON}), max_size=3) | JSON,
        "id": JSON,
    },
)
MLFLOW = st.one_of(
    st.fixed_dictionaries(
        {
            "dataframe_split": st.fixed_dictionaries(
                {"data": ROWS | JSON},
                optional={"columns": st.lists(NAMES, max_size=22) | JSON, "index": JSON},
            )
        }
    ),
    st.fixed_dictionaries({"dataframe_records": ROWS | JSON}),
    st.fixed_dictionaries({"instances": ROWS | JSON}),
    st.fixed_dictionaries(
        {"inputs": ROWS | st.dictionaries(NAMES, st.lists(SCALARS, max_size=4)) | JSON}
    ),
    JSON,
)
CSV_CELLS = st.text(alphabet=st.sampled_from(list('0123456789.-e,"\n\r aNIf')), max_size=120)

# Near-valid bodies: the model's own features, each value usually a number and sometimes
# anything (a huge integer, a string, a list, NaN...), so that fuzzing reaches validation
# and the model input, not only the decoders' first checks.
FEATURES = {"clf": [f"f{i}" for i in range(20)], "shop": ["age", "income", "city"]}
HUGE = st.sampled_from([10**309, -(10**400), 10**4000, 2**64, 2**63, 1e308, -1e308, 1e300])
HOSTILE = SCALARS | JSON
GOOD = {"city": st.sampled_from(["paris", "lyon", "nice"])}
"""A value the feature accepts (any finite number, but for the categorical city)."""


def _value(name: str) -> st.SearchStrategy[Any]:
    # Mostly good values, so a row is often valid but for one: a hostile value or a huge
    # number about one time in ten each.
    good = GOOD.get(name, st.floats(-5, 5))
    return st.integers(0, 9).flatmap(lambda i: (HOSTILE, HUGE)[i] if i < 2 else good)


def _records(names: list[str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.fixed_dictionaries({n: _value(n) for n in names}, optional={"extra": SCALARS})
    return st.lists(row, min_size=1, max_size=3)


def _matrix(names: list[str]) -> st.SearchStrategy[list[list[Any]]]:
    row = st.tuples(*[_value(n) for n in names]).map(list)
    return st.lists(row, min_size=1, max_size=3)


def _split(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    columns = st.permutations(names) | st.lists(st.sampled_from([*names, "zz"]), max_size=25)
    return columns.flatmap(
        lambda cols: st.fixed_dictionaries({"columns": st.just(cols), "data": _matrix(cols)})
    )


def _columns(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.integers(1, 3).flatmap(
        lambda n: st.fixed_dictionaries(
            {c: st.lists(_value(c), min_size=n, max_size=n) for c in names}
        )
    )


def native_bodies(names: list[str]) -> st.SearchStrategy[Any]:
    return (
        _records(names).map(lambda rows: {"instances": rows})
        | _matrix(names).map(lambda rows: {"instances": rows})
        | _split(names)
        | _records(names).map(lambda rows: {"inputs": rows[0]})
        | NATIVE
        | JSON
    )


def v2_bodies(names: list[str]) -> st.SearchStrategy[Any]:
    datatype = st.sampled_from(["FP64", "INT64", "BYTES", "BOOL"])
    matrix = _matrix(names).flatmap(
        lambda rows: st.fixed_dictionaries(
            {
                "name": st.just("x"),
                "shape": st.just([len(rows), len(names)]) | SHAPE,
                "datatype": datatype,
                "data": st.just([v for r in rows for v in r]) | st.just(rows),
            }
        )
    )
    per_feature = st.integers(1, 3).flatmap(
        lambda n: st.tuples(
            *[
                st.fixed_dictionaries(
                    {
                        "name": st.just(c),
                        "shape": st.just([n]) | st.just([n, 1]) | SHAPE,
                        "datatype": datatype,
                        "data": st.lists(_value(c), min_size=n, max_size=n),
                    }
                )
                for c in names
            ]
        ).map(list)
    )
    return (matrix.map(lambda t: [t]) | per_feature).map(lambda inputs: {"inputs": inputs}) | V2


def mlflow_bodies(names: list[str]) -> st.SearchStrategy[Any]:
    return (
        _split(names).map(lambda split: {"dataframe_split": split})
        | _records(names).map(lambda rows: {"dataframe_records": rows})
        | _matrix(names).map(lambda rows: {"instances": rows})
        | _columns(names).map(lambda columns: {"inputs": columns})
        | MLFLOW
    )


CSV_VALUE = st.sampled_from(["1.5", "-2", "", "nan", "inf", "paris", "9" * 400, '"a,b"', "1e999"])


def csv_bodies(names: list[str]) -> st.SearchStrategy[bytes]:
    header = st.permutations(names).map(list) | st.lists(
        st.sampled_from([*names, "zz"]), max_size=25
    )
    return header.flatmap(
        lambda cols: st.lists(
            st.lists(CSV_VALUE, min_size=len(cols), max_size=len(cols)), min_size=1, max_size=4
        ).map(lambda rows: ("\n".join([",".join(cols), *(",".join(r) for r in rows)])).encode())
    )


@pytest.fixture(scope="module")
def served(provider: StaticProvider) -> list[ServedModel]:
    """A numeric model (a float matrix) and one with a categorical feature (a frame)."""
    return [provider.get("clf"), provider.get("shop")]


def _only_typed_errors(model: ServedModel, decode: Any) -> None:
    """Decode (``decode(model)`` gives a raw table), then validate: any error must be a
    vigil error of a 4xx status, with a message of bounded size."""
    try:
        model.validator.validate(decode(model))
    except VigilError as exc:
        assert 400 <= exc.status < 500, exc
        assert exc.message and len(exc.message) < 2_000, exc.message[:200]


MODEL = st.sampled_from(["clf", "shop"])


@FUZZ
@given(name=MODEL, data=st.data())
def test_native_bodies(provider: StaticProvider, name: str, data: st.DataObject) -> None:
    payload = data.draw(native_bodies(FEATURES[name]))
    _only_typed_errors(provider.get(name), lambda model: native.decode(payload)[0])


@FUZZ
@given(name=MODEL, data=st.data())
def test_v2_bodies(provider: StaticProvider, name: str, data: st.DataObject) -> None:
    payload = data.draw(v2_bodies(FEATURES[name]))
    _only_typed_errors(provider.get(name), lambda model: v2.decode(model, payload)[0])


@FUZZ
@given(name=MODEL, data=st.data())
def test_mlflow_json_bodies(provider: StaticProvider, name: str, data: st.DataObject) -> None:
    payload = data.draw(mlflow_bodies(FEATURES[name]))
    _only_typed_errors(provider.get(name), lambda model: mlflow.decode_json(payload))


@FUZZ
@given(name=MODEL, data=st.data())
def test_mlflow_csv_bodies(provider: StaticProvider, name: str, data: st.DataObject) -> None:
    body = data.draw(csv_bodies(FEATURES[name]))

    def decode(model: ServedModel) -> Any:
        return mlflow.decode_csv(body, max_columns=model.validator.max_columns)

    _only_typed_errors(provider.get(name), decode)


def _raw(body: bytes, content_type: str) -> Any:
    """A decoder of ``body`` sent with ``content_type`` to a model's MLflow route."""

    def decode(model: ServedModel) -> Any:
        request = Request("POST", "/invocations", {}, content_type, body=body)
        return mlflow.decode_request(request, max_columns=model.validator.max_columns).table

    return decode


@FUZZ
@given(
    body=st.binary(max_size=200) | CSV_CELLS.map(str.encode),
    content_type=st.sampled_from(
        ["text/csv", "application/json", "text/csv; charset=utf-8", "text/plain", ""]
    ),
)
def test_mlflow_raw_bodies(served: list[ServedModel], body: bytes, content_type: str) -> None:
    for model in served:
        _only_typed_errors(model, _raw(body, content_type))


@FUZZ
@given(body=st.binary(max_size=300) | JSON.map(lambda v: repr(v).encode()))
def test_mlflow_json_text_with_nan_tokens(served: list[ServedModel], body: bytes) -> None:
    # Python's reader (for the NaN token MLflow's client writes) must be as safe as orjson.
    payload = b"[" * (len(body) % 7) + body.replace(b"None", b"NaN") + b"]" * (len(body) % 5)

    for model in served:
        _only_typed_errors(model, _raw(payload, "application/json"))


@FUZZ
@given(
    uris=st.lists(
        st.text(max_size=30) | st.from_regex(r"models:/[a-z]{1,4}[/@][v0-9²]{0,12}"), max_size=4
    )
)
def test_served_model_uris(uris: list[str]) -> None:
    try:
        targets = targets_from(uris)
    except VigilError as exc:
        assert exc.status in (422, 500) and exc.message  # 500: a server setting, at start-up
        return
    assert len(targets) == len(uris)
    assert all(t.version is None or 1 <= t.version < 2**31 for t in targets)
