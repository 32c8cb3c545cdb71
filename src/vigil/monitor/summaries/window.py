"""Window summaries: everything the monitor measures, kept as mergeable sums and sketches.

One :class:`WindowSummary` covers the captured records of one series (model, version,
route) in one time bucket of ``grain_s`` seconds aligned on the epoch (an hour by
default). :func:`summarise` builds them in **one pass over Arrow record batches** (a
capture segment, a compacted Parquet part, a dataset scan), holding one batch and the
summaries at a time; a window of any length that is a whole number of buckets is the
:meth:`~WindowSummary.merge` of its buckets' summaries, in any grouping (see
:mod:`vigil.monitor.summaries.columns` for what stays exact and what keeps a bound).

Per summary: rows, requests, rejected requests and schema violations; a latency
histogram; per feature a :class:`~vigil.monitor.summaries.columns.NumericSummary` or
:class:`~vigil.monitor.summaries.columns.CategoricalSummary` plus the data-quality counts
of :mod:`vigil.monitor.quality`; the predictions and each class probability; and, once
labels are joined, the performance sums of :mod:`vigil.monitor.summaries.labels`.

Summaries built against a version's baseline are *anchored* (:class:`Anchors`): numeric
columns count exactly in the baseline's drift bins and against its quality thresholds,
categorical columns count its known labels exactly. :func:`dumps` / :func:`loads` store a
set of summaries as zlib-compressed JSON (no pickle), to keep beside a segment or part.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from vigil.capture.table import FEATURE_PREFIX, PROBA_PREFIX
from vigil.drift.summarised import bin_cuts
from vigil.monitor.measure import SCHEMA_VIOLATION_CODES, _label_key, labelled_rows
from vigil.monitor.quality import IQR_FACTOR, _type_errors
from vigil.monitor.summaries.columns import (
    CategoricalSummary,
    Histogram,
    NumericSummary,
)
from vigil.monitor.summaries.labels import (
    ClassificationSummary,
    PerformanceSummary,
    RegressionSummary,
    performance_from_dict,
)
from vigil.monitor.windows import SeriesKey
from vigil.profile_schema import CategoricalProfile, NumericProfile

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from vigil.monitor.baseline import Baseline

FORMAT = 1
"""Version of the stored form (:func:`dumps`)."""
DEFAULT_GRAIN_S = 3600
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FeatureAnchor:
    """What of the baseline a column's summary is counted against."""

    kind: Literal["numeric", "categorical"]
    cuts: tuple[float, ...] = ()
    """Inner edges of the drift bins (:mod:`vigil.drift.binning`)."""
    dtype: str = "float64"
    """The signature's dtype (type errors of :mod:`vigil.monitor.quality`)."""
    low: float | None = None
    high: float | None = None
    """The reference's range (out-of-range values)."""
    fence_low: float | None = None
    fence_high: float | None = None
    """The Tukey fences (outliers)."""
    known: tuple[str, ...] = ()
    """Labels counted exactly (the reference's and the signature's categories)."""


@dataclass(frozen=True)
class Anchors:
    """The anchors of one model version's summaries, from its :class:`Baseline`."""

    features: Mapping[str, FeatureAnchor]
    prediction: FeatureAnchor | None = None
    task: str = "other"
    classes: tuple[str, ...] = ()
    """Class keys (text) in ``predict_proba`` order, for classifiers."""


def _numeric_anchor(profile: NumericProfile | None, dtype: str) -> FeatureAnchor:
    if profile is None:
        return FeatureAnchor("numeric", dtype=dtype)
    fences: tuple[float | None, float | None] = (None, None)
    if len(profile.quantiles) == 101:
        q1, q3 = profile.quantiles[25], profile.quantiles[75]
        iqr = q3 - q1
        fences = (q1 - IQR_FACTOR * iqr, q3 + IQR_FACTOR * iqr)
    return FeatureAnchor(
        "numeric",
        cuts=bin_cuts(profile),
        dtype=dtype,
        low=profile.min,
        high=profile.max,
        fence_low=fences[0],
        fence_high=fences[1],
    )


