"""Build the baseline profile of reference data (see :mod:`vigil.profile_schema`).

The reference is read in chunks (a DataFrame is sliced; Parquet and CSV files are
streamed with Arrow), so memory stays bounded on large files:

* **Pass 1** (always): exact counts, missing values, infinities, min, max, mean and std
  (pairwise merge), exact category counts, the model's predictions, and two seeded
  uniform row samples (bottom-k, see :mod:`vigil.bundle._sampling`): the profile's
  ``sample`` (``sample_size`` rows) and, for quantiles, up to ``quantile_sample`` values
  of each numeric column.
* When the quantile sample holds every row (any DataFrame; files up to
  ``quantile_sample`` rows) quantiles, bin edges and all counts are **exact**: each
  column is sorted once and counted with ``searchsorted``.
* Otherwise quantiles and bin edges come from the ``quantile_sample`` values (a seeded
  uniform sample; the extremes are the exact min and max), and **pass 2** re-reads the
  file to count every value exactly into those bins and histogram buckets.

Statistics other than counts are over finite values; ``-inf``/``+inf`` land in the
first/last bin (the open tails of the schema's convention) and in ``infinite``. A
regressor's predictions are kept in memory (8 bytes a row) to profile them exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from vigil.bundle._sampling import BottomK, row_keys
from vigil.bundle.accumulators import Counts, Moments
from vigil.bundle.infer import check_columns, feature_type
from vigil.bundle.reference import Chunk, Reference, open_reference
from vigil.bundle.signature import NUMERIC_TYPES
from vigil.params import check_count
from vigil.profile_schema import (
    PREDICTION,
    BaselineProfile,
    CategoricalProfile,
    NumericProfile,
)

if TYPE_CHECKING:
    import pandas as pd

    from vigil.bundle.signature import Signature

ProgressFn = Callable[[int, int | None], None]
"""``progress(rows_done, rows_total)``; rows count once per pass, so with a second pass
the total is twice the rows; ``rows_total`` is None while a CSV's length is unknown."""
PredictFn = Callable[["pd.DataFrame"], Any]

QUANTILE_PROBS = np.linspace(0.0, 1.0, 101)
CATEGORY_CAP = 1000


@dataclass
class _Numeric:
    """One numeric column: moments in pass 1, then edges, then exact counts."""

    moments: Moments = field(default_factory=Moments)
    quantiles: npt.NDArray[np.float64] | None = None
    bin_edges: npt.NDArray[np.float64] | None = None
    hist_edges: npt.NDArray[np.float64] | None = None
    bin_counts: npt.NDArray[np.int64] | None = None
    hist_counts: npt.NDArray[np.int64] | None = None

    def plan(
        self, sample: npt.NDArray[np.float64], *, bins: int, hist_bins: int
    ) -> npt.NDArray[np.float64]:
        """Quantiles and edges from a sample of the column (all of it, when exact).

        Returns the sample's finite values, sorted (to count them when the sample is exact).
        """
        m = self.moments
        s = np.sort(sample[np.isfinite(sample)])
        if m.n == 0:
            return s
        q = np.quantile(s, np.concatenate([QUANTILE_PROBS, np.linspace(0.0, 1.0, bins + 1)]))
        # The extremes are exact whatever the sample: every value falls inside the edges.
        q[[0, 100, 101, -1]] = m.min, m.max, m.min, m.max
        self.quantiles = q[:101]
        edges = np.unique(q[101:])
        self.bin_edges = edges if len(edges) > 1 else np.repeat(edges, 2)
        self.hist_edges = np.histogram_bin_edges(s[:0], bins=hist_bins, range=(m.min, m.max))
        self.bin_counts = np.zeros(len(self.bin_edges) - 1, dtype=np.int64)
        self.hist_counts = np.zeros(hist_bins, dtype=np.int64)
        return s

    def count_sorted(self, s: npt.NDArray[np.float64]) -> None:
        """Add sorted finite values to the bin and histogram counts."""
        if self.bin_edges is None or self.hist_edges is None:
            return
        assert self.bin_counts is not None and self.hist_counts is not None
        self.bin_counts += _bucket_counts(s, self.bin_edges)
        self.hist_counts += _bucket_counts(s, self.hist_edges)

    def count(self, x: npt.NDArray[np.float64]) -> None:
        self.count_sorted(np.sort(x[np.isfinite(x)]))

    def result(self) -> NumericProfile:
        m = self.moments
        finite = m.n > 0
        bin_counts = self.bin_counts.copy() if self.bin_counts is not None else None
        if bin_counts is not None and len(bin_counts):
            bin_counts[0] += m.neg_inf
            bin_counts[-1] += m.pos_inf
        return NumericProfile(
            count=m.n + m.pos_inf + m.neg_inf,
            missing=m.missing,
            infinite=m.pos_inf + m.neg_inf,
            min=m.min if finite else None,
            max=m.max if finite else None,
            mean=m.mean if finite else None,
            std=m.std,
            quantiles=_floats(self.quantiles),
            bin_edges=_floats(self.bin_edges),
            bin_counts=[] if bin_counts is None else bin_counts.tolist(),
            hist_edges=_floats(self.hist_edges),
            hist_counts=[] if self.hist_counts is None else self.hist_counts.tolist(),
        )


