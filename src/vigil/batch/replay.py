"""Replay: score a model on the traffic another model actually received.

The inference log holds every answered request's features and the prediction served; the
feedback store holds the labels that came back. Replaying a candidate over a window of that
log answers what a holdout cannot: how it would have done on *this* service's traffic —
its metrics on the labelled rows next to what was served, how often it agrees with what
was served, and whether its predictions are distributed differently.

The log is streamed (:func:`vigil.capture.scan.scan_capture`: only the columns the
models need, in record batches of ``CHUNK_ROWS``), day by day for the progress shown, so
memory holds a few batches of features plus a few numbers per row replayed (the answers
compared at the end), never a day's or the lookback's features. Rows the candidate cannot take (a feature it
needs is missing or of the wrong type) are counted, not fatal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.batch.inputs import Chunk, ChunkValidator
from vigil.batch.labels import as_classes
from vigil.errors import InvalidParameterError, ValidationError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from vigil.bundle.model import LoadedBundle
    from vigil.storage.artifacts import ArtifactStore

CHUNK_ROWS = 65_536
FEATURE_PREFIX = "feature."
_KEYS = ("request_id", "row", "caller")
"""The columns that join a captured row with its label."""


@dataclass(frozen=True)
class ModelResult:
    """One model's answers on the replayed rows: metrics on the labelled ones."""

    name: str
    metrics: dict[str, float | None]


@dataclass(frozen=True)
class ReplayReport:
    """What replaying a model over a window of captured traffic showed."""

    model: str
    since: datetime
    until: datetime
    rows: int
    """Answered rows of the window (successful predictions)."""
    replayed: int
    rejected: int
    """Rows the candidate could not take (its validator refused them)."""
    labelled: int
    task: str
    results: list[ModelResult]
    """The candidate, what was served, and ``against`` when given: metrics on labelled rows."""
    agreement: dict[str, float | None] = field(default_factory=dict)
    """Share of rows where the candidate's prediction equals each other's (classification),
    or the mean absolute difference (regression)."""
    prediction_drift: dict[str, Any] | None = None
    """The candidate's predictions compared with the served ones (``vigil.drift``)."""
    rejections: list[str] = field(default_factory=list)
    """The first few reasons rows were refused."""

    def to_dict(self) -> dict[str, Any]:
        from vigil.stats.results import jsonable

        out: dict[str, Any] = jsonable(self)
        out["since"], out["until"] = self.since.isoformat(), self.until.isoformat()
        return out


@dataclass
class _Collected:
    served: list[np.ndarray] = field(default_factory=list)
    candidate: list[np.ndarray] = field(default_factory=list)
    against: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    labelled_at: list[np.ndarray] = field(default_factory=list)
    rows: int = 0
    rejected: int = 0
    rejections: list[str] = field(default_factory=list)


def _days(since: datetime, until: datetime) -> Iterator[tuple[datetime, datetime]]:
    start = since
    while start < until:
        midnight = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=1)
        end = min(midnight, until)
        yield start, end
        start = end


def _features(table: pa.Table, names: list[str]) -> pa.Table:
    """The candidate's features from captured rows, under their own names (a feature the
    log does not hold is a column of nulls, which the validator then names)."""
    import pyarrow as pa

    columns = []
    for name in names:
        key = FEATURE_PREFIX + name
        columns.append(table[key] if key in table.column_names else pa.nulls(table.num_rows))
    return pa.table(columns, names=names)


