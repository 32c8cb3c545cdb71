"""Dataset drift: every column compared, one verdict, entry points :func:`compare` and
:func:`compare_to_profile`.

The verdict combines two rules, both stated in the result:

1. **Multiple testing.** Columns judged by a p-value (``ks``, ``chi2``, ``cvm``) are
   corrected together with Benjamini–Hochberg at ``alpha``; such a column counts as
   drifted only when its *adjusted* p-value is below ``alpha``.
2. **Share of drifted columns.** The dataset drifted when at least ``drift_share`` (0.5 by
   default) of the compared columns drifted.

Column kinds: ``categorical=`` names the categorical columns; otherwise strings,
objects, pandas categories and booleans are categorical and the rest numeric. The method
per column follows the table in :mod:`vigil.drift.select` unless ``methods=`` forces one.

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> ref = {"age": rng.normal(40, 10, 5000), "city": rng.choice(["a", "b", "c"], 5000)}
>>> cur = {"age": rng.normal(45, 10, 5000), "city": rng.choice(["a", "b", "c"], 5000)}
>>> report = compare(ref, cur)
>>> [(c.column, c.method, round(c.statistic, 3), c.drifted) for c in report.columns]
[('age', 'wasserstein_normalised', 0.53, True), ('city', 'js', 0.015, False)]
>>> report.dataset_drifted, report.share_drifted
(True, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from vigil.drift._column import NumericColumn, count_categories, is_categorical_dtype
from vigil.drift.binning import DEFAULT_BINS
from vigil.drift.categorical import count_against_profile
from vigil.drift.column_drift import (
    ColumnDrift,
    NumericReference,
    categorical_drift,
    numeric_drift,
)
from vigil.drift.reference import numeric_reference, numeric_reference_from_profile
from vigil.drift.select import ALPHA, SMALL_SAMPLE
from vigil.errors import ValidationError
from vigil.params import fail
from vigil.profile_schema import BaselineProfile, CategoricalProfile, NumericProfile
from vigil.stats.multiple_testing import benjamini_hochberg

DRIFT_SHARE = 0.5

Table = pd.DataFrame | Mapping[str, Any]


@dataclass(frozen=True)
class DriftReport:
    """Per-column results and the dataset verdict."""

    columns: tuple[ColumnDrift, ...]
    alpha: float
    drift_share: float
    n_drifted: int
    share_drifted: float
    dataset_drifted: bool
    rule: str

    def column(self, name: str) -> ColumnDrift:
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def verdict(self, noun: str = "columns") -> str:
        """The dataset verdict in one line, with the share it needs: a few drifted
        columns (and the alerts they fire) then do not read as a contradiction.

        >>> rng = np.random.default_rng(7)
        >>> ref = {"age": rng.normal(40, 10, 500), "city": rng.choice(["a", "b"], 500)}
        >>> cur = {"age": rng.normal(40, 10, 500), "city": rng.choice(["a", "b"], 500)}
        >>> compare(ref, cur).verdict("features")
        'no dataset drift: 0 of 2 features (0%) drifted; the verdict needs ≥ 50%'
        """
        compared = sum(c.method != "none" for c in self.columns)
        head = "dataset drift" if self.dataset_drifted else "no dataset drift"
        return (
            f"{head}: {self.n_drifted} of {compared} {noun} ({self.share_drifted:.0%}) "
            f"drifted; the verdict needs ≥ {self.drift_share:.0%}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "columns": [c.to_dict() for c in self.columns],
            "alpha": self.alpha,
            "drift_share": self.drift_share,
            "n_drifted": self.n_drifted,
            "share_drifted": self.share_drifted,
            "dataset_drifted": self.dataset_drifted,
            "rule": self.rule,
        }


def build_report(
    results: Iterable[ColumnDrift], *, alpha: float = ALPHA, drift_share: float = DRIFT_SHARE
) -> DriftReport:
    """Apply Benjamini–Hochberg to the p-value columns and the share rule to all."""
    results = list(results)
    tested = [i for i, r in enumerate(results) if r.p_value is not None]
    adjusted = benjamini_hochberg([float(results[i].p_value or 0.0) for i in tested])
    for i, p_adj in zip(tested, adjusted, strict=True):
        results[i] = replace(
            results[i], p_value_adjusted=float(p_adj), drifted=bool(p_adj < results[i].threshold)
        )
    compared = [r for r in results if r.method != "none"]
    n_drifted = sum(r.drifted for r in compared)
    share = n_drifted / len(compared) if compared else 0.0
    rule = (
        f"p-values corrected with Benjamini–Hochberg at alpha={alpha}; dataset drifted when "
        f"at least {drift_share:.0%} of the {len(compared)} compared columns drifted"
    )
    return DriftReport(
        columns=tuple(results),
        alpha=alpha,
        drift_share=drift_share,
        n_drifted=n_drifted,
        share_drifted=share,
        dataset_drifted=bool(n_drifted > 0 and share >= drift_share),
        rule=rule,
    )


def _get(table: Table, name: str, side: str) -> Any:
    try:
        return table[name]
    except KeyError:
        raise ValidationError(
            f"column {name!r} is missing from the {side} data; pass columns= to compare a subset",
            detail={"column": name, "side": side},
        ) from None


def _names(table: Table) -> list[str]:
    return [str(c) for c in (table.columns if isinstance(table, pd.DataFrame) else table)]


def _check_share(drift_share: float) -> None:
    if not 0.0 < drift_share <= 1.0 or math.isnan(drift_share):
        fail("compare", "drift_share", "in (0, 1]", drift_share)


def compare(
    reference: Table,
    current: Table,
    *,
    columns: Iterable[str] | None = None,
    categorical: Iterable[str] | None = None,
    methods: Mapping[str, str] | None = None,
    alpha: float = ALPHA,
    drift_share: float = DRIFT_SHARE,
    small_sample: int = SMALL_SAMPLE,
    thresholds: Mapping[str, float] | None = None,
    n_bins: int = DEFAULT_BINS,
) -> DriftReport:
    """Compare current data with reference data, column by column.

    ``reference``/``current`` are DataFrames or mappings of column name to array.
    ``columns`` defaults to the reference's columns; ``categorical`` lists the categorical
    ones (default: inferred from dtypes); ``methods`` forces a method per column;
    ``thresholds`` overrides the per-method thresholds of :mod:`vigil.drift.select`.
    """
    _check_share(drift_share)
    names = list(columns) if columns is not None else _names(reference)
    cat = set(categorical) if categorical is not None else None
    methods = dict(methods or {})
    limits = dict(thresholds or {})
    results: list[ColumnDrift] = []
    for name in names:
        ref, cur = _get(reference, name, "reference"), _get(current, name, "current")
        is_cat = name in cat if cat is not None else is_categorical_dtype(ref)
        if is_cat:
            results.append(
                categorical_drift(
                    name,
                    count_categories(ref, cur),
                    method=methods.get(name),
                    alpha=alpha,
                    small_sample=small_sample,
                    thresholds=limits,
                )
            )
        else:
            results.append(
                numeric_drift(
                    name,
                    numeric_reference(NumericColumn.from_values(ref), n_bins),
                    NumericColumn.from_values(cur),
                    method=methods.get(name),
                    alpha=alpha,
                    small_sample=small_sample,
                    thresholds=limits,
                )
            )
    return build_report(results, alpha=alpha, drift_share=drift_share)


def compare_to_profile(
    profile: BaselineProfile,
    current: Table,
    *,
    columns: Iterable[str] | None = None,
    methods: Mapping[str, str] | None = None,
    alpha: float = ALPHA,
    drift_share: float = DRIFT_SHARE,
    small_sample: int = SMALL_SAMPLE,
    thresholds: Mapping[str, float] | None = None,
    references: Mapping[str, NumericReference] | None = None,
) -> DriftReport:
    """Compare current data with a version's stored baseline profile (no reference data).

    Column kinds come from the profile. Numeric columns whose profile has no raw
    ``sample`` are judged by PSI on the stored quantile bins. ``references`` holds numeric
    columns' reference sides already built from this profile
    (:func:`~vigil.drift.reference.numeric_reference_from_profile`), for a caller that
    compares many windows with one profile; the others are built here.
    """
    _check_share(drift_share)
    names = list(columns) if columns is not None else list(profile.features)
    methods = dict(methods or {})
    limits = dict(thresholds or {})
    built = references or {}
    results: list[ColumnDrift] = []
    for name in names:
        if name not in profile.features:
            raise ValidationError(
                f"column {name!r} is not in the baseline profile; profiled columns: "
                f"{sorted(profile.features)}",
                detail={"column": name},
            )
        results.append(
            profile_column_drift(
                name,
                profile.features[name],
                _get(current, name, "current"),
                sample=profile.sample.get(name),
                method=methods.get(name),
                alpha=alpha,
                small_sample=small_sample,
                thresholds=limits,
                reference=built.get(name),
            )
        )
    return build_report(results, alpha=alpha, drift_share=drift_share)


def profile_column_drift(
    name: str,
    feature: NumericProfile | CategoricalProfile,
    current: Any,
    *,
    sample: list[Any] | None = None,
    method: str | None = None,
    alpha: float = ALPHA,
    small_sample: int = SMALL_SAMPLE,
    thresholds: Mapping[str, float] | None = None,
    reference: NumericReference | None = None,
) -> ColumnDrift:
    """Drift of one column against its stored profile (and raw sample, for numeric;
    ``reference``: the numeric reference side already built from them)."""
    limits = dict(thresholds or {})
    if isinstance(feature, CategoricalProfile):
        return categorical_drift(
            name,
            count_against_profile(feature, current),
            method=method,
            alpha=alpha,
            small_sample=small_sample,
            thresholds=limits,
        )
    return numeric_drift(
        name,
        reference if reference is not None else numeric_reference_from_profile(feature, sample),
        NumericColumn.from_values(np.asarray(current) if isinstance(current, list) else current),
        method=method,
        alpha=alpha,
        small_sample=small_sample,
        thresholds=limits,
    )
