"""Window summaries: one pass over record batches, merges in any grouping, stored and read back.

Exact parts (counts, bucket counts, confusion counts, histograms) must agree exactly
whatever the grouping; moments up to rounding; quantiles within the KLL sketch's rank
error and category estimates within the frequent-items sketch's error.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.monitor._summaries import START, baseline, capture_table, features, labels_for

from vigil.monitor.summaries import anchors_for, dumps, loads, merge_all, summarise
from vigil.monitor.summaries.columns import CategoricalSummary, Histogram, NumericSummary
from vigil.monitor.summaries.labels import ClassificationSummary, RegressionSummary
from vigil.monitor.summaries.window import WindowSummary

SMALL_K = 16
"""A small KLL sketch compacts after a few dozen values, so merges really approximate."""


def _kll_error(k: int) -> float:
    import datasketches

    return float(datasketches.kll_doubles_sketch.get_normalized_rank_error(k, False))


def _groupings(items: list[Any], cuts: list[int], seed: int) -> list[list[list[Any]]]:
    """The same items grouped three ways: one by one, in the drawn runs, and shuffled."""
    runs = [items[a:b] for a, b in zip([0, *cuts], [*cuts, len(items)], strict=True)]
    shuffled = list(items)
    np.random.default_rng(seed).shuffle(shuffled)
    return [[[x] for x in items], [r for r in runs if r], [shuffled]]


def _chunks(n: int, cuts: list[int]) -> list[slice]:
    bounds = sorted({0, n, *(c % (n + 1) for c in cuts)})
    return [slice(a, b) for a, b in itertools.pairwise(bounds) if b > a]


values_strategy = st.lists(
    st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False),
        st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0]),
    ),
    min_size=1,
    max_size=400,
)


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(values_strategy, st.lists(st.integers(0, 400), max_size=8), st.integers(0, 99))
def test_numeric_merge_is_associative(values: list[float], cuts: list[int], seed: int) -> None:
    x = np.asarray(values, dtype=np.float64)
    edges = [-10.0, 0.0, 0.5, 1000.0]
    parts = []
    for part in _chunks(x.size, cuts):
        s = NumericSummary(edges, k=SMALL_K)
        s.update(x[part])
        parts.append(s)
    finite = np.sort(x[np.isfinite(x)])
    results = []
    for grouping in _groupings(parts, list(range(1, len(parts), 2)), seed):
        partial = []
        for group in grouping:
            acc = NumericSummary(edges, k=SMALL_K)
            for s in group:
                acc.merge(NumericSummary.from_dict(s.to_dict()))  # through the stored form
            partial.append(acc)
        total = NumericSummary(edges, k=SMALL_K)
        for acc in reversed(partial):
            total.merge(acc)
        results.append(total)
    for total in results:
        m = total.moments
        assert (m.n, m.missing, m.pos_inf, m.neg_inf) == (
            finite.size,
            int(np.isnan(x).sum()),
            int((x == np.inf).sum()),
            int((x == -np.inf).sum()),
        )
        expected = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=5)
        assert total.buckets.tolist() == expected.tolist()
        assert total.counts_between(np.asarray([0.0, 1000.0])).tolist() == [
            int((finite < 0).sum()),
            int(((finite >= 0) & (finite < 1000)).sum()),
            int((finite >= 1000).sum()),
        ]
        if finite.size:
            assert m.mean == pytest.approx(finite.mean(), rel=1e-9, abs=1e-6)
            assert (m.min, m.max) == (finite[0], finite[-1])
            if finite.size > 1:
                assert m.m2 == pytest.approx(np.var(finite) * finite.size, rel=1e-6, abs=1e-3)
            # Every quantile's true rank is within the sketch's error of the asked rank.
            ranks = np.linspace(0.0, 1.0, 11)
            q = total.quantiles(ranks)
            lo = np.searchsorted(finite, q, side="left") / finite.size
            hi = np.searchsorted(finite, q, side="right") / finite.size
            slack = 2 * _kll_error(SMALL_K)  # the bound holds at 99 %: room for the rest
            assert np.all((lo <= ranks + slack) & (hi >= ranks - slack)), (ranks, lo, hi)


@settings(max_examples=50, derandomize=True, database=None, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.sampled_from(list("abcdefghij"))), min_size=1, max_size=300),
    st.lists(st.integers(0, 300), max_size=6),
    st.integers(0, 99),
)
def test_categorical_merge_is_associative(
    values: list[str | None], cuts: list[int], seed: int
) -> None:
    truth = pd.Series(values, dtype=object).value_counts()
    parts = []
    for part in _chunks(len(values), cuts):
        s = CategoricalSummary(known=["a", "b"], cap=3)
        s.update(pa.array(values[part], pa.string()))
        parts.append(s)
    for grouping in _groupings(parts, list(range(1, len(parts), 2)), seed):
        total = CategoricalSummary(known=["a", "b"], cap=3)
        for group in grouping:
            acc = CategoricalSummary(known=["a", "b"], cap=3)
            for s in group:
                acc.merge(CategoricalSummary.from_dict(s.to_dict()))
            total.merge(acc)
        assert total.missing == sum(v is None for v in values)
        assert total.n == int(truth.sum())
        assert len(total.counts) <= 3 + 2  # the cap plus the known labels
        for label in ("a", "b"):  # the reference's labels are always exact
            assert total.counts.get(label, 0) == int(truth.get(label, 0))
        for label in "cdefghij":
            assert abs(total.estimate(label) - int(truth.get(label, 0))) <= total.overflow_error()


def test_a_hundred_thousand_categories_stay_within_the_cap() -> None:
    rng = np.random.default_rng(3)
    heavy = np.asarray(["hot"] * 50_000 + ["warm"] * 20_000, dtype=object)
    tail = np.asarray([f"id{i}" for i in range(100_000)], dtype=object)
    values = np.concatenate([tail, heavy])
    rng.shuffle(values)
    s = CategoricalSummary(cap=1000)
    for part in np.array_split(values, 17):
        s.update(pa.array(part))
    assert len(s.counts) == 1000 and s.n == 170_000
    assert s.overflow_error() <= 0.001 * 170_000
    for label, count in (("hot", 50_000), ("warm", 20_000), ("id7", 1)):
        assert abs(s.estimate(label) - count) <= s.overflow_error()
    assert {"hot", "warm"} <= set(s.counts) | set(s.overflow_items())
    assert len(dumps([])) < 100  # an empty set of summaries stays tiny


@settings(max_examples=40, derandomize=True, database=None, deadline=None)
@given(st.integers(1, 2000), st.lists(st.integers(0, 2000), max_size=6), st.integers(0, 99))
def test_performance_sums_merge_exactly(n: int, cuts: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    p1 = rng.random(n)
    proba = np.column_stack([1 - p1, p1])
    truth = np.where(rng.random(n) < p1, "1", "0")
    truth[: n // 50] = "2"  # a label outside the model's classes
    pred = np.where(p1 > 0.5, "1", "0")
    y, yhat = rng.normal(size=n), rng.normal(size=n)
    whole_c, whole_r = ClassificationSummary(["0", "1"]), RegressionSummary()
    whole_c.update(list(truth), list(pred), proba)
    whole_r.update(y, yhat)
    total_c, total_r = ClassificationSummary(["0", "1"]), RegressionSummary()
    for part in _chunks(n, cuts)[::-1]:
        c, r = ClassificationSummary(["0", "1"]), RegressionSummary()
        c.update(list(truth[part]), list(pred[part]), proba[part])
        r.update(y[part], yhat[part])
        total_c.merge(ClassificationSummary.from_dict(c.to_dict()))
        total_r.merge(RegressionSummary.from_dict(r.to_dict()))
    assert total_c.confusion == whole_c.confusion
    assert total_c.positives.tolist() == whole_c.positives.tolist()
    assert total_c.ece_count.tolist() == whole_c.ece_count.tolist()
    for got, want in (
        (total_c.metrics(), whole_c.metrics()),
        (total_r.metrics(), whole_r.metrics()),
    ):
        for name, value in want.items():
            assert got[name] == (None if value is None else pytest.approx(value, rel=1e-9)), name


def test_performance_sums_equal_scikit_learn() -> None:
    from sklearn import metrics as skm

    from vigil.monitor.performance import classification_metrics, regression_metrics

    rng = np.random.default_rng(8)
    n = 20_000
    proba = rng.dirichlet([2, 3, 1], n)
    classes = ["a", "b", "c"]
    truth = np.asarray([classes[rng.choice(3, p=p)] for p in proba])
    pred = np.asarray(classes)[proba.argmax(axis=1)]
    s = ClassificationSummary(classes)
    for part in np.array_split(np.arange(n), 7):
        s.update(list(truth[part]), list(pred[part]), proba[part])
    exact = classification_metrics(truth, pred, proba, classes=classes)
    got = s.metrics()
    for name in ("accuracy", "precision", "recall", "f1", "log_loss", "ece"):
        assert got[name] == pytest.approx(exact[name], rel=1e-9), name
    assert got["roc_auc"] is not None and exact["roc_auc"] is not None
    assert abs(got["roc_auc"] - exact["roc_auc"]) <= s.auc_error()
    assert s.auc_error() < 2e-4
    y = rng.gamma(2.0, 2.0, n)
    yhat = y + rng.normal(0, 1, n)
    r = RegressionSummary()
    for part in np.array_split(np.arange(n), 5):
        r.update(y[part], yhat[part])
    exact_r = regression_metrics(y, yhat)
    for name, value in r.metrics().items():
        assert value == pytest.approx(exact_r[name], rel=1e-9), name
    assert r.metrics()["r2"] == pytest.approx(skm.r2_score(y, yhat), rel=1e-9)


def test_latency_histogram_counts_every_value() -> None:
    h, parts = Histogram(), [Histogram(), Histogram()]
    x = np.random.default_rng(1).lognormal(1.0, 1.0, 5000)
    h.update(x)
    parts[0].update(x[:1234])
    parts[1].update(x[1234:])
    parts[0].merge(parts[1])
    assert parts[0].counts.tolist() == h.counts.tolist() and int(h.counts.sum()) == x.size
    p99 = h.quantile(0.99)
    assert p99 is not None and np.quantile(x, 0.99) <= p99 <= np.quantile(x, 0.99) * 1.19


def _table(n: int, seed: int, shifted: int = 0) -> tuple[pa.Table, pd.DataFrame]:
    table = capture_table(features(n, seed, numeric=4, categorical=2, shifted=shifted), seed)
    return table, labels_for(table, seed)


def test_one_pass_over_batches_in_any_size_and_bucket_gives_one_summary() -> None:
    ref = features(5000, 0, numeric=4, categorical=2)
    base = baseline(ref)
    anchors = anchors_for(base)
    table, labels = _table(30_000, 1, shifted=1)
    whole = summarise(table.to_batches(), lambda m, v: anchors, labels=labels)
    assert len(whole) == 1 and whole[0].start == START
    # Ten-minute buckets from 1,000-row batches, merged back into the hour.
    fine = summarise(
        table.to_batches(max_chunksize=1000), lambda m, v: anchors, labels=labels, grain_s=600
    )
    assert len(fine) == 5  # the rows span 50 minutes
    assert all(s.rows > 0 for s in fine)
    merged = merge_all(reversed(fine))
    assert merged is not None
    a, b = merged.to_dict(), whole[0].to_dict()
    for key in ("rows", "requests", "rejected", "schema_violations", "labelled", "quality"):
        assert a[key] == b[key], key
    assert merged.rows == 30_000 - 60 and merged.rejected == 60 and merged.requests == 30_000
    assert merged.schema_violations == 60 and merged.labelled == len(labels)
    assert merged.latency.counts.tolist() == whole[0].latency.counts.tolist()
    for name, col in merged.features.items():
        other = whole[0].features[name]
        if isinstance(col, NumericSummary):
            assert isinstance(other, NumericSummary)
            assert col.buckets.tolist() == other.buckets.tolist()
            assert col.moments.mean == pytest.approx(other.moments.mean, rel=1e-9)
        else:
            assert isinstance(col, CategoricalSummary) and isinstance(other, CategoricalSummary)
            assert col.counts == other.counts and col.missing == other.missing
    assert isinstance(merged.performance, ClassificationSummary)
    assert isinstance(whole[0].performance, ClassificationSummary)
    assert merged.performance.confusion == whole[0].performance.confusion
    # Stored and read back: the same summary.
    (again,) = loads(dumps([merged]))
    assert again.to_dict() == merged.to_dict()


def test_series_are_kept_apart_and_records_without_a_version_left_out() -> None:
    table, _ = _table(2000, 4)
    n = table.num_rows
    version = pa.array(np.where(np.arange(n) % 2 == 0, 1, 2))
    table = table.set_column(table.schema.get_field_index("version"), "version", version)
    no_version = table.slice(0, 10).set_column(
        table.schema.get_field_index("version"), "version", pa.nulls(10, pa.int64())
    )
    out = summarise([*table.to_batches(max_chunksize=300), *no_version.to_batches()])
    assert [(s.key.version, s.requests) for s in out] == [(1, 1000), (2, 1000)]
    # Without anchors every feature.* column is summarised, with nothing to count against.
    assert sorted(out[0].features) == ["c0", "c1", "x0", "x1", "x2", "x3"]
    assert out[0].quality == {} and out[0].performance is None


def test_merging_different_series_or_formats_is_refused() -> None:
    table, _ = _table(500, 5)
    (a,) = summarise(table.to_batches())
    b = WindowSummary.from_dict({**a.to_dict(), "key": ["other", 1, "native"]})
    with pytest.raises(ValueError, match="do not merge"):
        a.merge(b)
    with pytest.raises(ValueError, match="different cuts"):
        NumericSummary([0.0]).merge(NumericSummary([1.0]))
    with pytest.raises(ValueError, match="format"):
        import json

        loads(json.dumps({"format": 99, "summaries": []}).encode())