def _bucket_counts(s: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]) -> Any:
    """Counts of sorted ``s`` in ``[e_i, e_i+1)`` buckets, the last closed on the right."""
    inner = np.searchsorted(s, edges[1:-1], side="left")
    return np.diff(np.concatenate([[0], inner, [len(s)]]))


def _floats(values: npt.NDArray[np.float64] | None) -> list[float]:
    return [] if values is None else [float(v) for v in values]


def _categorical_result(counts: Counts, cap: int) -> CategoricalProfile:
    ranked = sorted(counts.counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = dict(ranked[:cap])
    return CategoricalProfile(
        count=sum(counts.counts.values()),
        missing=counts.missing,
        frequencies=kept,
        other_count=sum(c for _, c in ranked[cap:]),
        n_unique=len(ranked),
    )


def _json_values(values: npt.NDArray[Any]) -> list[Any]:
    """Plain Python values, NaN and NA as None (JSON has no NaN)."""
    import pandas as pd

    out: list[Any] = values.tolist()
    return [None if v is None or (not isinstance(v, str) and pd.isna(v)) else v for v in out]


def build_profile(
    reference: pd.DataFrame | str | Path | Reference,
    signature: Signature,
    *,
    predict: PredictFn | None = None,
    target: str | None = None,
    bins: int = 10,
    hist_bins: int = 30,
    sample_size: int = 5000,
    seed: int = 0,
    chunk_rows: int = 200_000,
    quantile_sample: int = 1_000_000,
    prediction_sample: int = 200_000,
    category_cap: int = CATEGORY_CAP,
    progress: ProgressFn | None = None,
) -> BaselineProfile:
    """Profile the reference data's signature inputs, its target and the model's predictions.

    ``predict`` is called on each chunk (a DataFrame of the signature's inputs, in order);
    a classifier's predictions (``signature.outputs.task == "classification"``) are profiled
    as categories, anything else as numbers. ``quantile_sample`` bounds the values per
    numeric column held for quantiles (8 bytes each); see the module docstring for which
    figures are exact. ``prediction_sample`` bounds the rows the model predicts on: when
    the reference has more rows (and its length is known), the prediction distribution is
    estimated on a seeded uniform subsample of about that many rows (picked by the same
    row keys as the raw sample, so the sample's predictions come from it too) — running
    the model over every row would dominate registration for no gain in what the
    distribution tells.

    >>> import numpy as np, pandas as pd
    >>> from vigil.bundle.signature import FeatureSpec, Signature
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"x": rng.normal(size=1000), "c": rng.choice(["a", "b"], 1000)})
    >>> sig = Signature(inputs=[FeatureSpec(name="x", dtype="float64"),
    ...                         FeatureSpec(name="c", dtype="string")])
    >>> prof = build_profile(df, sig, sample_size=10)
    >>> prof.n_rows, sum(prof.features["x"].bin_counts), prof.features["c"].frequencies
    (1000, 1000, {'b': 523, 'a': 477})
    >>> bool(np.isclose(prof.features["x"].mean, df["x"].mean())), len(prof.sample["x"])
    (True, 10)
    """
    check_count("build_profile", "bins", bins, minimum=1)
    check_count("build_profile", "hist_bins", hist_bins, minimum=1)
    ref = (
        reference
        if isinstance(reference, Reference)
        else open_reference(reference, chunk_rows=chunk_rows)
    )
    names = signature.feature_names
    check_columns(names, ref.columns, what="signature")
    read = list(names)
    numeric = [n for n in names if signature.feature(n).is_numeric]
    categorical = [n for n in names if not signature.feature(n).is_numeric]
    target_kind = _target_kind(ref, signature, target)
    if target is not None:
        read.append(target)
        (numeric if target_kind == "numeric" else categorical).append(target)
    classify = signature.outputs.task == "classification"

    nums = {n: _Numeric() for n in numeric}
    cats = {n: Counts() for n in categorical}
    pred_num = _Numeric() if predict is not None and not classify else None
    pred_cat = Counts() if predict is not None and classify else None
    pred_values: list[npt.NDArray[np.float64]] = []
    exact_pool = BottomK(None if ref.in_memory else quantile_sample)
    sample_pool = BottomK(sample_size)
    total = ref.n_rows
    done = 0
    # Rows whose key falls under the threshold form a uniform subsample of the expected size.
    predict_all = predict is None or total is None or total <= prediction_sample
    key_limit = np.uint64(0)
    if not predict_all and total:
        key_limit = np.uint64(int(prediction_sample / total * 2.0**64))

    for chunk in ref.chunks(read):
        n = chunk.n_rows
        keys = row_keys(done, n, seed)
        values = {c: chunk.numeric(c) for c in numeric}
        for c, x in values.items():
            nums[c].moments.update(x)
        for c in categorical:
            cats[c].update(chunk.categorical(c))
        preds = None
        picked = None if predict_all else np.flatnonzero(keys < key_limit)
        if predict is not None:
            frame = chunk.frame(names)
            preds = np.asarray(predict(frame if picked is None else frame.iloc[picked])).ravel()
            if pred_cat is not None:
                pred_cat.update_array(preds)
            elif pred_num is not None:
                as_float = preds.astype(np.float64)
                pred_num.moments.update(as_float)
                pred_values.append(as_float)
        _offer(exact_pool, keys, values)
        _offer_sample(sample_pool, keys, chunk, read, preds, done, picked)
        done += n
        if progress is not None:
            progress(done, total)

    exact = exact_pool.complete
    pool = exact_pool.columns()
    for c, col in nums.items():
        s = col.plan(pool.get(c, np.empty(0)), bins=bins, hist_bins=hist_bins)
        if exact:
            col.count_sorted(s)
    if pred_num is not None:
        all_preds = np.concatenate(pred_values) if pred_values else np.empty(0)
        pred_num.count_sorted(pred_num.plan(all_preds, bins=bins, hist_bins=hist_bins))
    rows = done
    if not exact:
        for chunk in ref.chunks(numeric):
            for c in numeric:
                nums[c].count(chunk.numeric(c))
            done += chunk.n_rows
            if progress is not None:
                progress(done, 2 * rows)

    sample = sample_pool.columns()
    order = np.argsort(sample["__row__"]) if sample else np.empty(0, dtype=np.intp)
    features = {
        n: nums[n].result() if n in nums else _categorical_result(cats[n], category_cap)
        for n in names
    }
    target_profile: NumericProfile | CategoricalProfile | None = None
    if target is not None:
        target_profile = (
            nums[target].result()
            if target in nums
            else _categorical_result(cats[target], category_cap)
        )
    prediction: NumericProfile | CategoricalProfile | None = None
    if pred_num is not None:
        prediction = pred_num.result()
    elif pred_cat is not None:
        prediction = _categorical_result(pred_cat, category_cap)
    return BaselineProfile(
        n_rows=rows,
        features=features,
        prediction=prediction,
        target=target_profile,
        sample={c: _json_values(sample[c][order]) for c in read if c in sample},
        sample_predictions=_json_values(sample[PREDICTION][order]) if PREDICTION in sample else [],
        target_name=target,
        seed=seed,
    )


def _target_kind(
    ref: Reference, signature: Signature, target: str | None
) -> Literal["numeric", "categorical"]:
    if target is None:
        return "numeric"
    check_columns([target], ref.columns, what="target")
    if signature.outputs.task == "classification":
        return "categorical"
    kind = feature_type(target, ref.schema.field(target).type)
    return "numeric" if kind in NUMERIC_TYPES else "categorical"


def _offer(pool: BottomK, keys: npt.NDArray[np.uint64], values: dict[str, Any]) -> None:
    idx = pool.select(keys)
    if idx is None:
        pool.add(keys, values)
    elif len(idx):
        pool.add(keys[idx], {c: v[idx] for c, v in values.items()})


def _offer_sample(
    pool: BottomK,
    keys: npt.NDArray[np.uint64],
    chunk: Chunk,
    columns: list[str],
    preds: npt.NDArray[Any] | None,
    start: int,
    rows: npt.NDArray[np.intp] | None = None,
) -> None:
    """Offer a chunk's rows (or only ``rows``, the predicted subsample; ``preds`` is
    aligned with them) to the bounded sample."""
    offered = keys if rows is None else keys[rows]
    idx = pool.select(offered)
    if idx is None:
        idx = np.arange(len(offered))
    if not len(idx):
        return
    in_chunk = idx if rows is None else rows[idx]
    values = {c: chunk.raw(c, in_chunk) for c in columns}
    values["__row__"] = in_chunk + start
    if preds is not None:
        values[PREDICTION] = preds[idx]
    pool.add(offered[idx], values)
