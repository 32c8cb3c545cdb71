"""Building window summaries: one pass over Arrow record batches of captured records.

:func:`summarise` cuts each batch by series (model, version, route) and time bucket and
adds it to that bucket's :class:`~vigil.monitor.summaries.window.WindowSummary`: answered
rows to the column summaries and quality counts, rejected requests to the traffic counts,
and, given feedback, the labelled rows (joined by ``(request_id, row)`` as
:func:`~vigil.monitor.measure.labelled_rows` does) to the performance sums; asked for
them, the fairness counts per group (:mod:`vigil.monitor.summaries.groups`). Memory holds
one batch and the summaries, whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from vigil.capture.table import FEATURE_PREFIX, PROBA_PREFIX
from vigil.monitor.measure import SCHEMA_VIOLATION_CODES, labelled_rows
from vigil.monitor.performance import label_key
from vigil.monitor.quality import _type_errors
from vigil.monitor.score_bins import ScoreBins
from vigil.monitor.summaries.columns import CategoricalSummary, NumericSummary
from vigil.monitor.summaries.groups import GroupSummary
from vigil.monitor.summaries.labels import ClassificationSummary, RegressionSummary
from vigil.monitor.summaries.window import (
    _EPOCH,
    DEFAULT_GRAIN_S,
    Anchors,
    ColumnSummary,
    FeatureAnchor,
    QualityCounts,
    WindowSummary,
    _new_column,
)
from vigil.monitor.windows import SeriesKey

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


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
        groups_from: pd.DataFrame | None = None,
    ) -> None:
        self.anchors_for = anchors_for
        self.grain_s = grain_s
        self.labels = labels
        self.label_ids: pa.Array | None = None
        self.groups_from = groups_from
        self.group_ids: pa.Array | None = None
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
        columns = [c for c in names if c.startswith(PROBA_PREFIX)]
        for c in columns:
            name = c[len(PROBA_PREFIX) :]
            proba = s.probabilities.setdefault(name, NumericSummary())
            proba.update(_floats(_column(part, c), n))
        if len(columns) == 2 and "prediction" in names:  # binary: CBPE's score bins
            predicted = label_keys(part["prediction"].to_pandas())
            for c in columns:
                bins = s.scores.setdefault(c[len(PROBA_PREFIX) :], ScoreBins())
                bins.update(predicted, _floats(_column(part, c), n))
        if self.labels is not None and anchors is not None and not self.labels.empty:
            self.add_labels(s, anchors, part)
        if self.groups_from is not None and anchors is not None and anchors.fairness is not None:
            self.add_groups(s, anchors, part)

    def add_groups(self, s: WindowSummary, anchors: Anchors, part: pa.Table) -> None:
        """The fairness counts of the part's answered rows, grouped, labelled and joined
        to feedback fields exactly as :func:`~vigil.monitor.group_fairness.measure_fairness`
        does on raw rows."""
        import pyarrow as pa  # PyArrow: a hash join of the ids
        import pyarrow.compute as pc

        # pandas: the grouping and the joins of the raw path, on this part's rows
        from vigil.monitor.group_fairness import group_values, with_feedback_fields

        config, positive = anchors.fairness, anchors.positive
        assert config is not None and self.groups_from is not None
        if "prediction" not in part.column_names:
            return
        wanted = {a.column for a in config.attributes}
        keep = [
            c
            for c in part.column_names
            if c in ("request_id", "row", "caller", "prediction") or c in wanted
        ]
        rows = part.select(keep).to_pandas()
        given = self.groups_from
        if not given.empty:
            if self.group_ids is None:
                self.group_ids = pa.array(given["request_id"].astype(str).to_numpy(object))
            hit = pc.is_in(self.group_ids, value_set=part["request_id"].combine_chunks())
            given = given[hit.to_numpy(zero_copy_only=False)]
        rows = with_feedback_fields(rows, given, config)
        if s.groups is None:
            s.groups = GroupSummary()
        selected = [k == positive for k in label_keys(rows["prediction"])]
        present = [a for a in config.attributes if a.column in rows]
        for attribute in present:
            s.groups.update_rows(attribute.name, list(group_values(rows, attribute)), selected)
        if given.empty or "label" not in given:
            return
        labelled = labelled_rows(rows, given)
        if labelled.empty:
            return
        truth = [k == positive for k in label_keys(labelled["label"])]
        chosen = [k == positive for k in label_keys(labelled["prediction"])]
        for attribute in present:
            groups = list(group_values(labelled, attribute))
            s.groups.update_labelled(attribute.name, groups, chosen, truth)

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
    """:func:`~vigil.monitor.measure.label_key` of every value, computed once per
    distinct value (a window has millions of labels but a handful of classes)."""
    import pandas as pd  # pandas: factorising the labels

    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    keys = np.asarray([label_key(u) for u in uniques], dtype=object)
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
    groups_from: pd.DataFrame | None = None,
) -> list[WindowSummary]:
    """Summaries of captured records (capture columns, :mod:`vigil.capture.table`), one
    per series and time bucket, in one pass over ``batches``.

    ``labels`` (feedback with ``request_id``, ``row``, ``label``, optionally ``caller``)
    are joined to the answered rows for the performance sums; ``features`` limits the
    features summarised (default: the anchors' features, else every ``feature.*``
    column). Given ``groups_from`` (feedback, possibly empty), the summaries of versions
    anchored with sensitive attributes also count their groups, joining that feedback's
    labels and fields (:mod:`vigil.monitor.summaries.groups`).
    """
    builder = _Builder(anchors_for, grain_s, labels, features, groups_from)
    for batch in batches:
        builder.add(batch)
    return sorted(
        builder.out.values(), key=lambda s: (s.key.model, s.key.version, s.key.route, s.start)
    )
