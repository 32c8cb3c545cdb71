from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from vigil.bundle.infer import merge_signature, reference_inputs
from vigil.bundle.signature import FeatureSpec, OutputSpec, Signature
from vigil.errors import BundleError, ReferenceDataError


def test_reference_types_from_a_frame() -> None:
    df = pd.DataFrame(
        {
            "f": [1.5, 2.0],
            "i": [1, 2],
            "b": [True, False],
            "s": ["a", "b"],
            "c": pd.Categorical(["x", "y"]),
            "label": [0, 1],
        }
    )
    specs = reference_inputs(pa.Schema.from_pandas(df, preserve_index=False), target="label")
    assert [(f.name, f.dtype) for f in specs] == [
        ("f", "float64"),
        ("i", "int64"),
        ("b", "bool"),
        ("s", "string"),
        ("c", "category"),
    ]
    with pytest.raises(ReferenceDataError, match="timestamp"):
        reference_inputs(pa.schema([("t", pa.timestamp("s"))]))


def test_model_names_and_order_reference_types() -> None:
    model = Signature(
        inputs=[FeatureSpec(name="b", dtype="float64"), FeatureSpec(name="a", dtype="float64")],
        outputs=OutputSpec(task="classification", classes=["no", "yes"]),
    )
    ref = [
        FeatureSpec(name="a", dtype="int64"),
        FeatureSpec(name="b", dtype="string"),
        FeatureSpec(name="extra", dtype="float64"),
    ]
    sig = merge_signature(model=model, reference=ref)
    assert [(f.name, f.dtype) for f in sig.inputs] == [("b", "string"), ("a", "int64")]
    assert sig.outputs.classes == ["no", "yes"]
    with pytest.raises(ReferenceDataError, match="needs: b") as err:
        merge_signature(model=model, reference=ref[:1])
    assert err.value.detail == {"missing": ["b"]}


def test_unnamed_model_borrows_reference_names_only_when_widths_agree() -> None:
    model = Signature(
        inputs=[FeatureSpec(name="f0", dtype="float64"), FeatureSpec(name="f1", dtype="float64")]
    )
    ref = [FeatureSpec(name="x", dtype="float64"), FeatureSpec(name="y", dtype="int64")]
    assert merge_signature(model=model, reference=ref).feature_names == ["x", "y"]
    with pytest.raises(ReferenceDataError, match="2 unnamed inputs"):
        merge_signature(model=model, reference=ref[:1])


def test_explicit_signature_wins_and_nothing_known_is_an_error() -> None:
    explicit = Signature(inputs=[FeatureSpec(name="x", dtype="float32")])
    model = Signature(
        inputs=[FeatureSpec(name="f0", dtype="float64")], outputs=OutputSpec(task="regression")
    )
    sig = merge_signature(model=model, reference=None, explicit=explicit)
    assert sig.inputs == explicit.inputs and sig.outputs.task == "regression"
    with pytest.raises(ReferenceDataError, match="signature needs: x"):
        merge_signature(
            model=None, reference=[FeatureSpec(name="y", dtype="float64")], explicit=explicit
        )
    with pytest.raises(BundleError, match="pass reference data or an explicit signature"):
        merge_signature(model=None, reference=None)
