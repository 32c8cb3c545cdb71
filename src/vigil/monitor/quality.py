"""Data quality of a window of inputs, feature by feature, against the baseline profile.

Per feature (the signature's inputs, else the profile's features):

* **missing** — null / NaN values; rate, the baseline's rate and the change.
* **type errors** — present values not castable to the signature's dtype (non-numbers
  for numeric features, non-integral numbers for ``int64``/``int32``, anything but
  true/false/0/1 for ``bool``). Categorical features accept any value.
* **out of range** — finite numeric values outside the reference
  ``[min - m, max + m]`` with ``m = range_margin * (max - min)`` (margin 0 by default:
  strictly outside what the reference held).
* **outliers** — finite values beyond the Tukey fences ``Q1 - k IQR`` / ``Q3 + k IQR``
  (``k = 1.5``) from the profile's quantiles (Q1 = 25th, Q3 = 75th of its 101 points).
* **unseen categories** — categorical values absent from the profile's frequency table
  and from the signature's ``categories``. When the profile capped its table and the
  signature lists no categories, unseen values cannot be told from rare ones and the
  count is ``None``.
* **infinite** — ``±inf`` values (kept out of range and outlier counts).

Rates are over the window's rows. ``schema_violations`` — requests the serving gate
rejected before they reached the log — is passed in by the caller and reported beside
the rows that got through.

>>> from vigil.profile_schema import BaselineProfile, NumericProfile
>>> prof = BaselineProfile(n_rows=100, features={"age": NumericProfile(
...     count=100, missing=0, min=18.0, max=90.0, mean=40.0, std=12.0,
...     quantiles=[18.0 + 0.72 * i for i in range(101)])})
>>> q = check_quality({"age": [20.0, None, 95.0, "abc", float("inf")]}, prof)
>>> f = q.feature("age")
>>> f.missing, f.type_errors, f.out_of_range, f.infinite
(1, 1, 1, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from vigil.bundle.signature import FeatureSpec, Signature
from vigil.profile_schema import BaselineProfile, CategoricalProfile, NumericProfile

IQR_FACTOR = 1.5
MAX_LISTED = 20


@dataclass(frozen=True)
class FeatureQuality:
    """Counts and rates of each quality problem for one feature in one window."""

    feature: str
    kind: str
    n_rows: int
    missing: int
    missing_rate: float
    baseline_missing_rate: float | None
    missing_rate_change: float | None
    type_errors: int = 0
    out_of_range: int = 0
    outliers: int = 0
    infinite: int = 0
    unseen_categories: int | None = 0
    unseen_values: list[str] = field(default_factory=list)

    def rate(self, count: int | None) -> float | None:
        return None if count is None else (count / self.n_rows if self.n_rows else 0.0)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("type_errors", "out_of_range", "outliers", "infinite", "unseen_categories"):
            out[f"{name}_rate"] = self.rate(getattr(self, name))
        return out


@dataclass(frozen=True)
class QualityReport:
    """Per-feature quality plus totals over the window."""

    n_rows: int
    features: tuple[FeatureQuality, ...]
    schema_violations: int
    schema_violation_rate: float
    """Rejected requests over (rejected + logged rows)."""
    totals: dict[str, int]

    def feature(self, name: str) -> FeatureQuality:
        for f in self.features:
            if f.feature == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "features": [f.to_dict() for f in self.features],
            "schema_violations": self.schema_violations,
            "schema_violation_rate": self.schema_violation_rate,
            "totals": self.totals,
        }


def _type_errors(
    raw: npt.NDArray[Any], present: npt.NDArray[np.bool_], dtype: str
) -> tuple[int, npt.NDArray[np.float64]]:
    if raw.dtype.kind in "fiub":
        values = raw.astype(np.float64)
        bad = np.zeros(raw.shape, dtype=bool)
    else:
        values = np.asarray(
            pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce"), dtype=np.float64
        )
        bad = present & np.isnan(values)
    finite = np.isfinite(values)
    if dtype in ("int64", "int32"):
        bad |= present & finite & (values != np.round(values))
    elif dtype == "bool":
        bad |= present & finite & ~np.isin(values, (0.0, 1.0))
    return int(bad.sum()), np.where(bad, np.nan, values)


def _numeric(
    name: str,
    raw: npt.NDArray[Any],
    prof: NumericProfile | None,
    spec: FeatureSpec | None,
    range_margin: float,
    iqr_factor: float,
) -> FeatureQuality:
    present = ~np.asarray(pd.isna(raw), dtype=bool)
    n = raw.size
    missing = int(n - present.sum())
    type_errors, values = _type_errors(raw, present, spec.dtype if spec else "float64")
    infinite = np.isinf(values)
    finite_values = values[np.isfinite(values)]
    out_of_range = outliers = 0
    if prof is not None and prof.min is not None and prof.max is not None:
        margin = range_margin * (prof.max - prof.min)
        out_of_range = int(
            ((finite_values < prof.min - margin) | (finite_values > prof.max + margin)).sum()
        )
    if prof is not None and len(prof.quantiles) == 101:
        q1, q3 = prof.quantiles[25], prof.quantiles[75]
        iqr = q3 - q1
        outliers = int(
            (
                (finite_values < q1 - iqr_factor * iqr) | (finite_values > q3 + iqr_factor * iqr)
            ).sum()
        )
    return _feature(
        name,
        "numeric",
        n,
        missing,
        prof,
        type_errors=type_errors,
        out_of_range=out_of_range,
        outliers=outliers,
        infinite=int(infinite.sum()),
    )


def _feature(
    name: str,
    kind: str,
    n: int,
    missing: int,
    prof: NumericProfile | CategoricalProfile | None,
    **counts: Any,
) -> FeatureQuality:
    rate = missing / n if n else 0.0
    base = prof.missing_rate if prof is not None else None
    return FeatureQuality(
        feature=name,
        kind=kind,
        n_rows=n,
        missing=missing,
        missing_rate=rate,
        baseline_missing_rate=base,
        missing_rate_change=None if base is None else rate - base,
        **counts,
    )


def _categorical(
    name: str, raw: npt.NDArray[Any], prof: CategoricalProfile | None, spec: FeatureSpec | None
) -> FeatureQuality:
    codes, uniques = pd.factorize(pd.Series(raw, dtype=object))
    n = raw.size
    missing = int((codes < 0).sum())
    known: set[str] = set()
    if prof is not None:
        known |= set(prof.frequencies)
    if spec is not None and spec.categories:
        known |= {str(c) for c in spec.categories}
    can_tell = bool(known) and not (
        prof is not None and prof.other_count > 0 and not (spec and spec.categories)
    )
    unseen: int | None = None
    listed: list[str] = []
    if can_tell:
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        unseen = 0
        for value, count in zip(uniques, counts, strict=True):
            if str(value) not in known:
                unseen += int(count)
                if len(listed) < MAX_LISTED:
                    listed.append(str(value))
    return _feature(
        name, "categorical", n, missing, prof, unseen_categories=unseen, unseen_values=listed
    )


def check_quality(
    current: pd.DataFrame | Mapping[str, Any],
    profile: BaselineProfile,
    signature: Signature | None = None,
    *,
    schema_violations: int = 0,
    range_margin: float = 0.0,
    iqr_factor: float = IQR_FACTOR,
) -> QualityReport:
    """Quality of the window ``current`` feature by feature (see the module docstring)."""
    names = signature.feature_names if signature is not None else list(profile.features)
    columns = list(current.columns) if isinstance(current, pd.DataFrame) else list(current)
    n_rows = (
        len(current)
        if isinstance(current, pd.DataFrame)
        else max((len(np.asarray(current[c])) for c in columns), default=0)
    )
    results: list[FeatureQuality] = []
    for name in names:
        spec = signature.feature(name) if signature is not None else None
        prof = profile.features.get(name)
        raw = np.asarray(current[name]) if name in columns else np.full(n_rows, None, dtype=object)
        raw = raw.reshape(-1)
        numeric = spec.is_numeric if spec is not None else isinstance(prof, NumericProfile)
        if numeric:
            results.append(
                _numeric(
                    name,
                    raw,
                    prof if isinstance(prof, NumericProfile) else None,
                    spec,
                    range_margin,
                    iqr_factor,
                )
            )
        else:
            results.append(
                _categorical(
                    name, raw, prof if isinstance(prof, CategoricalProfile) else None, spec
                )
            )
    totals = {
        key: sum(int(getattr(f, key) or 0) for f in results)
        for key in (
            "missing",
            "type_errors",
            "out_of_range",
            "outliers",
            "infinite",
            "unseen_categories",
        )
    }
    seen = n_rows + schema_violations
    return QualityReport(
        n_rows=n_rows,
        features=tuple(results),
        schema_violations=schema_violations,
        schema_violation_rate=schema_violations / seen if seen else 0.0,
        totals=totals,
    )
