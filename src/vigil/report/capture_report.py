"""Drift of a model's captured traffic against its baseline profile (``vigil report``).

The current side is the inference log: every *successful* prediction (2xx, no error) the
server captured for the model in a time window, one row per predicted row, its features
as columns. The reference side is the baseline profile stored with the version at
registration, so the reference data itself is not needed. Each profiled feature is
compared with :func:`vigil.drift.report.profile_column_drift` and the verdict is the same
Benjamini–Hochberg + share rule as :func:`vigil.drift.compare_to_profile` (the numbers are
identical); the model's outputs are compared with the profile's predictions beside the
verdict, not counted in it.

Which rows: all captured versions of the model by default (an alias may have moved
during the window; the inputs are the same population whichever version answered),
compared with the baseline of the version the URI names; ``version=N`` keeps only the
rows version ``N`` answered and uses ``N``'s baseline.

:func:`report_from_table` is the pure part (a capture table and a profile in, a
:class:`CaptureReport` out); :func:`capture_report` resolves the URI, fetches the
profile and reads the log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vigil.bundle.bundle import read_profile
from vigil.bundle.signature import Signature
from vigil.capture.table import PROBA_PREFIX
from vigil.drift import ColumnDrift, DriftReport
from vigil.drift.impact import FeatureImpact, rank_by_impact
from vigil.drift.report import build_report, profile_column_drift
from vigil.drift.target import prediction_drift_to_profile
from vigil.errors import NotFoundError
from vigil.monitor.baseline import stored_importance
from vigil.monitor.estimated import EstimatedMetric
from vigil.monitor.estimation import Estimator, estimate_window, version_estimator
from vigil.profile_schema import BaselineProfile, CategoricalProfile
from vigil.report.distributions import Distribution
from vigil.report.profile_distributions import against_profile
from vigil.report.window import describe_window
from vigil.uri import parse_model_ref

if TYPE_CHECKING:
    import pyarrow as pa

    from vigil.registry.registry import ModelVersion
    from vigil.services import Services

Progress = Callable[[int], None]
ProgressFactory = Callable[[str, int | None], Progress]
"""Given a label and the steps expected (None when unknown), a per-step callback."""

FEATURE_PREFIX = "feature."


@dataclass(frozen=True)
class CaptureReport:
    """Everything ``vigil report`` shows."""

    uri: str
    model: str
    baseline_version: int
    report: DriftReport
    reference_summary: dict[str, Distribution]
    current_summary: dict[str, Distribution]
    rows: int
    """Captured rows compared (successful predictions in the window)."""
    reference_rows: int
    rows_by_version: dict[int, int]
    since: datetime | None = None
    until: datetime | None = None
    first_time: datetime | None = None
    last_time: datetime | None = None
    prediction: ColumnDrift | None = None
    prediction_summary: tuple[Distribution, Distribution] | None = None
    not_compared: dict[str, str] = field(default_factory=dict)
    """Profiled features left out, with the reason (not captured, masked...)."""
    estimated: dict[str, EstimatedMetric] | None = None
    """Performance estimated before labels from the logged probabilities (classifiers
    registered with labelled reference data: :mod:`vigil.monitor.estimation`)."""
    estimated_reference: dict[str, float] = field(default_factory=dict)
    """The same metrics realised on the labelled reference sample."""
    fairness: dict[str, Any] | None = None
    """Fairness by group of the latest monitored window in the span (per attribute, as
    :meth:`vigil.stats.fairness.FairnessReport.to_dict`), when the model has sensitive
    attributes (``monitor.fairness``)."""
    fairness_window: str = ""
    """Which window ``fairness`` describes."""
    importance: dict[str, float] = field(default_factory=dict)
    """The baseline version's global importance (empty without one): ranks the drifted
    features by impact (:func:`vigil.drift.impact.rank_by_impact`)."""

    @property
    def drifted_by_impact(self) -> list[FeatureImpact]:
        """The drifted features, largest impact (effect size × importance share) first."""
        return [f for f in rank_by_impact(self.report.columns, self.importance) if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        """The report's numbers (``DriftReport.to_dict``) plus the window, rows and charts."""

        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t is not None else None

        return {
            **self.report.to_dict(),
            "uri": self.uri,
            "model": self.model,
            "baseline_version": self.baseline_version,
            "since": iso(self.since),
            "until": iso(self.until),
            "first_time": iso(self.first_time),
            "last_time": iso(self.last_time),
            "current_rows": self.rows,
            "reference_rows": self.reference_rows,
            "rows_by_version": {str(v): n for v, n in sorted(self.rows_by_version.items())},
            "prediction": self.prediction.to_dict() if self.prediction is not None else None,
            "not_compared": self.not_compared,
            "estimated": (
                {m: e.to_dict() for m, e in self.estimated.items()}
                if self.estimated is not None
                else None
            ),
            "estimated_reference": self.estimated_reference,
            "fairness": self.fairness,
            "fairness_window": self.fairness_window,
            "drifted_by_impact": [f.to_dict() for f in self.drifted_by_impact],
            "charts": {
                name: {"reference": ref.to_dict(), "current": self.current_summary[name].to_dict()}
                for name, ref in self.reference_summary.items()
            },
            "prediction_chart": (
                {
                    "reference": self.prediction_summary[0].to_dict(),
                    "current": self.prediction_summary[1].to_dict(),
                }
                if self.prediction_summary is not None
                else None
            ),
        }