def anchors_for(baseline: Baseline) -> Anchors:
    """The anchors of a version's summaries (see the module docstring)."""
    signature, profile = baseline.signature, baseline.profile
    features: dict[str, FeatureAnchor] = {}
    for name in signature.feature_names:
        spec = signature.feature(name)
        prof = profile.features.get(name) if profile is not None else None
        if spec.is_numeric:
            features[name] = _numeric_anchor(
                prof if isinstance(prof, NumericProfile) else None, spec.dtype
            )
        else:
            known = set(prof.frequencies) if isinstance(prof, CategoricalProfile) else set()
            known |= {str(c) for c in spec.categories or ()}
            features[name] = FeatureAnchor("categorical", known=tuple(sorted(known)))
    prediction: FeatureAnchor | None = None
    if profile is not None and profile.prediction is not None:
        pred = profile.prediction
        if isinstance(pred, NumericProfile):
            prediction = _numeric_anchor(pred, "float64")
        else:
            prediction = FeatureAnchor("categorical", known=tuple(sorted(pred.frequencies)))
    classes = signature.outputs.classes
    return Anchors(
        features=features,
        prediction=prediction,
        task=baseline.task,
        classes=tuple(_label_key(c) for c in classes) if classes else (),
    )


@dataclass
class QualityCounts:
    """The data-quality counts of one numeric feature (:mod:`vigil.monitor.quality`)."""

    missing: int = 0
    type_errors: int = 0
    infinite: int = 0
    out_of_range: int = 0
    outliers: int = 0

    def merge(self, other: QualityCounts) -> None:
        self.missing += other.missing
        self.type_errors += other.type_errors
        self.infinite += other.infinite
        self.out_of_range += other.out_of_range
        self.outliers += other.outliers


ColumnSummary = NumericSummary | CategoricalSummary


def _new_column(anchor: FeatureAnchor | None) -> ColumnSummary:
    if anchor is not None and anchor.kind == "categorical":
        return CategoricalSummary(anchor.known)
    return NumericSummary(anchor.cuts if anchor is not None else ())


def _column_from(data: dict[str, Any]) -> ColumnSummary:
    if data["kind"] == "categorical":
        return CategoricalSummary.from_dict(data)
    return NumericSummary.from_dict(data)


def _column_dict(summary: ColumnSummary) -> dict[str, Any]:
    kind = "categorical" if isinstance(summary, CategoricalSummary) else "numeric"
    return {"kind": kind, **summary.to_dict()}


@dataclass
class WindowSummary:
    """Mergeable summary of one series over ``[start, end)`` (see the module docstring)."""

    key: SeriesKey
    start: datetime
    end: datetime
    rows: int = 0
    """Answered rows (status below 400): what drift, quality and performance see."""
    requests: int = 0
    """Requests, answered and rejected."""
    rejected: int = 0
    schema_violations: int = 0
    labelled: int = 0
    latency: Histogram = field(default_factory=Histogram)
    features: dict[str, ColumnSummary] = field(default_factory=dict)
    quality: dict[str, QualityCounts] = field(default_factory=dict)
    prediction: ColumnSummary | None = None
    probabilities: dict[str, NumericSummary] = field(default_factory=dict)
    performance: PerformanceSummary | None = None

    def merge(self, other: WindowSummary) -> WindowSummary:
        """Add ``other`` (same series, any span) into this summary; returns it."""
        if other.key != self.key:
            raise ValueError(f"summaries of {self.key} and {other.key} do not merge")
        self.start, self.end = min(self.start, other.start), max(self.end, other.end)
        self.rows += other.rows
        self.requests += other.requests
        self.rejected += other.rejected
        self.schema_violations += other.schema_violations
        self.labelled += other.labelled
        self.latency.merge(other.latency)
        _merge_into(self.features, other.features)
        for name, counts in other.quality.items():
            self.quality.setdefault(name, QualityCounts()).merge(counts)
        if other.prediction is not None:
            if self.prediction is None:
                self.prediction = _copy(other.prediction)
            else:
                self.prediction.merge(other.prediction)  # type: ignore[arg-type]
        _merge_into(self.probabilities, other.probabilities)
        if other.performance is not None:
            if self.performance is None:
                self.performance = performance_from_dict(other.performance.to_dict())
            else:
                self.performance.merge(other.performance)  # type: ignore[arg-type]
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": [self.key.model, self.key.version, self.key.route],
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": self.rows,
            "requests": self.requests,
            "rejected": self.rejected,
            "schema_violations": self.schema_violations,
            "labelled": self.labelled,
            "latency": self.latency.to_dict(),
            "features": {n: _column_dict(s) for n, s in self.features.items()},
            "quality": {n: vars(q) for n, q in self.quality.items()},
            "prediction": None if self.prediction is None else _column_dict(self.prediction),
            "probabilities": {n: s.to_dict() for n, s in self.probabilities.items()},
            "performance": None if self.performance is None else self.performance.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowSummary:
        model, version, route = data["key"]
        return cls(
            key=SeriesKey(str(model), int(version), str(route)),
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            rows=int(data["rows"]),
            requests=int(data["requests"]),
            rejected=int(data["rejected"]),
            schema_violations=int(data["schema_violations"]),
            labelled=int(data["labelled"]),
            latency=Histogram.from_dict(data["latency"]),
            features={n: _column_from(d) for n, d in data["features"].items()},
            quality={n: QualityCounts(**q) for n, q in data["quality"].items()},
            prediction=None if data["prediction"] is None else _column_from(data["prediction"]),
            probabilities={
                n: NumericSummary.from_dict(d) for n, d in data["probabilities"].items()
            },
            performance=(
                None if data["performance"] is None else performance_from_dict(data["performance"])
            ),
        )


