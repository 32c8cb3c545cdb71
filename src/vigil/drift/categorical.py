"""Drift statistics for categorical columns.

Counts are taken over the reference categories, one ``__unseen__`` bucket for categories
found only in the current data, and a missing-value bucket (see
:class:`~vigil.drift._column.CategoryCounts`). From those counts:

* :func:`chi_squared` — Pearson's chi-squared test of homogeneity on the 2×K contingency
  table (reference row, current row): exactly ``scipy.stats.chi2_contingency(table)``
  (SciPy's default Yates correction, which only acts on 2×2 tables) where the expected
  counts allow the asymptotic law, a permutation p-value otherwise
  (:func:`vigil.drift.binned.chi_squared_test`). Buckets empty on both sides are dropped
  first (they carry no information and SciPy rejects them).
* the distances of :mod:`vigil.drift.distances` (PSI, Jensen–Shannon, total variation).

>>> cc = count_categories(["a"] * 60 + ["b"] * 40, ["a"] * 30 + ["b"] * 50 + ["c"] * 20)
>>> res = chi_squared(*cc.with_missing())
>>> round(res.statistic, 3), round(res.p_value, 6)
(31.111, 0.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from vigil.drift._column import (
    MAX_LISTED_UNSEEN,
    UNSEEN,
    CategoryCounts,
    _codes,
    count_categories,
)
from vigil.drift.binned import chi_squared_test
from vigil.drift.numeric import TestResult
from vigil.profile_schema import CategoricalProfile

__all__ = ["OTHER", "chi_squared", "count_against_profile", "count_categories"]

OTHER = "__other__"
"""Label of the profile's bucket of categories left out by its frequency cap."""


def chi_squared(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> TestResult:
    """Chi-squared test that both count vectors come from one categorical distribution."""
    return chi_squared_test(reference_counts, current_counts)[0]


def count_against_profile(profile: CategoricalProfile, current: Any) -> CategoryCounts:
    """Count ``current`` over the categories stored in a baseline profile.

    When the profile capped its frequency table (``other_count > 0``) a current category
    missing from the table may be one of the capped ones, so such values go to an
    ``__other__`` bucket beside the profile's ``other_count``; without a cap they are
    unseen and go to ``__unseen__``.
    """
    labels = list(profile.frequencies)
    position = {label: i for i, label in enumerate(labels)}
    capped = profile.other_count > 0
    ref = [profile.frequencies[label] for label in labels]
    if capped:
        labels.append(OTHER)
        ref.append(profile.other_count)
    overflow = len(labels)
    labels.append(UNSEEN)
    ref.append(0)

    codes, uniques = _codes(current)
    local = np.bincount(codes[codes >= 0], minlength=len(uniques))
    cur = np.zeros(len(labels), dtype=np.int64)
    unseen: list[str] = []
    unseen_counts: list[int] = []
    for value, count in zip(uniques, local, strict=True):
        label = str(value)
        i = position.get(label)
        if i is not None:
            cur[i] += count
        elif capped:
            cur[overflow - 1] += count
        else:
            cur[overflow] += count
            unseen_counts.append(int(count))
            if count and len(unseen) < MAX_LISTED_UNSEEN:
                unseen.append(label)
    return CategoryCounts(
        labels=labels,
        reference=np.asarray(ref, dtype=np.int64),
        current=cur,
        reference_missing=profile.missing,
        current_missing=int((codes < 0).sum()),
        unseen_categories=unseen,
        unseen_counts=np.asarray(unseen_counts, dtype=np.int64),
    )