def successful(table: pa.Table) -> pa.Table:
    """Only the rows of answered predictions: status 2xx and no error code."""
    # Arrow compute kernels: only where a table is filtered
    import pyarrow.compute as pc

    status = table["status"]
    keep = pc.and_(pc.greater_equal(status, 200), pc.less(status, 300))
    if "error_code" in table.column_names:
        keep = pc.and_(keep, pc.is_null(table["error_code"]))
    return table.filter(keep)


def numeric_values(column: pa.ChunkedArray) -> npt.NDArray[np.float64] | None:
    """A captured column as float64 (NaN for missing); None when it holds text that is not
    numbers (a masked or hashed feature)."""
    # PyArrow: only when a table is built
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        as_float = pc.cast(column, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    out: npt.NDArray[np.float64] = as_float.to_numpy()
    return out


def label_values(column: pa.ChunkedArray) -> Any:
    """A captured column as Python labels (``str(value)`` matches the profile's keys).

    Integers with gaps stay integers (``1`` not ``1.0``), as the profile counted them.
    """
    return column.to_pandas(integer_object_nulls=True)


def report_from_table(
    profile: BaselineProfile,
    table: pa.Table,
    *,
    uri: str,
    model: str,
    baseline_version: int,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: ProgressFactory | None = None,
    estimator: Estimator | None = None,
) -> CaptureReport:
    """Compare the captured rows in ``table`` (already filtered) with ``profile``; with
    ``estimator``, also estimate the classifier's performance before labels."""
    # Arrow compute kernels: only where a table is filtered
    import pyarrow.compute as pc

    current: dict[str, Any] = {}
    not_compared: dict[str, str] = {}
    for name, feature in profile.features.items():
        column_name = FEATURE_PREFIX + name
        if column_name not in table.column_names:
            not_compared[name] = "not in the capture log (dropped by masking, or never sent)"
            continue
        column = table[column_name]
        if isinstance(feature, CategoricalProfile):
            current[name] = label_values(column)
            continue
        values = numeric_values(column)
        if values is None:
            not_compared[name] = "captured as text, not numbers (masked or hashed?)"
        else:
            current[name] = values
    step = progress("comparing features", len(current)) if progress is not None else None
    results: list[ColumnDrift] = []
    ref_summary: dict[str, Distribution] = {}
    cur_summary: dict[str, Distribution] = {}
    for name, values in current.items():
        feature = profile.features[name]
        results.append(profile_column_drift(name, feature, values, sample=profile.sample.get(name)))
        ref_summary[name], cur_summary[name] = against_profile(feature, values)
        if step is not None:
            step(1)
    prediction = prediction_summary = None
    if profile.prediction is not None and "prediction" in table.column_names:
        column = table["prediction"]
        outputs = (
            label_values(column)
            if isinstance(profile.prediction, CategoricalProfile)
            else numeric_values(column)
        )
        if outputs is not None:
            prediction = prediction_drift_to_profile(
                profile.prediction, outputs, sample=profile.sample_predictions or None
            )
            prediction_summary = against_profile(profile.prediction, outputs)
    versions = pc.value_counts(table["version"])
    by_version = {
        int(v): int(n)
        for v, n in zip(
            versions.field("values").to_pylist(), versions.field("counts").to_pylist(), strict=True
        )
        if v is not None
    }
    times = pc.min_max(table["time"]).as_py() if table.num_rows else {}
    estimated = None
    if estimator is not None:
        wanted = ["prediction", *(PROBA_PREFIX + k for k in estimator.keys)]
        present = [c for c in wanted if c in table.column_names]
        estimated = estimate_window(table.select(present).to_pandas(), estimator, [])
    return CaptureReport(
        uri=uri,
        model=model,
        baseline_version=baseline_version,
        report=build_report(results),
        reference_summary=ref_summary,
        current_summary=cur_summary,
        rows=table.num_rows,
        reference_rows=profile.n_rows,
        rows_by_version=by_version,
        since=since,
        until=until,
        first_time=times.get("min"),
        last_time=times.get("max"),
        prediction=prediction,
        prediction_summary=prediction_summary,
        not_compared=not_compared,
        estimated=estimated,
        estimated_reference=dict(estimator.reference) if estimator is not None else {},
    )


def baseline_profile(app: Services, mv: ModelVersion) -> BaselineProfile:
    """The stored baseline profile of a version (its model is not loaded)."""
    path = app.registry.fetch_bundle(mv, app.cache_dir)
    profile = read_profile(path)
    if profile is None:
        raise NotFoundError(
            f"{mv.uri} has no baseline profile (it was registered without reference data); "
            "register a version with --reference DATA to monitor it",
            detail={"model": mv.name, "version": mv.version},
        )
    return profile


def capture_report(
    app: Services,
    uri: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    version: int | None = None,
    progress: ProgressFactory | None = None,
) -> CaptureReport:
    """Drift of the traffic captured for ``uri``'s model in ``[since, until)``.

    Raises :class:`~vigil.errors.NotFoundError` when the window holds no successful
    prediction, or when the version has no baseline profile.
    """
    # PyArrow: `vigil drift` imports this package too, and reads no capture log.
    import pyarrow as pa

    from vigil.capture.scan import scan_capture

    ref = parse_model_ref(uri)
    mv = (
        app.registry.get_version(ref.name, version)
        if version is not None
        else app.registry.resolve(ref)
    )
    shown = str(ref) if version is None else mv.uri
    profile = baseline_profile(app, mv)
    if progress is not None:
        progress(f"reading the capture log of {mv.name}", None)
    # Only the columns compared, of the answered rows, batch by batch: the span's request
    # bodies, ids and error texts are never held (partitions pruned by model and day).
    signature = Signature.model_validate(mv.signature)
    # The section draws shares on a 0-1 scale: classifiers only (not a regressor's DLE).
    classifier = signature.outputs.task == "classification"
    estimator = version_estimator(mv.sha256, signature, profile) if classifier else None
    wanted = ["time", "version", "status", "error_code", "prediction"]
    wanted += [FEATURE_PREFIX + name for name in profile.features]
    if estimator is not None:  # the logged probabilities, for performance before labels
        wanted += [PROBA_PREFIX + k for k in estimator.keys]
    scan = scan_capture(
        mv.name,
        since,
        until,
        version,
        columns=wanted,
        store=app.artifacts,
        log_dir=app.capture_dir,
    )
    kept = [successful(pa.Table.from_batches([b])) for b in scan.batches()]
    table = pa.concat_tables(kept) if kept else None
    if table is None or table.num_rows == 0:
        raise NotFoundError(
            f"no captured predictions for {shown} {describe_window(since, until)}; "
            "serve traffic or widen --since",
            detail={"model": mv.name, "version": version},
        )
    result = report_from_table(
        profile,
        table,
        uri=shown,
        model=mv.name,
        baseline_version=mv.version,
        since=since,
        until=until,
        progress=progress,
        estimator=estimator,
    )
    result = replace(result, importance=stored_importance(mv.manifest))
    # The monitoring store: only for a report of captured traffic (`vigil drift` needs none).
    from vigil.monitor.series import latest_fairness

    found = latest_fairness(app.database, mv.name, since=since, until=until)
    if found is None:
        return result
    where, fairness = found
    return replace(result, fairness=fairness, fairness_window=where)
