"""Signature inference: from the model, from reference data, or both (then they must agree).

The model knows the names and order of its inputs (and its classes); reference data knows
the types. When both exist, names and order come from the model and types from the data;
a model input the data lacks is an error. A model that knows only how many inputs it takes
(``f0, f1, ...``) borrows the reference's column names, in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vigil.bundle.flavors.base import default_feature_names
from vigil.bundle.signature import FeatureSpec, FeatureType, OutputSpec, Signature
from vigil.errors import BundleError, ReferenceDataError

if TYPE_CHECKING:
    import pyarrow as pa

    from vigil.profile_schema import BaselineProfile

CATEGORY_CAP = 1000
"""Most categories a signature lists for one categorical feature."""


def feature_type(name: str, arrow_type: pa.DataType) -> FeatureType:
    """The signature type of a reference column of Arrow type ``arrow_type``.

    >>> import pyarrow as pa
    >>> [feature_type("c", t) for t in (pa.float32(), pa.int8(), pa.bool_(), pa.string())]
    ['float64', 'int64', 'bool', 'string']
    """
    import pyarrow.types as pt

    if pt.is_boolean(arrow_type):
        return "bool"
    if pt.is_floating(arrow_type) or pt.is_decimal(arrow_type):
        return "float64"
    if pt.is_integer(arrow_type):
        return "int64"
    if pt.is_dictionary(arrow_type):
        return "category"
    if pt.is_string(arrow_type) or pt.is_large_string(arrow_type) or pt.is_null(arrow_type):
        return "string"
    raise ReferenceDataError(
        f"reference column {name!r} has type {arrow_type}, which vigil cannot profile; "
        "convert it to a number, bool or string column",
        detail={"column": name, "type": str(arrow_type)},
    )


def reference_inputs(schema: pa.Schema, *, target: str | None = None) -> list[FeatureSpec]:
    """One input per reference column (the ``target`` column excluded)."""
    if target is not None and target not in schema.names:
        raise ReferenceDataError(
            f"target column {target!r} is not in the reference data (columns: "
            f"{', '.join(schema.names)})",
            detail={"missing": [target]},
        )
    return [
        FeatureSpec(name=f.name, dtype=feature_type(f.name, f.type))
        for f in schema
        if f.name != target
    ]


def check_columns(names: list[str], available: list[str], *, what: str = "model") -> None:
    """Raise :class:`~vigil.errors.ReferenceDataError` naming the ``names`` not available."""
    present = set(available)
    missing = [n for n in names if n not in present]
    if missing:
        raise ReferenceDataError(
            f"the reference data lacks column(s) the {what} needs: {', '.join(missing)}; "
            "add them to the reference data (or pass the right reference file)",
            detail={"missing": missing},
        )


def merge_signature(
    *,
    model: Signature | None,
    reference: list[FeatureSpec] | None,
    explicit: Signature | None = None,
) -> Signature:
    """The signature of a bundle, from what the model, the reference and the caller say.

    >>> model = Signature(inputs=[FeatureSpec(name="f0", dtype="float64")])
    >>> ref = [FeatureSpec(name="age", dtype="int64")]
    >>> merge_signature(model=model, reference=ref).feature_names
    ['age']
    """
    if explicit is not None:
        if reference is not None:
            check_columns(explicit.feature_names, [f.name for f in reference], what="signature")
        if model is not None and explicit.outputs == OutputSpec():
            return Signature(inputs=explicit.inputs, outputs=model.outputs)
        return explicit
    if model is None:
        if reference is None:
            raise BundleError(
                "cannot tell the model's inputs: it does not record them; pass reference "
                "data or an explicit signature"
            )
        return Signature(inputs=reference)
    if reference is None:
        return model
    by_name = {f.name: f for f in reference}
    names = model.feature_names
    # Default names (f0, f1, ...) mean the model never saw real ones, unless the reference
    # uses them too: then they are real names and a missing one must be reported by name.
    if names == default_feature_names(len(names)) and not set(names) & set(by_name):
        if len(reference) != len(names):
            raise ReferenceDataError(
                f"the model takes {len(names)} unnamed inputs but the reference data has "
                f"{len(reference)} columns; pass exactly the model's input columns, in order",
                detail={"expected": len(names), "got": len(reference)},
            )
        return Signature(inputs=reference, outputs=model.outputs)
    # LightGBM stores "mean radius" as "mean_radius": find such columns under their real name.
    aliases = {n.replace(" ", "_"): f for n, f in by_name.items() if " " in n}
    matched = {n: by_name.get(n) or aliases.get(n) for n in names}
    check_columns([n for n, f in matched.items() if f is None], [])
    inputs = [
        # The model's own categorical marking wins over a plain string column.
        spec.model_copy(update={"name": found.name}) if spec.dtype == "category" else found
        for spec in model.inputs
        if (found := matched[spec.name]) is not None
    ]
    return Signature(inputs=inputs, outputs=model.outputs)


def with_categories(signature: Signature, profile: BaselineProfile) -> Signature:
    """The signature with each categorical input's categories read off the profile."""
    from vigil.profile_schema import CategoricalProfile

    inputs = []
    for spec in signature.inputs:
        prof = profile.features.get(spec.name)
        if (
            spec.categories is None
            and isinstance(prof, CategoricalProfile)
            and prof.n_unique <= CATEGORY_CAP
        ):
            spec = spec.model_copy(update={"categories": sorted(prof.frequencies)})
        inputs.append(spec)
    return Signature(inputs=inputs, outputs=signature.outputs)