def _predict_valid(
    model: LoadedBundle, check: ChunkValidator, table: pa.Table, collected: _Collected
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions for the rows ``model`` accepts, and which rows those are."""
    try:
        prepared = check.prepare(Chunk(offset=0, table=table))
        return np.asarray(model.predict(prepared.X)).ravel(), np.arange(table.num_rows)
    except ValidationError:
        pass
    # A refused row in the chunk: find the others one by one (rare, so simple).
    keep: list[int] = []
    for i in range(table.num_rows):
        try:
            check.prepare(Chunk(offset=i, table=table.slice(i, 1)))
        except ValidationError as exc:
            collected.rejected += 1
            if len(collected.rejections) < 5:
                collected.rejections.append(exc.message)
        else:
            keep.append(i)
    if not keep:
        return np.array([]), np.array([], dtype=np.int64)
    rows = np.array(keep)
    prepared = check.prepare(Chunk(offset=0, table=table.take(rows)))
    return np.asarray(model.predict(prepared.X)).ravel(), rows


def _labels(frame: pd.DataFrame, feedback: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in ``frame``) of rows that have a label, and the labels."""
    from vigil.feedback.join import join_feedback

    joined = join_feedback(frame.assign(_at=np.arange(len(frame))), feedback)
    joined = joined[joined["label"].notna()]
    return joined["_at"].to_numpy(dtype=np.int64), joined["label"].to_numpy()


def replay(
    candidate: LoadedBundle,
    *,
    model: str,
    since: datetime,
    until: datetime,
    feedback: pd.DataFrame,
    store: ArtifactStore | None,
    log_dir: str | Path | None,
    against: LoadedBundle | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Score ``candidate`` (and ``against``) on ``model``'s answered requests in
    ``[since, until)`` and compare with what was served and the labels that came back."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from vigil.capture.scan import scan_capture

    if until <= since:
        raise InvalidParameterError("the replay window is empty: --since must be before --until")
    names = [f.name for f in candidate.signature.inputs]
    check = ChunkValidator(candidate.signature, source="the inference log")
    other_check = ChunkValidator(against.signature) if against is not None else None
    collected = _Collected()
    wanted = {*names, *(f.name for f in against.signature.inputs)} if against else set(names)
    columns = [*_KEYS, "status", "prediction", *(FEATURE_PREFIX + n for n in sorted(wanted))]
    days = list(_days(since, until))
    for done, (start, end) in enumerate(days, 1):
        scan = scan_capture(
            model, start, end, columns=columns, store=store, log_dir=log_dir, batch_rows=CHUNK_ROWS
        )
        for batch in scan.batches():
            chunk = pa.Table.from_batches([batch])
            chunk = chunk.filter(pc.less(chunk["status"], 400))
            if chunk.num_rows:
                _replay_chunk(
                    chunk, names, (candidate, check), (against, other_check), feedback, collected
                )
        if progress is not None:
            progress(done, len(days))
    return _report(candidate, against, model, since, until, collected)


def _replay_chunk(
    chunk: pa.Table,
    names: list[str],
    mine: tuple[LoadedBundle, ChunkValidator],
    theirs: tuple[LoadedBundle | None, ChunkValidator | None],
    feedback: pd.DataFrame,
    collected: _Collected,
) -> None:
    collected.rows += chunk.num_rows
    features = _features(chunk, names)
    predicted, rows = _predict_valid(mine[0], mine[1], features, collected)
    if len(rows) == 0:
        return
    kept = chunk.take(rows)
    collected.candidate.append(predicted)
    collected.served.append(kept["prediction"].to_numpy(zero_copy_only=False))
    if theirs[0] is not None and theirs[1] is not None:
        other = _features(kept, [f.name for f in theirs[0].signature.inputs])
        prepared = theirs[1].prepare(Chunk(offset=0, table=other))
        collected.against.append(np.asarray(theirs[0].predict(prepared.X)).ravel())
    ids = kept.select([c for c in _KEYS if c in kept.column_names])
    at, labels = _labels(ids.to_pandas(), feedback)
    base = sum(len(a) for a in collected.candidate[:-1])
    collected.labelled_at.append(at + base)
    collected.labels.append(labels)


def _report(
    candidate: LoadedBundle,
    against: LoadedBundle | None,
    model: str,
    since: datetime,
    until: datetime,
    c: _Collected,
) -> ReplayReport:
    from vigil.monitor.performance import classification_metrics, regression_metrics

    task = candidate.signature.outputs.task
    classes = candidate.signature.outputs.classes
    served = np.concatenate(c.served) if c.served else np.array([])
    mine = np.concatenate(c.candidate) if c.candidate else np.array([])
    other = np.concatenate(c.against) if c.against else None
    at = np.concatenate(c.labelled_at) if c.labelled_at else np.array([], dtype=np.int64)
    labels = np.concatenate(c.labels) if c.labels else np.array([])
    answers = {"candidate": mine, "served": served}
    if other is not None:
        answers["against"] = other
    results = []
    for name, predicted in answers.items():
        if task == "regression":
            metrics = regression_metrics(labels.astype(float), predicted[at].astype(float))
        else:
            y = as_classes(labels, classes)
            metrics = classification_metrics(y, as_classes(predicted[at], classes), classes=classes)
        results.append(ModelResult(name, metrics))
    agreement: dict[str, float | None] = {}
    for name in ("served", "against"):
        if name not in answers or len(mine) == 0:
            continue
        if task == "regression":
            agreement[name] = float(
                np.mean(np.abs(mine.astype(float) - answers[name].astype(float)))
            )
        else:
            agreement[name] = float(
                np.mean(as_classes(mine, classes) == as_classes(answers[name], classes))
            )
    drift = None
    if len(mine) >= 2:
        import pandas as pd

        from vigil.drift import compare

        categorical = ["prediction"] if task != "regression" else []
        report = compare(
            pd.DataFrame({"prediction": served}),
            pd.DataFrame({"prediction": mine}),
            categorical=categorical,
        )
        drift = report.columns[0].to_dict()
    return ReplayReport(
        model=model,
        since=since,
        until=until,
        rows=c.rows,
        replayed=len(mine),
        rejected=c.rejected,
        labelled=len(at),
        task=task,
        results=results,
        agreement=agreement,
        prediction_drift=drift,
        rejections=c.rejections,
    )
