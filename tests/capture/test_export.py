"""Streaming reads of the inference log: the scan prunes, projects and holds a few batches.

Parts are written straight in the capture format (Parquet under
``capture/model=<name>/date=<day>/``), as compaction leaves them. Memory is measured in
this process: the peak of Arrow's allocations (a proxy memory pool of its own, set as the
default for the export) plus the peak of Python's (tracemalloc, which NumPy reports to),
for an export of one part and of eight: the peak must not grow with the rows exported.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from vigil.capture.reader import read_capture
from vigil.capture.scan import scan_capture
from vigil.feedback.export import export_capture
from vigil.feedback.record import FeedbackRecord
from vigil.feedback.store import FeedbackStore
from vigil.storage.artifacts import ArtifactStore

DAY = datetime(2026, 3, 2, tzinfo=UTC)
PART_ROWS = 20_000
FEATURES = 24
BOUND = 24 * 2**20
"""What an export may hold at its peak, whatever it exports (8 parts are ~34 MB as Arrow)."""


def _part(store: ArtifactStore, model: str, day: datetime, k: int, n: int = PART_ROWS) -> None:
    rng = np.random.default_rng(k)
    hour = timedelta(hours=k % 24)
    times = day + hour + np.sort(rng.uniform(0, 3000, n)) * timedelta(seconds=1)
    columns = {
        "request_id": pc.binary_join_element_wise(
            f"{model}{k}-", pc.cast(pa.array(np.arange(n)), pa.string()), ""
        ),
        "row": pa.array(np.zeros(n, dtype=np.int64)),
        "time": pa.array(times, pa.timestamp("us", tz="UTC")),
        "model": pa.array([model] * n),
        "version": pa.array(np.ones(n, dtype=np.int64)),
        "status": pa.array(np.full(n, 200, dtype=np.int64)),
        "prediction": pa.array(rng.integers(0, 2, n)),
    }
    for j in range(FEATURES):
        columns[f"feature.x{j}"] = pa.array(rng.normal(size=n))
    key = f"capture/model={model}/date={day.date().isoformat()}/part-s{k:04d}.parquet"
    path = Path(store.resolve_key(key))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=8192)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ArtifactStore:
    """Eight parts of ``m`` on one day, one of ``other`` that day, one of ``m`` the next."""
    art = ArtifactStore(str(tmp_path_factory.mktemp("export") / "artifacts"))
    for k in range(8):
        _part(art, "m", DAY, k)
    _part(art, "other", DAY, 100, n=1000)
    _part(art, "m", DAY + timedelta(days=1), 200, n=1000)
    return art


def _peak(run: object) -> tuple[int, object]:
    """The peak bytes (Arrow's + Python's) while ``run()`` runs, and what it returned."""
    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    before = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        out = run()  # type: ignore[operator]
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(before)
    return pool.max_memory() + python_peak, out


def test_an_export_streams_with_memory_flat_in_its_rows(
    store: ArtifactStore, tmp_path: Path
) -> None:
    one_hour = DAY + timedelta(hours=1)
    small, one = _peak(
        lambda: export_capture(tmp_path / "one.parquet", "m", DAY, one_hour, store=store)
    )
    large, every = _peak(
        lambda: export_capture(
            tmp_path / "all.parquet", "m", DAY, DAY + timedelta(days=1), store=store
        )
    )
    assert (one.rows, every.rows) == (PART_ROWS, 8 * PART_ROWS)  # type: ignore[attr-defined]
    assert every.parts == 8  # type: ignore[attr-defined]  # the other model and day pruned
    exported = pq.read_table(tmp_path / "all.parquet")
    assert exported.nbytes > BOUND  # more than the bound: it was never held at once
    print(f"peak: {small / 2**20:.1f} MB for one part, {large / 2**20:.1f} MB for eight")
    assert large < BOUND, (small, large)
    assert large < 1.5 * small + 8 * 2**20, (small, large)  # flat, not 8x
    want = read_capture("m", DAY, DAY + timedelta(days=1), store=store)
    assert exported.num_rows == len(want)
    assert sorted(exported["request_id"].to_pylist()) == sorted(want["request_id"])
    assert float(np.sum(exported["feature.x3"])) == pytest.approx(float(want["feature.x3"].sum()))


def test_a_scan_prunes_projects_and_filters(store: ArtifactStore) -> None:
    since, until = DAY + timedelta(hours=2, minutes=10), DAY + timedelta(hours=2, minutes=20)
    scan = scan_capture("m", since, until, columns=["time", "feature.x0"], store=store)
    assert [Path(p).name for p in scan.parts] == [f"part-s{k:04d}.parquet" for k in range(8)]
    assert scan.schema.names == ["time", "feature.x0"]
    rows = pa.Table.from_batches(list(scan.batches()), schema=scan.schema)
    want = read_capture("m", since, until, store=store)
    assert rows.num_rows == len(want) > 0
    assert min(rows["time"].to_pylist()) >= since and max(rows["time"].to_pylist()) < until
    nothing = scan_capture("nobody", DAY, store=store)
    assert nothing.parts == [] and list(nothing.batches()) == []


def test_a_narrowed_scan_opens_only_the_parts_of_its_span(store: ArtifactStore) -> None:
    whole = scan_capture("m", DAY, DAY + timedelta(days=1), store=store)
    since, until = DAY + timedelta(hours=2, minutes=10), DAY + timedelta(hours=2, minutes=20)
    narrow = whole.narrowed(since, until, columns=["request_id", "time"])
    assert [Path(p).name for p in narrow.parts] == ["part-s0002.parquet"]  # hour 2 only
    assert narrow.schema.names == ["request_id", "time"]
    rows = pa.Table.from_batches(list(narrow.batches()), schema=narrow.schema)
    want = read_capture("m", since, until, store=store)
    assert sorted(rows["request_id"].to_pylist()) == sorted(want["request_id"]) != []
    assert whole.narrowed(DAY + timedelta(hours=9), DAY + timedelta(hours=10)).parts == []


@pytest.fixture
def feedback(store: ArtifactStore, tmp_path: Path) -> Iterator[FeedbackStore]:
    fb = FeedbackStore(tmp_path / "feedback")
    late = DAY + timedelta(days=2)
    fb.log.append(
        FeedbackRecord(f"m3-{i}", label=i % 2, time=late).to_dict() for i in range(0, 300, 3)
    )
    fb.log.append([FeedbackRecord("m3-0", label=1, time=late + timedelta(hours=1)).to_dict()])
    yield fb
    fb.close()


def test_an_export_with_labels_keeps_the_labelled_rows(
    store: ArtifactStore, feedback: FeedbackStore, tmp_path: Path
) -> None:
    done = export_capture(
        tmp_path / "train.parquet",
        "m",
        DAY,
        DAY + timedelta(days=1),
        columns=["feature.x0", "prediction"],
        feedback=feedback,
        store=store,
    )
    table = pq.read_table(tmp_path / "train.parquet")
    assert done.rows == table.num_rows == 100
    assert table.column_names == ["feature.x0", "prediction", "label", "reward", "feedback_time"]
    assert table["label"].to_pylist() == [i % 2 for i in range(0, 300, 3)]  # the first wins
