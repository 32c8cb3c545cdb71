"""Summaries stored beside real compacted parts: built once, read in batches, never twice counted.

A real segment log is compacted into a real (local) artifact store; the summaries read
back must equal the monitor's exact path on the rows :func:`read_capture` returns.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.monitor._summaries import START, baseline, features, score

from vigil.capture.compact import compact
from vigil.capture.log import SegmentLog
from vigil.capture.reader import read_capture
from vigil.monitor.baseline import Baseline
from vigil.monitor.measure import measure_window
from vigil.monitor.summaries import anchors_for, merge_all, store
from vigil.monitor.summaries.judge import measure_summary
from vigil.monitor.windows import SeriesKey, Window, parse_window
from vigil.storage.artifacts import ArtifactStore

ROWS = 4000


def _records(frame: pd.DataFrame, seed: int, hours: float) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    p = score(frame)
    offsets = np.sort(rng.uniform(0, hours * 3600, len(frame)))
    out = []
    for i, (row, prob, off) in enumerate(zip(frame.to_dict("records"), p, offsets, strict=True)):
        out.append(
            {
                "request_id": f"r{seed}-{i:06d}",
                "row": 0,
                "time": (START + timedelta(seconds=float(off))).isoformat(),
                "route": "native",
                "model": "m",
                "version": 1,
                "features": {
                    k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()
                },
                "prediction": int(prob > 0.5),
                "probabilities": {"0": float(1 - prob), "1": float(prob)},
                "latency_ms": float(rng.lognormal(1.0, 0.5)),
                "status": 200,
            }
        )
    return out


@pytest.fixture(scope="module")
def base() -> Baseline:
    return baseline(features(20_000, 0, numeric=4, categorical=2))


@pytest.fixture
def captured(tmp_path: Path) -> tuple[ArtifactStore, Path, pd.DataFrame]:
    """Two compacted segments spanning two hours, and one segment left uncompacted."""
    frame = features(ROWS, 1, numeric=4, categorical=2, shifted=1)
    records = _records(frame, 1, hours=2.0)
    log_dir = tmp_path / "log"
    log = SegmentLog(log_dir)
    art = ArtifactStore(str(tmp_path / "store"))
    half = ROWS // 2
    for chunk in (records[:half], records[half : ROWS - 500]):
        log.append(chunk)
        log.rotate()
        compact(log, art)
    log.append(records[ROWS - 500 :])  # still live: summarised on each read, never stored
    return art, log_dir, frame


def _all(art: ArtifactStore, log_dir: Path, base: Baseline) -> list[store.WindowSummary]:
    anchors = anchors_for(base)
    return list(store.bucket_summaries(art, lambda m, v: anchors, model="m", log_dir=log_dir))


def test_summaries_are_built_once_and_stored_beside_the_parts(
    captured: tuple[ArtifactStore, Path, pd.DataFrame], base: Baseline, monkeypatch: Any
) -> None:
    art, log_dir, _frame = captured
    first = _all(art, log_dir, base)
    stored = sorted(p.name for p in (Path(art.root) / "summaries").rglob("*.summary"))
    assert len(stored) == 2 and all(name.endswith(".g3600.summary") for name in stored)
    assert sum(s.rows for s in first) == ROWS
    # The stored ones are read back, not rebuilt: only the live segment is summarised.
    calls: list[int] = []
    real = store.summarise

    def counting(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(store, "summarise", counting)
    again = _all(art, log_dir, base)
    assert len(calls) == 1
    assert sorted(s.to_dict()["rows"] for s in again) == sorted(s.rows for s in first)


def test_a_crash_while_storing_leaves_nothing_and_the_next_read_completes(
    captured: tuple[ArtifactStore, Path, pd.DataFrame], base: Baseline, monkeypatch: Any
) -> None:
    art, log_dir, _frame = captured
    writes: list[str] = []
    real_write = ArtifactStore.write_bytes

    def crash_on_second(self: ArtifactStore, key: str, data: bytes) -> None:
        writes.append(key)
        if len(writes) == 2:
            raise KeyboardInterrupt  # killed between the two parts' summaries
        real_write(self, key, data)

    monkeypatch.setattr(ArtifactStore, "write_bytes", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        _all(art, log_dir, base)
    monkeypatch.setattr(ArtifactStore, "write_bytes", real_write)
    assert len(list((Path(art.root) / "summaries").rglob("*.summary"))) == 1
    assert not list((Path(art.root) / "summaries").rglob(".tmp-*"))
    done = _all(art, log_dir, base)
    assert len(list((Path(art.root) / "summaries").rglob("*.summary"))) == 2
    assert sum(s.rows for s in done) == ROWS


def test_a_segment_whose_part_exists_is_not_counted_twice(
    captured: tuple[ArtifactStore, Path, pd.DataFrame], base: Baseline, tmp_path: Path
) -> None:
    art, log_dir, _frame = captured
    # A compaction that wrote its part but stopped before deleting the segment: put a
    # copy of the first compacted segment back beside the live one.
    part = store.parts(art, "m")[0]
    sid = part.rsplit("/part-", 1)[1][: -len(".parquet")]
    table = read_capture("m", store=art)
    rows = table[table["segment"] == sid]
    log = SegmentLog(tmp_path / "replay")
    log.append(
        {
            "request_id": r["request_id"],
            "row": 0,
            "time": r["time"].isoformat(),
            "model": "m",
            "version": 1,
            "route": "native",
            "status": 200,
        }
        for r in rows.to_dict("records")
    )
    closed = log.rotate()
    assert closed is not None
    shutil.copy(closed, log_dir / f"{sid}.seg")
    assert len(read_capture("m", log_dir=log_dir)) == ROWS // 2 + 500  # the copy is there
    assert sum(s.rows for s in _all(art, log_dir, base)) == ROWS


def test_a_day_window_from_stored_summaries_equals_the_exact_engine(
    captured: tuple[ArtifactStore, Path, pd.DataFrame], base: Baseline
) -> None:
    art, log_dir, _frame = captured
    anchors = anchors_for(base)
    windows = store.windows(_all(art, log_dir, base), 86_400.0)
    assert list(windows) == [(SeriesKey("m", 1, "native"), START)]
    summary = windows[(SeriesKey("m", 1, "native"), START)]
    rng = np.random.default_rng(5)
    rows = read_capture("m", store=art, log_dir=log_dir)
    labelled = rows.sample(frac=0.4, random_state=1)
    labels = pd.DataFrame(
        {
            "request_id": labelled["request_id"].to_numpy(),
            "row": 0,
            "label": (rng.random(len(labelled)) < labelled["proba.1"].to_numpy()).astype(int),
        }
    )
    perf_parts = store.label_summaries(
        art, lambda m, v: anchors, labels, model="m", log_dir=log_dir
    )
    perf = merge_all(perf_parts)
    assert perf is not None and perf.performance is not None
    got = measure_summary(
        summary, base, window="1d", performance=perf.performance, labelled=perf.labelled
    )
    window = Window(
        SeriesKey("m", 1, "native"),
        parse_window("1d"),
        START,
        START + timedelta(days=1),
        rows,
        rows.iloc[0:0],
        complete=True,
    )
    want = measure_window(window, base, labels)
    assert (got.n_rows, got.n_requests, got.n_labelled) == (
        want.n_rows,
        want.n_requests,
        want.n_labelled,
    )
    assert got.drift is not None and want.drift is not None
    assert got.drift.drifted_columns == want.drift.drifted_columns == ["x0", "c0"]
    got_points = {(p.metric, p.feature): p.value for p in got.points}
    want_points = {(p.metric, p.feature): p.value for p in want.points}
    assert got_points.keys() == want_points.keys()
    for key, value in want_points.items():
        if value is None:
            assert got_points[key] is None, key
        elif key[0] in ("drift.statistic", "drift.effect_size") and key[1] and key[1][0] == "x":
            assert got_points[key] == pytest.approx(value, abs=0.01), key
        elif key[0] == "performance.roc_auc" or key[0].startswith("performance.roc_auc"):
            assert got_points[key] == pytest.approx(value, abs=1e-3), key
        else:
            assert got_points[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_parts_are_streamed_with_projection_and_row_group_pruning(
    captured: tuple[ArtifactStore, Path, pd.DataFrame],
) -> None:
    art, _log_dir, _frame = captured
    part = store.parts(art, "m")[0]
    batches = list(store.stream_part(art, part, columns=["request_id", "nope"], batch_rows=500))
    assert all(b.schema.names == ["request_id"] for b in batches)
    assert sum(b.num_rows for b in batches) == ROWS // 2
    later = START + timedelta(days=2)
    assert list(store.stream_part(art, part, since=later)) == []
    assert store.parts(art, "m", since=later) == [] and store.parts(art, "other") == []


def test_a_part_of_an_unregistered_version_is_summarised_but_not_stored(
    captured: tuple[ArtifactStore, Path, pd.DataFrame],
) -> None:
    art, _log_dir, _frame = captured
    part = store.parts(art, "m")[0]
    built = store.part_summaries(art, part, lambda m, v: None)
    assert sum(s.rows for s in built) == ROWS // 2
    assert not list((Path(art.root) / "summaries").rglob("*.summary"))


def test_a_cycle_that_skips_known_parts_reads_one_index_per_day(
    captured: tuple[ArtifactStore, Path, pd.DataFrame], base: Baseline, monkeypatch: Any
) -> None:
    art, _log_dir, _frame = captured
    anchors = anchors_for(base)

    def skipping() -> list[store.WindowSummary]:
        return list(
            store.bucket_summaries(art, lambda m, v: anchors, model="m", needed=lambda held: False)
        )

    _all(art, None, base)  # builds both parts' summaries (and their .keys)
    read: list[str] = []
    real = art.read_bytes

    def counting(key: str) -> bytes:
        read.append(key)
        return real(key)

    monkeypatch.setattr(art, "read_bytes", counting)
    assert skipping() == []  # every part known: none opened; the day's index written
    assert sum(k.endswith(".keys") for k in read) == 2
    days = sorted(p.relative_to(art.root) for p in Path(art.root).rglob("index.g3600.json"))
    assert len(days) == 1
    read.clear()
    assert skipping() == []
    assert read == [str(days[0])]  # one small file for the day, no part's .keys
    # The index is a cache: lost, or missing a part, it is rebuilt from the parts' .keys.
    (Path(art.root) / days[0]).write_text("{}")
    read.clear()
    assert skipping() == []
    assert sum(k.endswith(".keys") for k in read) == 2
    assert len(json.loads((Path(art.root) / days[0]).read_text())) == 2
