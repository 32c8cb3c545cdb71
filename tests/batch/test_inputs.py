"""The vectorised chunk path agrees with the server's validator on every table: it builds
the very same model input, or the validator raises the very same error."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from vigil.batch.inputs import Chunk, ChunkValidator
from vigil.bundle.signature import FeatureSpec, Signature
from vigil.errors import ValidationError
from vigil.serving.validation import Columns, Validator

NUMERIC = Signature(
    inputs=[
        FeatureSpec(name="a", dtype="float64"),
        FeatureSpec(name="b", dtype="int64"),
        FeatureSpec(name="c", dtype="bool"),
        FeatureSpec(name="d", dtype="float64", nullable=False),
    ]
)
MIXED = Signature(
    inputs=[
        *NUMERIC.inputs,
        FeatureSpec(name="s", dtype="string", nullable=False),
        FeatureSpec(name="k", dtype="category", categories=[1, 2, 3]),
        FeatureSpec(name="m", dtype="category", required=False),
    ]
)


def _column(rng: np.random.Generator, spec: FeatureSpec, n: int) -> pa.Array:
    """Mostly what the feature wants; now and then a value or a type it must refuse."""
    roll = rng.random()
    if spec.dtype == "float64":
        values: list[Any] = list(rng.normal(size=n))
        if roll < 0.3:
            values[int(rng.integers(n))] = [None, float("nan"), float("inf")][int(rng.integers(3))]
        if roll > 0.9:
            return pa.array([str(v) for v in values])  # numbers as strings: refused
        if 0.8 < roll <= 0.9:
            return pa.array(rng.integers(-5, 5, n))  # ints for a float: fine
        return pa.array(values, type=pa.float64())
    if spec.dtype == "int64":
        if roll < 0.2:
            return pa.array(rng.integers(0, 9, n).astype(float) + (rng.random(n) < 0.05) * 0.5)
        if roll < 0.3:
            return pa.array([None if rng.random() < 0.1 else int(v) for v in rng.integers(0, 9, n)])
        return pa.array(rng.integers(0, 9, n))
    if spec.dtype == "bool":
        if roll < 0.15:
            return pa.array(rng.integers(0, 2, n))  # 0/1 ints for a bool: refused
        return pa.array([None if rng.random() < 0.05 else bool(v) for v in rng.random(n) < 0.5])
    if spec.dtype == "string":
        if roll < 0.15:
            return pa.array(rng.integers(0, 3, n))  # ints for a string: refused
        return pa.array(
            [None if rng.random() < 0.03 else str(v) for v in rng.choice(["x", "y"], n)]
        )
    if spec.categories:
        if roll < 0.2:
            return pa.array(rng.choice(["1", "2"], n))  # text for int categories: refused
        return pa.array([int(v) for v in rng.integers(1, 4, n)])
    if roll < 0.3:
        return pa.array(rng.choice(["u", "v"], n)).dictionary_encode()
    return pa.array([int(v) if rng.random() < 0.5 else None for v in rng.integers(0, 9, n)])


def _compare(signature: Signature, table: pa.Table) -> str:
    fast = ChunkValidator(signature, source="f")
    columns = {n: table.column(n).to_pylist() for n in table.column_names}
    try:
        expected = Validator(signature, extra="ignore").validate(Columns(columns)).X
    except ValidationError as exc:
        with pytest.raises(ValidationError) as caught:
            fast.prepare(Chunk(offset=0, table=table))
        assert caught.value.message == f"f: {exc.message}"
        assert caught.value.detail == exc.detail
        return "refused"
    got = fast.prepare(Chunk(offset=0, table=table)).X
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected)
    else:
        assert isinstance(got, np.ndarray) and got.flags.c_contiguous
        np.testing.assert_array_equal(got, expected)
    return "accepted"


@pytest.mark.parametrize("signature", [NUMERIC, MIXED], ids=["numeric", "mixed"])
def test_fast_path_agrees_with_the_validator(signature: Signature) -> None:
    rng = np.random.default_rng(11)
    outcomes = []
    for _ in range(300):
        n = int(rng.integers(1, 40))
        specs = [s for s in signature.inputs if s.required or rng.random() < 0.5]
        table = pa.table({s.name: _column(rng, s, n) for s in specs})
        outcomes.append(_compare(signature, table))
    # both outcomes were exercised, many times
    assert outcomes.count("accepted") > 20 and outcomes.count("refused") > 20


def test_clean_numeric_chunks_never_reach_the_row_by_row_validator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check = ChunkValidator(NUMERIC)
    monkeypatch.setattr(check, "validator", None)  # any use of it would fail
    table = pa.table(
        {
            "a": [0.5, None],
            "b": [1, 2],
            "c": [True, False],
            "d": [1.0, 2.0],
            "extra": ["kept", "too"],
        }
    )
    prepared = check.prepare(Chunk(offset=0, table=table))
    np.testing.assert_array_equal(prepared.X, [[0.5, 1, 1, 1], [np.nan, 2, 0, 2]])
    assert prepared.table.equals(table)


def test_error_rows_count_from_the_start_of_the_file() -> None:
    sig = Signature(inputs=[FeatureSpec(name="row 3", dtype="float64")])
    table = pa.table({"row 3": pa.array(["1", "2", "3", "no"])})
    with pytest.raises(ValidationError) as caught:
        ChunkValidator(sig, source="in.csv").prepare(
            Chunk(offset=5000, table=table, text_columns=frozenset({"row 3"}))
        )
    assert str(caught.value) == (
        "in.csv: feature 'row 3' in row 5003: expected a number (float64), got the string 'no'"
    )
    assert caught.value.detail["row"] == 5003