def _copy(summary: ColumnSummary) -> ColumnSummary:
    return _column_from(_column_dict(summary))


def _merge_into(ours: dict[str, Any], theirs: Mapping[str, Any]) -> None:
    for name, summary in theirs.items():
        if name in ours:
            ours[name].merge(summary)
        else:
            ours[name] = _copy(summary)


def merge_all(summaries: Iterable[WindowSummary]) -> WindowSummary | None:
    """One summary of several of the same series (None for none); inputs are unchanged."""
    out: WindowSummary | None = None
    for s in summaries:
        if out is None:
            out = WindowSummary.from_dict(s.to_dict())
        else:
            out.merge(s)
    return out


def dumps(summaries: Iterable[WindowSummary], *, grain_s: int = DEFAULT_GRAIN_S) -> bytes:
    """The stored form of a set of summaries: zlib-compressed JSON."""
    doc = {
        "format": FORMAT,
        "grain_s": grain_s,
        "summaries": [s.to_dict() for s in summaries],
    }
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 6)


def loads(data: bytes) -> list[WindowSummary]:
    """Summaries from :func:`dumps`'s bytes."""
    doc = json.loads(zlib.decompress(data))
    if doc.get("format") != FORMAT:
        raise ValueError(f"window summaries in format {doc.get('format')!r}; expected {FORMAT}")
    return [WindowSummary.from_dict(d) for d in doc["summaries"]]


# --- building ---------------------------------------------------------------------------

AnchorsFor = Callable[[str, int], "Anchors | None"]
"""``anchors_for(model, version)``: a version's anchors, or None to summarise unanchored."""


