"""The validator on its own: shapes, safe casts, null/Inf policy, precise errors."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from vigil.bundle.signature import FeatureSpec, Signature
from vigil.errors import PayloadTooLargeError, ValidationError
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


# -- cost and limits: every check is linear in the input, wide inputs are refused early --

WIDE = 50_000


def test_a_duplicate_column_is_found_in_linear_time():
    # The last of 50,000 names repeats the one before: counting each name's occurrences
    # made 1.25e9 comparisons (tens of seconds); one pass over a set takes milliseconds.
    # The 2 s budget is a liveness check with a margin of over 100x, not a benchmark.
    columns = [f"c{i}" for i in range(WIDE)] + [f"c{WIDE - 1}"]
    started = time.perf_counter()
    with pytest.raises(ValidationError, match=f"column 'c{WIDE - 1}' appears twice"):
        Validator(SIG).validate(Split(columns, [[1.0] * len(columns)]))
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    "raw",
    [
        Split([f"c{i}" for i in range(WIDE)], [[1.0] * WIDE]),
        Split([f"c{i}" for i in range(WIDE)] + ["c0"], [[1.0] * (WIDE + 1)]),
        Columns({f"c{i}": [1.0] for i in range(WIDE)}),
        Records([{"a": 1.0, "b": 1, "flag": True}, {f"c{i}": 1.0 for i in range(WIDE)}]),
        Records([{"a": 1.0, "b": 1, "flag": True, **{f"c{i}": 1.0 for i in range(WIDE)}}]),
    ],
    ids=["split", "split-duplicates", "columns", "records", "records-with-features"],
)
@pytest.mark.parametrize("extra", ["reject", "ignore"])
def test_more_columns_than_the_limit_is_413_naming_the_setting(raw, extra):
    with pytest.raises(PayloadTooLargeError) as info:
        Validator(SIG, extra=extra, max_columns=16).validate(raw)
    assert info.value.status == 413
    assert info.value.detail["limit"] == 16 and info.value.detail["columns"] >= WIDE
    assert "VIGIL_SERVE_MAX_COLUMNS" in info.value.message
    assert "the model takes 4 features" in info.value.message


def test_the_column_limit_leaves_valid_tables_alone():
    v = Validator(SIG, extra="ignore", max_columns=5)
    X = v.validate(Records([{"a": 1.0, "b": 2, "flag": True, "opt": 3.0, "zz": 0}])).X
    np.testing.assert_array_equal(X, [[1.0, 2.0, 1.0, 3.0]])


@pytest.mark.parametrize(
    "raw",
    [
        Matrix([[1.0, 1, True, 1.0]] * 300),
        Records([{"a": 1.0, "b": 1, "flag": True}] * 300),
        Split(["a", "b", "flag"], [[1.0, 1, True]] * 300),
        Columns({"a": [1.0] * 300, "b": [1] * 300, "flag": [True] * 300}),
    ],
    ids=["matrix", "records", "split", "columns"],
)
def test_more_values_than_the_limit_is_413(raw):
    assert Validator(SIG, max_cells=1200).validate(raw).n_rows == 300
    with pytest.raises(PayloadTooLargeError) as info:
        Validator(SIG, max_cells=1199).validate(raw)
    assert info.value.detail == {"limit": 1199, "values": 1200, "rows": 300}
    assert "VIGIL_SERVE_MAX_CELLS" in info.value.message and "fewer rows" in info.value.message


@pytest.mark.parametrize(
    "huge", [10**400, -(10**400), 10**5000], ids=["400-digits", "minus", "5000-digits"]
)
def test_numbers_beyond_float64_are_422_not_an_overflow(huge):
    numeric = Signature(
        inputs=[FeatureSpec(name="x", dtype="float64"), FeatureSpec(name="y", dtype="float64")]
    )
    with pytest.raises(ValidationError) as info:
        Validator(numeric).validate(Matrix([[1.0, 2.0], [3.0, huge]]))
    assert (info.value.detail["field"], info.value.detail["row"]) == ("y", 1)
    assert "too large" in info.value.message and "digits" in info.value.detail["got"]
    mixed = Signature(
        inputs=[FeatureSpec(name="x", dtype="float64"), FeatureSpec(name="c", dtype="string")]
    )
    with pytest.raises(ValidationError) as info:
        Validator(mixed).validate(Records([{"x": huge, "c": "a"}]))
    assert (info.value.detail["field"], info.value.detail["row"]) == ("x", 0)
    with pytest.raises(ValidationError) as info:
        Validator(mixed).validate(Records([{"x": 1.0, "c": huge}]))
    assert info.value.detail["got"].startswith("a number of ") and len(info.value.message) < 300


@pytest.mark.parametrize("value", [1e300, -(2.0**64), 2**70])
def test_integer_features_stay_within_int64(value):
    ints = Signature(inputs=[FeatureSpec(name="n", dtype="int64")])
    mixed = Signature(inputs=[*ints.inputs, FeatureSpec(name="c", dtype="string")])
    with pytest.raises(ValidationError, match="'n' in row 0: expected an integer"):
        Validator(ints).validate(Records([{"n": value}]))
    with pytest.raises(ValidationError, match="'n' in row 0: expected an integer"):
        Validator(mixed).validate(Records([{"n": value, "c": "a"}]))
    assert Validator(ints).validate(Records([{"n": 2**62}])).X[0, 0] == 2.0**62


def test_a_misspelt_feature_name_suggests_the_closest_expected_one():
    sig = Signature(
        inputs=[FeatureSpec(name=n, dtype="float64") for n in ("tenure", "monthly_spend", "age")]
    )
    row = {"tenur": 3.0, "monthly_spend": 1.0, "age": 40.0}
    # Rejected as an extra column: the one it was probably meant to be is named.
    with pytest.raises(ValidationError) as info:
        Validator(sig).validate(Records([{**row, "tenure": 1.0}]))
    assert "unknown feature 'tenur' (did you mean 'tenure'?)" in info.value.message
    assert info.value.detail["suggestion"] == "tenure"
    # Missing: the sent name it probably is, whatever the extra-feature policy.
    for extra in ("reject", "ignore"):
        with pytest.raises(ValidationError) as info:
            Validator(sig, extra=extra).validate(Records([row]))
        assert "required feature 'tenure' is missing in row 0" in info.value.message
        assert "(did you mean 'tenure' for 'tenur'?)" in info.value.message
        assert info.value.detail["suggestion"] == "tenure"
    # Columns and split shapes too; nothing close: no suggestion.
    with pytest.raises(ValidationError, match="did you mean 'monthly_spend'"):
        Validator(sig).validate(Columns({"tenure": [1.0], "monthly_spnd": [1.0], "age": [1.0]}))
    with pytest.raises(ValidationError) as info:
        Validator(sig).validate(Split(["tenure", "monthly_spend", "age", "zzz"], [[1, 1, 1, 1]]))
    assert "did you mean" not in info.value.message and "suggestion" not in info.value.detail


def test_unseen_categories_are_accepted_by_default_and_refused_on_request():
    sig = Signature(
        inputs=[
            FeatureSpec(name="plan", dtype="string", categories=["basic", "pro"]),
            FeatureSpec(name="store", dtype="category", categories=[3, 5]),
            FeatureSpec(name="x", dtype="float64"),
        ]
    )
    rows = Records(
        [
            {"plan": "pro", "store": 3, "x": 1.0},
            {"plan": "enterprise", "store": 5, "x": 1.0},
            {"plan": None, "store": 7, "x": 1.0},
        ]
    )
    frame = Validator(sig).validate(rows).X
    plans = list(frame["plan"])  # accepted (and counted by monitoring later)
    assert plans[:2] == ["pro", "enterprise"] and pd.isna(plans[2])
    refusing = Validator(sig, unseen_categories="refuse")
    with pytest.raises(ValidationError) as info:
        refusing.validate(rows)
    assert info.value.message.startswith(
        "feature 'plan' in row 1: 'enterprise' is a category the model never saw"
    )
    assert "'basic', 'pro'" in info.value.message and "unseen_categories" in info.value.message
    assert info.value.detail == {
        "field": "plan",
        "row": 1,
        "expected": "a category ('basic', 'pro')",
        "got": "the unseen category 'enterprise'",
    }
    with pytest.raises(ValidationError, match="feature 'store' in row 0: 7 is a category"):
        refusing.validate(Records([{"plan": None, "store": 7, "x": 1.0}]))
    # known values and missing ones pass
    ok = refusing.validate(Records([{"plan": None, "store": 5, "x": 2.0}])).X
    assert list(ok["store"]) == [5]
    with pytest.raises(ValueError, match="unseen_categories"):
        Validator(sig, unseen_categories="drop")  # type: ignore[arg-type]


_FLOATS = Signature(
    inputs=[
        FeatureSpec(name="x", dtype="float64", nullable=False),
        FeatureSpec(name="y", dtype="float64"),
        FeatureSpec(name="z", dtype="float32", nullable=False),
    ]
)


def _outcome(validator: Validator, raw: Records) -> tuple[object, ...]:
    try:
        valid = validator.validate(raw)
    except (ValidationError, PayloadTooLargeError) as exc:
        return (type(exc), exc.message, exc.detail)
    X = np.asarray(valid.X)
    assert X.flags.c_contiguous
    return (valid.n_rows, X.shape, X.dtype, X.tobytes())


@pytest.mark.parametrize(
    "record",
    [
        {"x": 0.5, "y": -1.25, "z": 3.0},
        {"z": 3, "x": 1, "y": 2},  # ints, any key order
        {"x": 2**53 + 1, "y": 2**63, "z": 10**300},  # ints a float64 rounds
        {"x": -0.0, "y": 5e-324, "z": -1.7976931348623157e308},
        {"x": 1e308, "y": 1e308, "z": 0.0},  # finite values whose sum overflows
        {"x": 10**400, "y": 1.0, "z": 0.0},  # past float64's range
        {"x": float("nan"), "y": 1.0, "z": 0.0},
        {"x": 1.0, "y": None, "z": 0.0},  # a missing value where it is allowed
        {"x": None, "y": 1.0, "z": 0.0},
        {"x": float("inf"), "y": 1.0, "z": 0.0},
        {"x": 1.0, "y": float("-inf"), "z": float("inf")},
        {"x": True, "y": 1.0, "z": 0.0},
        {"x": "0.5", "y": 1.0, "z": 0.0},
        {"x": [1.0], "y": 1.0, "z": 0.0},
        {"x": np.float64(1.0), "y": 1.0, "z": 0.0},
        {"x": 1.0, "y": 1.0},  # a feature missing
        {"x": 1.0, "y": 1.0, "w": 0.0},  # one misspelt
        {"x": 1.0, "y": 1.0, "z": 0.0, "extra": 1.0},
        {},
    ],
)
@pytest.mark.parametrize(
    "options",
    [{}, {"allow_inf": True}, {"extra": "ignore"}, {"max_cells": 2}, {"max_columns": 3}],
    ids=["default", "allow-inf", "extra-ignore", "max-cells", "max-columns"],
)
def test_one_record_of_floats_is_validated_as_the_general_path_does(record, options):
    """The one-record fast path answers exactly what the general path answers: the same
    matrix, bit for bit, or the same error."""
    fast = Validator(_FLOATS, **options)
    general = Validator(_FLOATS, **options)
    general._one_record_ok = False  # the general path, as for any other table
    assert fast._one_record_ok == ("max_cells" not in options)
    if fast._one_record_ok:  # the fast path is taken where it applies
        assert fast._one_record([{"x": 0.5, "y": 1, "z": 2.0}]) is not None
    assert _outcome(fast, Records([record])) == _outcome(general, Records([record]))
    # Not one record: never the fast path.
    assert _outcome(fast, Records([record, record])) == _outcome(general, Records([record, record]))
    assert _outcome(fast, Records(record)) == _outcome(general, Records(record))  # type: ignore[arg-type]
