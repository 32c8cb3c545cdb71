"""The validator on its own: shapes, safe casts, null/Inf policy, precise errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.bundle.signature import FeatureSpec, Signature
from vigil.errors import ValidationError
from vigil.serving.validation import Columns, Matrix, Records, Split, Validator

SIG = Signature(
    inputs=[
        FeatureSpec(name="a", dtype="float64"),
        FeatureSpec(name="b", dtype="int64", nullable=False),
        FeatureSpec(name="flag", dtype="bool"),
        FeatureSpec(name="opt", dtype="float64", required=False),
    ]
)


def test_all_shapes_give_the_same_contiguous_matrix():
    expected = np.array([[0.5, 2.0, 1.0, np.nan], [1.0, 3.0, 0.0, 4.0]])
    v = Validator(SIG)
    tables = [
        Records([{"flag": True, "b": 2, "a": 0.5}, {"a": 1, "b": 3.0, "flag": False, "opt": 4}]),
        Split(["opt", "flag", "b", "a"], [[None, True, 2, 0.5], [4, False, 3, 1]]),
        Columns({"a": [0.5, 1], "b": [2, 3], "flag": [True, False], "opt": [None, 4]}),
        Matrix([[0.5, 2, True, None], [1, 3, False, 4]]),
    ]
    for raw in tables:
        X = v.validate(raw).X
        assert isinstance(X, np.ndarray) and X.dtype == np.float64 and X.flags.c_contiguous
        np.testing.assert_array_equal(X, expected)


@pytest.mark.parametrize(
    ("raw", "field", "row", "got"),
    [
        (Records([{"a": 1, "b": 1, "flag": 1}]), "flag", 0, "the number 1"),
        (Records([{"a": True, "b": 1, "flag": True}]), "a", 0, "the boolean true"),
        (Records([{"a": 1, "b": None, "flag": True}]), "b", 0, "null"),
        (Records([{"a": 1, "b": 1.5, "flag": True}]), "b", 0, "the number 1.5"),
        (
            Records([{"a": 1, "b": 1, "flag": True}, {"a": "x", "b": 1, "flag": True}]),
            "a",
            1,
            "the string 'x'",
        ),
        (Columns({"a": [1.0], "b": [1, 2], "flag": [True]}), "b", None, "2 values"),
    ],
)
def test_errors_name_field_row_and_value(raw, field, row, got):
    with pytest.raises(ValidationError) as info:
        Validator(SIG).validate(raw)
    detail = info.value.detail
    assert (detail["field"], detail["row"], detail["got"]) == (field, row, got)
    assert info.value.status == 422


def test_infinity_policy_and_extra_feature_policy():
    v = Validator(SIG)
    with pytest.raises(ValidationError, match="'a' in row 0 is infinite"):
        v.validate(Records([{"a": float("inf"), "b": 1, "flag": True}]))
    assert (
        Validator(SIG, allow_inf=True)
        .validate(Records([{"a": float("-inf"), "b": 1, "flag": True}]))
        .X[0, 0]
        == -np.inf
    )
    extra = Records([{"a": 1, "b": 1, "flag": True, "zzz": 0}])
    with pytest.raises(ValidationError, match="unknown feature 'zzz'"):
        v.validate(extra)
    np.testing.assert_array_equal(
        Validator(SIG, extra="ignore").validate(extra).X, [[1.0, 1.0, 1.0, np.nan]]
    )


def test_mixed_signature_builds_a_typed_frame():
    sig = Signature(
        inputs=[
            FeatureSpec(name="n", dtype="int64"),
            FeatureSpec(name="city", dtype="category", categories=["a", "b"]),
            FeatureSpec(name="x", dtype="float64"),
        ]
    )
    frame = (
        Validator(sig)
        .validate(Records([{"x": 1.5, "city": "b", "n": 3}, {"x": None, "city": None, "n": 4}]))
        .X
    )
    expected = pd.DataFrame(
        {"n": np.array([3, 4]), "city": np.array(["b", None], dtype=object), "x": [1.5, np.nan]}
    )
    pd.testing.assert_frame_equal(frame, expected)
    with pytest.raises(
        ValidationError, match="expected a category \\('a', 'b'\\), got the number 1"
    ):
        Validator(sig).validate(Records([{"x": 1.0, "city": 1, "n": 3}]))