def _floats(column: pa.Array | None, n: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A column as float64 with NaN for missing and for values that are not numbers."""
    import pyarrow as pa  # PyArrow: only where summaries are built
    import pyarrow.compute as pc

    if column is None:
        return np.full(n, np.nan)
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return np.asarray(
            pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
        )
    if pa.types.is_boolean(column.type):
        return np.asarray(
            pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
        )
    import pandas as pd  # pandas: text parsed as numbers the way the exact path does

    return np.asarray(
        pd.to_numeric(pd.Series(column.to_pylist(), dtype=object), errors="coerce"),
        dtype=np.float64,
    )


def _raw(column: pa.Array | None, n: int) -> np.ndarray[Any, Any]:
    if column is None:
        return np.full(n, None, dtype=object)
    return np.asarray(column.to_numpy(zero_copy_only=False))


def _quality(raw: np.ndarray[Any, Any], anchor: FeatureAnchor) -> QualityCounts:
    import pandas as pd  # pandas: isna over any dtype, as the exact path does

    present = ~np.asarray(pd.isna(raw), dtype=bool)
    type_errors, values = _type_errors(raw, present, anchor.dtype)
    finite = values[np.isfinite(values)]
    counts = QualityCounts(
        missing=int(raw.size - present.sum()),
        type_errors=type_errors,
        infinite=int(np.isinf(values).sum()),
    )
    if anchor.low is not None and anchor.high is not None:
        counts.out_of_range = int(((finite < anchor.low) | (finite > anchor.high)).sum())
    if anchor.fence_low is not None and anchor.fence_high is not None:
        counts.outliers = int(((finite < anchor.fence_low) | (finite > anchor.fence_high)).sum())
    return counts


def _update_column(
    summary: ColumnSummary, column: pa.Array | None, n: int
) -> np.ndarray[Any, Any] | None:
    if isinstance(summary, CategoricalSummary):
        if column is None:
            summary.missing += n
        else:
            summary.update(column)
        return None
    values = _floats(column, n)
    summary.update(values)
    return values


class _Builder:
    def __init__(
        self,
        anchors_for: AnchorsFor,
        grain_s: int,
        labels: pd.DataFrame | None,
        features: Iterable[str] | None,
    ) -> None:
        self.anchors_for = anchors_for
        self.grain_s = grain_s
        self.labels = labels
        self.label_ids: pa.Array | None = None
        self.features = list(features) if features is not None else None
        self.anchors: dict[tuple[str, int], Anchors | None] = {}
        self.out: dict[tuple[SeriesKey, datetime], WindowSummary] = {}

    def anchors_of(self, key: SeriesKey) -> Anchors | None:
        ident = (key.model, key.version)
        if ident not in self.anchors:
            self.anchors[ident] = self.anchors_for(*ident)
        return self.anchors[ident]

    def summary(self, key: SeriesKey, bucket: int) -> WindowSummary:
        start = _EPOCH + timedelta(seconds=bucket * self.grain_s)
        found = self.out.get((key, start))
        if found is None:
            found = WindowSummary(key, start, start + timedelta(seconds=self.grain_s))
            self.out[(key, start)] = found
        return found

    def add(self, batch: pa.RecordBatch) -> None:
        import pyarrow as pa  # PyArrow: only where summaries are built
        import pyarrow.compute as pc

        if batch.num_rows == 0 or "version" not in batch.schema.names:
            return
        table = pa.Table.from_batches([batch])
        table = table.filter(pc.is_valid(table["version"]))
        if table.num_rows == 0:
            return
        micros = pc.cast(table["time"], pa.int64()).to_numpy(zero_copy_only=False)
        bucket = np.floor_divide(micros, self.grain_s * 1_000_000)
        route = (
            pc.fill_null(table["route"], "").to_numpy(zero_copy_only=False)
            if "route" in table.column_names
            else np.full(table.num_rows, "", dtype=object)
        )
        model = table["model"].to_numpy(zero_copy_only=False)
        version = table["version"].to_numpy(zero_copy_only=False)
        import pandas as pd  # pandas: grouping the batch's rows by series and bucket

        groups = (
            pd.DataFrame({"m": model, "v": version, "r": route, "b": bucket})
            .groupby(["m", "v", "r", "b"], sort=False)
            .indices
        )
        for group, index in groups.items():
            m, v, r, b = cast("tuple[Any, Any, Any, Any]", group)
            key = SeriesKey(str(m), int(v), str(r))
            part = table.take(pa.array(index)) if len(index) < table.num_rows else table
            self.add_part(self.summary(key, int(b)), self.anchors_of(key), part)

    def add_part(self, s: WindowSummary, anchors: Anchors | None, part: pa.Table) -> None:
        import pyarrow as pa  # PyArrow: only where summaries are built
        import pyarrow.compute as pc

        names = part.column_names
        n_all = part.num_rows
        status = (
            pc.fill_null(part["status"], 200).to_numpy(zero_copy_only=False)
            if "status" in names
            else np.full(n_all, 200)
        )
        first = (
            pc.fill_null(part["row"], 0).to_numpy(zero_copy_only=False) == 0
            if "row" in names
            else np.ones(n_all, dtype=bool)
        )
        bad = status >= 400
        s.requests += int(first.sum())
        s.rejected += int((first & bad).sum())
        if bad.any():
            codes = (
                part["error_code"].to_numpy(zero_copy_only=False)
                if "error_code" in names
                else np.full(n_all, None, dtype=object)
            )
            schema = np.isin(codes, list(SCHEMA_VIOLATION_CODES)) | (status == 422)
            s.schema_violations += int((first & bad & schema).sum())
            part = part.filter(pa.array(~bad))
        n = part.num_rows
        if n == 0:
            return
        names = part.column_names
        s.rows += n
        if "latency_ms" in names:
            s.latency.update(_floats(part["latency_ms"].combine_chunks(), n))
        feature_names = (
            list(anchors.features)
            if anchors is not None
            else [c[len(FEATURE_PREFIX) :] for c in names if c.startswith(FEATURE_PREFIX)]
        )
        if self.features is not None:
            feature_names = [f for f in feature_names if f in self.features]
        for name in feature_names:
            column = _column(part, FEATURE_PREFIX + name)
            anchor = anchors.features.get(name) if anchors is not None else None
            summary = s.features.get(name)
            if summary is None:
                summary = s.features[name] = _new_column(anchor)
            values = _update_column(summary, column, n)
            if anchor is not None and anchor.kind == "numeric":
                raw = values if column is not None and _is_number(column) else _raw(column, n)
                assert raw is not None
                s.quality.setdefault(name, QualityCounts()).merge(_quality(raw, anchor))
        if "prediction" in names:
            pred_anchor = anchors.prediction if anchors is not None else None
            if s.prediction is None:
                s.prediction = _new_column(pred_anchor)
            _update_column(s.prediction, _column(part, "prediction"), n)
        for c in names:
            if c.startswith(PROBA_PREFIX):
                name = c[len(PROBA_PREFIX) :]
                proba = s.probabilities.setdefault(name, NumericSummary())
                proba.update(_floats(_column(part, c), n))
        if self.labels is not None and anchors is not None and not self.labels.empty:
            self.add_labels(s, anchors, part)

    def add_labels(self, s: WindowSummary, anchors: Anchors, part: pa.Table) -> None:
        keep = [
            c
            for c in part.column_names
            if c in ("request_id", "row", "caller", "prediction") or c.startswith(PROBA_PREFIX)
        ]
        assert self.labels is not None
        # Only the feedback of this part's requests is joined: the cost stays per part.
        import pyarrow as pa  # PyArrow: a hash join of the ids, not pandas' object isin
        import pyarrow.compute as pc

        if self.label_ids is None:
            self.label_ids = pa.array(self.labels["request_id"].astype(str).to_numpy(object))
        hit = pc.is_in(self.label_ids, value_set=part["request_id"].combine_chunks())
        mine = self.labels[hit.to_numpy(zero_copy_only=False)]
        if mine.empty:
            return
        joined = labelled_rows(part.select(keep).to_pandas(), mine)
        if joined.empty:
            return
        s.labelled += len(joined)
        update_performance(s, anchors, joined)


def label_keys(values: pd.Series) -> list[str]:
    """:func:`~vigil.monitor.measure._label_key` of every value, computed once per
    distinct value (a window has millions of labels but a handful of classes)."""
    import pandas as pd  # pandas: factorising the labels

    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    keys = np.asarray([_label_key(u) for u in uniques], dtype=object)
    return list(keys[codes]) if len(codes) else []


def update_performance(s: WindowSummary, anchors: Anchors, joined: pd.DataFrame) -> None:
    """Add labelled rows (a ``label`` column beside the captured ones) to ``s``'s
    performance sums, reading them as :mod:`vigil.monitor.measure` does."""
    import pandas as pd  # pandas: the joined rows are a frame

    if anchors.task == "classification":
        keys = list(anchors.classes)
        y_true = label_keys(joined["label"])
        y_pred = label_keys(joined["prediction"])
        if not keys:
            keys = sorted(set(y_true) | set(y_pred))
        if s.performance is None:
            s.performance = ClassificationSummary(keys)
        assert isinstance(s.performance, ClassificationSummary)
        columns = [PROBA_PREFIX + k for k in s.performance.classes]
        proba = None
        if all(c in joined for c in columns):
            proba = joined[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        s.performance.update(y_true, y_pred, proba)
    elif anchors.task == "regression":
        if s.performance is None:
            s.performance = RegressionSummary()
        assert isinstance(s.performance, RegressionSummary)
        s.performance.update(
            pd.to_numeric(joined["label"], errors="coerce").to_numpy(np.float64),
            pd.to_numeric(joined["prediction"], errors="coerce").to_numpy(np.float64),
        )


def _column(part: pa.Table, name: str) -> pa.Array | None:
    if name not in part.column_names:
        return None
    return part[name].combine_chunks()


def _is_number(column: pa.Array) -> bool:
    import pyarrow as pa  # PyArrow: only where summaries are built

    return bool(pa.types.is_integer(column.type) or pa.types.is_floating(column.type))


def summarise(
    batches: Iterable[pa.RecordBatch],
    anchors_for: AnchorsFor = lambda model, version: None,
    *,
    grain_s: int = DEFAULT_GRAIN_S,
    labels: pd.DataFrame | None = None,
    features: Iterable[str] | None = None,
) -> list[WindowSummary]:
    """Summaries of captured records (capture columns, :mod:`vigil.capture.table`), one
    per series and time bucket, in one pass over ``batches``.

    ``labels`` (feedback with ``request_id``, ``row``, ``label``, optionally ``caller``)
    are joined to the answered rows for the performance sums; ``features`` limits the
    features summarised (default: the anchors' features, else every ``feature.*``
    column).
    """
    builder = _Builder(anchors_for, grain_s, labels, features)
    for batch in batches:
        builder.add(batch)
    return sorted(
        builder.out.values(), key=lambda s: (s.key.model, s.key.version, s.key.route, s.start)
    )
