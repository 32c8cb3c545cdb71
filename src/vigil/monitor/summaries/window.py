"""Window summaries: everything the monitor measures, kept as mergeable sums and sketches.

One :class:`WindowSummary` covers the captured records of one series (model, version,
route) in one time bucket of ``grain_s`` seconds aligned on the epoch (an hour by
default). :func:`~vigil.monitor.summaries.build.summarise` builds them in **one pass over
Arrow record batches** (a capture segment, a compacted Parquet part, a dataset scan),
holding one batch and the summaries at a time; a window of any length that is a whole number of buckets is the
:meth:`~WindowSummary.merge` of its buckets' summaries, in any grouping (see
:mod:`vigil.monitor.summaries.columns` for what stays exact and what keeps a bound).

Per summary: rows, requests, rejected requests and schema violations; a latency
histogram; per feature a :class:`~vigil.monitor.summaries.columns.NumericSummary` or
:class:`~vigil.monitor.summaries.columns.CategoricalSummary` plus the data-quality counts
of :mod:`vigil.monitor.quality`; the predictions and each class probability; once
labels are joined, the performance sums of :mod:`vigil.monitor.summaries.labels`; and, for
a model with sensitive attributes, the per-group counts of
:mod:`vigil.monitor.summaries.groups`.

Summaries built against a version's baseline are *anchored* (:class:`Anchors`): numeric
columns count exactly in the baseline's drift bins and against its quality thresholds,
categorical columns count its known labels exactly. :func:`dumps` / :func:`loads` store a
set of summaries as JSON (no pickle), to keep beside a segment or part.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from vigil.drift.summarised import bin_cuts
from vigil.monitor.performance import label_key
from vigil.monitor.quality import IQR_FACTOR
from vigil.monitor.score_bins import ScoreBins
from vigil.monitor.summaries.columns import (
    CategoricalSummary,
    Histogram,
    NumericSummary,
)
from vigil.monitor.summaries.groups import GroupSummary
from vigil.monitor.summaries.labels import (
    PerformanceSummary,
    performance_from_dict,
)
from vigil.monitor.windows import SeriesKey
from vigil.profile_schema import CategoricalProfile, NumericProfile

if TYPE_CHECKING:
    from vigil.monitor.baseline import Baseline
    from vigil.monitor.fairness import ModelFairness

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
    fairness: ModelFairness | None = None
    """The model's sensitive attributes, when it has some and a positive class."""
    positive: str | None = None
    """The favourable outcome's label key (:func:`~vigil.monitor.group_fairness.positive_class`)."""


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
    positive: str | None = None
    if baseline.fairness is not None:
        # pandas: only for a model with sensitive attributes
        from vigil.monitor.group_fairness import positive_class

        positive = positive_class(baseline.fairness, list(classes) if classes else None)
    return Anchors(
        features=features,
        prediction=prediction,
        task=baseline.task,
        classes=tuple(label_key(c) for c in classes) if classes else (),
        fairness=baseline.fairness if positive is not None else None,
        positive=positive,
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
    scores: dict[str, ScoreBins] = field(default_factory=dict)
    """A binary classifier's rows by predicted class and bin of each class probability
    (what CBPE estimates a window of any size from: :mod:`~vigil.monitor.score_bins`)."""
    performance: PerformanceSummary | None = None
    groups: GroupSummary | None = None
    """Per sensitive attribute and group, the fairness counts (built by the pass that
    joins labels and feedback fields: :func:`~vigil.monitor.summaries.store.group_summaries`)."""

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
        for name, bins in other.scores.items():
            self.scores.setdefault(name, ScoreBins()).merge(bins)
        if other.performance is not None:
            if self.performance is None:
                self.performance = performance_from_dict(other.performance.to_dict())
            else:
                self.performance.merge(other.performance)  # type: ignore[arg-type]
        if other.groups is not None:
            if self.groups is None:
                self.groups = GroupSummary.from_dict(other.groups.to_dict())
            else:
                self.groups.merge(other.groups)
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
            "scores": {n: s.to_dict() for n, s in self.scores.items()},
            "performance": None if self.performance is None else self.performance.to_dict(),
            "groups": None if self.groups is None else self.groups.to_dict(),
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
            # Summaries stored before the score bins have none (no estimate beyond the
            # raw-row limit, as before).
            scores={n: ScoreBins.from_dict(d) for n, d in data.get("scores", {}).items()},
            performance=(
                None if data["performance"] is None else performance_from_dict(data["performance"])
            ),
            groups=(None if data.get("groups") is None else GroupSummary.from_dict(data["groups"])),
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
    """The stored form of a set of summaries: JSON (sketches as base64)."""
    doc = {
        "format": FORMAT,
        "grain_s": grain_s,
        "summaries": [s.to_dict() for s in summaries],
    }
    # Not compressed: the sketches (most of the bytes) hardly compress, and zlib took half
    # of a build (measured: 7 of 15 s for 300,000 rows at level 6, 2 s at level 1).
    return json.dumps(doc, separators=(",", ":")).encode()


def loads(data: bytes) -> list[WindowSummary]:
    """Summaries from :func:`dumps`'s bytes."""
    doc = json.loads(data)
    if doc.get("format") != FORMAT:
        raise ValueError(f"window summaries in format {doc.get('format')!r}; expected {FORMAT}")
    return [WindowSummary.from_dict(d) for d in doc["summaries"]]
