"""The baseline profile against NumPy / pandas on the same seeded data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from vigil.bundle.bundle import build_bundle, load_bundle
from vigil.bundle.profile import build_profile
from vigil.bundle.signature import FeatureSpec, OutputSpec, Signature
from vigil.errors import ReferenceDataError

from .conftest import files_in


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    n = 3000
    x = rng.normal(5.0, 2.0, size=n)
    x[rng.choice(n, 150, replace=False)] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(0, 4, size=n),
            "city": pd.Series(
                rng.choice(["paris", "oslo", "rome", None], size=n, p=[0.5, 0.3, 0.15, 0.05]),
                dtype=object,
            ),
            "y": rng.integers(0, 2, size=n),
        }
    )


SIG = Signature(
    inputs=[
        FeatureSpec(name="x", dtype="float64"),
        FeatureSpec(name="k", dtype="int64"),
        FeatureSpec(name="city", dtype="string"),
    ],
    outputs=OutputSpec(task="classification", classes=[0, 1], has_proba=True),
)


def test_numeric_profile_matches_numpy(data: pd.DataFrame) -> None:
    prof = build_profile(data, SIG, target="y", bins=10, hist_bins=30, chunk_rows=700)
    x = data["x"].to_numpy()
    finite = x[~np.isnan(x)]
    p = prof.features["x"]
    assert (p.count, p.missing, p.infinite) == (2850, 150, 0)
    assert p.min == finite.min() and p.max == finite.max()
    np.testing.assert_allclose(p.mean, finite.mean(), rtol=1e-12)
    np.testing.assert_allclose(p.std, finite.std(ddof=1), rtol=1e-12)
    np.testing.assert_array_equal(p.quantiles, np.quantile(finite, np.linspace(0, 1, 101)))
    edges = np.quantile(finite, np.linspace(0, 1, 11))
    np.testing.assert_array_equal(p.bin_edges, edges)
    inner = np.searchsorted(edges[1:-1], finite, side="right")
    np.testing.assert_array_equal(p.bin_counts, np.bincount(inner, minlength=10))
    assert sum(p.bin_counts) == p.count
    hist, hist_edges = np.histogram(finite, bins=30)
    np.testing.assert_array_equal(p.hist_counts, hist)
    np.testing.assert_allclose(p.hist_edges, hist_edges, rtol=1e-15)

    k = prof.features["k"]
    # Four distinct values: deduplicated edges, still exact counts.
    assert k.bin_edges == [0.0, 1.0, 2.0, 3.0]
    counts = data["k"].value_counts().sort_index().to_numpy()
    assert k.bin_counts == [counts[0], counts[1], counts[2] + counts[3]]


def test_categorical_target_and_sample(data: pd.DataFrame) -> None:
    prof = build_profile(data, SIG, target="y", sample_size=200, seed=7, chunk_rows=1000)
    city = prof.features["city"]
    expected = data["city"].value_counts()
    assert city.frequencies == {str(k): int(v) for k, v in expected.items()}
    assert city.missing == int(data["city"].isna().sum())
    assert city.count + city.missing == len(data)
    assert city.n_unique == 3 and city.other_count == 0
    # The target of a classifier is profiled as categories.
    assert prof.target is not None and prof.target.kind == "categorical"
    assert prof.target.frequencies == {str(k): int(v) for k, v in data["y"].value_counts().items()}
    # The sample: 200 distinct rows, raw values, the same whatever the chunking.
    assert len(prof.sample["x"]) == 200
    again = build_profile(data, SIG, target="y", sample_size=200, seed=7, chunk_rows=333)
    assert again.sample == prof.sample
    other_seed = build_profile(data, SIG, target="y", sample_size=200, seed=8)
    assert other_seed.sample != prof.sample
    rows = data.reset_index(drop=True)
    merged = rows.merge(pd.DataFrame({"k": prof.sample["k"], "y": prof.sample["y"]}), how="inner")
    assert len(merged) >= 200
    assert set(prof.sample["city"]) <= {"paris", "oslo", "rome", None}


def test_category_cap(data: pd.DataFrame) -> None:
    prof = build_profile(data, SIG, category_cap=2)
    city = prof.features["city"]
    top = data["city"].value_counts()
    assert city.frequencies == {"paris": int(top["paris"]), "oslo": int(top["oslo"])}
    assert city.other_count == int(top["rome"])
    assert city.n_unique == 3


def test_infinities_go_to_the_tails() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, np.inf, -np.inf, np.nan]})
    sig = Signature(inputs=[FeatureSpec(name="x", dtype="float64")])
    p = build_profile(df, sig, bins=2).features["x"]
    assert (p.count, p.missing, p.infinite) == (6, 1, 2)
    assert (p.min, p.max, p.mean) == (1.0, 4.0, 2.5)
    assert p.bin_edges == [1.0, 2.5, 4.0]
    assert p.bin_counts == [3, 3]


def test_prediction_distribution(data: pd.DataFrame) -> None:
    X = data[["x", "k"]].fillna(0.0)
    clf = LogisticRegression().fit(X, data["y"])
    sig = Signature(
        inputs=SIG.inputs[:2], outputs=OutputSpec(task="classification", classes=[0, 1])
    )
    prof = build_profile(X, sig, predict=clf.predict, sample_size=50, chunk_rows=1000)
    labels = pd.Series(clf.predict(X)).value_counts()
    assert prof.prediction is not None and prof.prediction.kind == "categorical"
    assert prof.prediction.frequencies == {str(k): int(v) for k, v in labels.items()}
    assert len(prof.sample_predictions) == 50

    reg = LinearRegression().fit(X, data["x"].fillna(0.0))
    prof = build_profile(X, Signature(inputs=SIG.inputs[:2]), predict=reg.predict, chunk_rows=1000)
    preds = reg.predict(X)
    assert prof.prediction is not None and prof.prediction.kind == "numeric"
    np.testing.assert_allclose(prof.prediction.mean, preds.mean(), rtol=1e-12)
    np.testing.assert_array_equal(
        prof.prediction.quantiles, np.quantile(preds, np.linspace(0, 1, 101))
    )
    assert sum(prof.prediction.bin_counts) == len(preds)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_streamed_file_matches_in_memory(data: pd.DataFrame, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"ref.{fmt}"
    if fmt == "parquet":
        data.to_parquet(path, row_group_size=500)
    else:
        data.to_csv(path, index=False)
    seen: list[tuple[int, int | None]] = []
    streamed = build_profile(
        path, SIG, target="y", chunk_rows=400, progress=lambda d, t: seen.append((d, t))
    )
    memory = build_profile(data, SIG, target="y")
    assert streamed.n_rows == memory.n_rows == 3000
    assert len(seen) >= 3 and seen[-1][0] == 3000
    for name in ("x", "k", "city"):
        s, m = streamed.features[name].model_dump(), memory.features[name].model_dump()
        assert s.keys() == m.keys()
        for key in s:
            if key in ("mean", "std"):
                np.testing.assert_allclose(s[key], m[key], rtol=1e-12)
            else:
                assert s[key] == m[key], (name, key)
    assert streamed.sample == memory.sample  # row keys do not depend on chunking


def test_two_pass_counts_are_exact(data: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "ref.parquet"
    data.to_parquet(path)
    seen: list[tuple[int, int | None]] = []
    prof = build_profile(
        path, SIG, chunk_rows=500, quantile_sample=300, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[-1] == (6000, 6000)  # two passes over 3000 rows
    p = prof.features["x"]
    finite = data["x"].dropna().to_numpy()
    assert p.count == len(finite) and sum(p.bin_counts) == len(finite)
    assert (p.bin_edges[0], p.bin_edges[-1]) == (finite.min(), finite.max())
    # Edges from a 300-value sample; counts into those edges are exact.
    edges = np.asarray(p.bin_edges)
    inner = np.searchsorted(edges[1:-1], finite, side="right")
    np.testing.assert_array_equal(p.bin_counts, np.bincount(inner, minlength=len(edges) - 1))
    # Sample quantiles are close to the exact ones (each decile within 3 percentage points).
    ranks = np.searchsorted(np.sort(finite), edges[1:-1]) / len(finite)
    np.testing.assert_allclose(ranks, np.linspace(0.1, 0.9, 9), atol=0.03)
    hist, _ = np.histogram(finite, bins=30)
    np.testing.assert_array_equal(p.hist_counts, hist)


def test_bundle_stores_profile_and_sample(data: pd.DataFrame, tmp_path: Path) -> None:
    X = data[["x", "k", "city"]].assign(x=data["x"].fillna(0.0), city=data["city"].fillna("oslo"))
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["city"]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(X, data["y"])
    ref = X.assign(y=data["y"])
    manifest = build_bundle(model, tmp_path / "b", reference=ref, target="y", sample_size=100)
    assert files_in(tmp_path / "b") == [
        "model.skops",
        "profile.json",
        "reference_sample.parquet",
        "vigil.json",
    ]
    sig = manifest.signature
    assert [(f.name, f.dtype) for f in sig.inputs] == [
        ("x", "float64"),
        ("k", "int64"),
        ("city", "string"),
    ]
    assert sig.feature("city").categories == ["oslo", "paris", "rome"]
    assert manifest.reference is not None and manifest.reference.n_rows == 3000
    bundle = load_bundle(tmp_path / "b")
    assert bundle.profile is not None
    assert bundle.profile.target is not None
    assert len(bundle.profile.sample["city"]) == 100
    np.testing.assert_array_equal(
        bundle.profile.sample_predictions,
        model.predict(pd.DataFrame({c: bundle.profile.sample[c] for c in ["x", "k", "city"]})),
    )
    assert (tmp_path / "b" / "profile.json").stat().st_size < 20_000


def test_missing_reference_column_is_named(data: pd.DataFrame, tmp_path: Path) -> None:
    X = data[["x", "k"]].fillna(0.0)
    model = LogisticRegression().fit(X, data["y"])
    with pytest.raises(ReferenceDataError, match="lacks column\\(s\\) the model needs: k") as err:
        build_bundle(model, tmp_path / "b", reference=data[["x", "city"]])
    assert err.value.detail == {"missing": ["k"]}
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ReferenceDataError, match="target column 'label'"):
        build_bundle(model, tmp_path / "b", reference=X, target="label")
    assert list(tmp_path.iterdir()) == []


def test_prediction_distribution_is_estimated_on_a_bounded_uniform_subsample() -> None:
    import numpy as np
    import pandas as pd

    from vigil.bundle.profile import build_profile
    from vigil.bundle.signature import FeatureSpec, OutputSpec, Signature

    rng = np.random.default_rng(3)
    df = pd.DataFrame({"x": rng.normal(size=50_000)})
    sig = Signature(
        inputs=[FeatureSpec(name="x", dtype="float64")],
        outputs=OutputSpec(task="classification", dtype="int64", classes=[0, 1]),
    )
    calls: list[int] = []

    def predict(frame: pd.DataFrame) -> np.ndarray:
        calls.append(len(frame))
        return (frame["x"].to_numpy() > 0.5).astype(np.int64)

    full = build_profile(df, sig, predict=predict, chunk_rows=10_000)
    assert sum(calls) == 50_000  # under the bound: every row is predicted
    calls.clear()
    part = build_profile(
        df, sig, predict=predict, chunk_rows=10_000, prediction_sample=5_000, sample_size=500
    )
    assert 4_500 < sum(calls) < 5_500
    assert part.prediction is not None and full.prediction is not None
    assert sum(part.prediction.frequencies.values()) == sum(calls)
    share = part.prediction.frequencies["1"] / sum(calls)
    assert abs(share - float((df["x"] > 0.5).mean())) < 0.02
    # Raw sample rows carry the model's own predictions for those rows.
    xs, preds = np.asarray(part.sample["x"]), np.asarray(part.sample_predictions)
    assert len(xs) == 500
    np.testing.assert_array_equal(preds, (xs > 0.5).astype(np.int64))
    assert part.features["x"].count == 50_000  # feature profiles still use every row


def test_streaming_a_file_holds_about_one_row_group_in_arrow_memory(tmp_path: Path) -> None:
    """Reading a Parquet file must not keep the row groups already read (pyarrow's
    ``pre_buffer`` did): Arrow's allocations stay flat while the file is streamed, so a
    file 10× larger needs no more memory (see ``bench/profile_10m.py``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(8)
    path = tmp_path / "groups.parquet"
    names = [f"f{i}" for i in range(6)]
    with pq.ParquetWriter(path, pa.schema([(n, pa.float64()) for n in names])) as writer:
        for _ in range(40):  # 40 row groups of 20,000 rows: 0.96 MB of values each
            writer.write_table(pa.table({n: rng.normal(size=20_000) for n in names}))
    sig = Signature(inputs=[FeatureSpec(name=n, dtype="float64") for n in names])
    allocated: list[int] = []
    prof = build_profile(
        path,
        sig,
        chunk_rows=20_000,
        quantile_sample=50_000,  # fewer than the rows: the two-pass path
        progress=lambda done, total: allocated.append(pa.total_allocated_bytes()),
    )
    assert prof.n_rows == 800_000 and sum(prof.features["f0"].bin_counts) == 800_000
    group = 20_000 * 8 * len(names)
    # With pre-buffering, Arrow held every row group (38 MB) from the first chunk on.
    assert max(allocated) < 10 * group
