"""The single-process backfill on a real (local) store: every part of a model in a date
range built once, stored beside it, skipped when run again; a build killed between its
two writes is completed without summarising again, and no row is ever counted twice."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.monitor._data import copied_home, home_vigil, make_frame, train, write_traffic

from vigil.app import Vigil
from vigil.capture.compact import compact
from vigil.capture.log import SegmentLog
from vigil.capture.sink import CaptureSink
from vigil.errors import DataFileError, InvalidParameterError, ModelNotFoundError
from vigil.monitor.summaries import backfill as module
from vigil.monitor.summaries.backfill import backfill, keys_key
from vigil.monitor.summaries.store import bucket_summaries, part_buckets, summary_key
from vigil.monitor.summaries.window import anchors_for
from vigil.storage.artifacts import ArtifactStore

DAY0 = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def history_home(registered_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The registered home with three days of 400 rows of ``churn`` version 1 and a fourth
    of version 2 (not registered), one compacted part per day (built once; each test
    works on a copy)."""
    home = tmp_path_factory.mktemp("backfill") / "home"
    shutil.copytree(registered_home, home)
    app = home_vigil(home)
    trained = train(seed=0)
    log = SegmentLog(app.capture_dir)
    for day, version in ((0, 1), (1, 1), (2, 1), (3, 2)):
        sink = CaptureSink(log)
        write_traffic(
            sink,
            trained.model,
            make_frame(400, seed=day),
            start=DAY0 + timedelta(days=day, hours=1),
            step=timedelta(seconds=30),
            batch=4,
            prefix=f"d{day}-",
            version=version,
        )
        sink.close()
        compact(log, app.artifacts)
    app.database.dispose()
    return home


@pytest.fixture
def history(history_home: Path, vigil_home: Path) -> Iterator[Vigil]:
    """A private copy of that home, also the process default (``VIGIL_HOME``)."""
    yield from copied_home(history_home, vigil_home)


def _written(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    keys: list[str] = []
    real = ArtifactStore.write_bytes

    def spy(self: ArtifactStore, key: str, data: bytes) -> None:
        keys.append(key)
        real(self, key, data)

    monkeypatch.setattr(ArtifactStore, "write_bytes", spy)
    return keys


def test_a_backfill_builds_each_part_once(history: Vigil, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int]] = []
    first = backfill(history, "churn", progress=lambda d, t: seen.append((d, t)))
    assert [p.outcome for p in first.parts] == ["built", "built", "built", "unanchored"]
    assert [p.rows for p in first.parts] == [400] * 4
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    stored = sorted(p.name for p in Path(history.artifacts.root).rglob("part-*.g3600.*"))
    assert len(stored) == 6  # a .summary and a .keys per registered part, none for v2

    writes = _written(monkeypatch)
    again = backfill(history, "churn")
    assert [p.outcome for p in again.parts] == ["skipped"] * 3 + ["unanchored"]
    assert writes == []  # nothing rewritten
    assert again.to_dict()["skipped"] == 3 and again.rows == 400  # only v2 summarised again


def test_the_range_is_whole_days(history: Vigil) -> None:
    done = backfill(
        history, "churn", since=DAY0 + timedelta(days=1, hours=5), until=DAY0 + timedelta(days=2)
    )
    assert [p.part.split("/")[2] for p in done.parts] == ["date=2025-03-02", "date=2025-03-03"]


def test_a_build_killed_between_its_writes_is_completed_without_counting_twice(
    history: Vigil, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = history.artifacts
    real = ArtifactStore.write_bytes

    def killed_after_the_summary(self: ArtifactStore, key: str, data: bytes) -> None:
        if key.endswith(".keys"):
            raise KeyboardInterrupt  # killed between the summary and its index
        real(self, key, data)

    monkeypatch.setattr(ArtifactStore, "write_bytes", killed_after_the_summary)
    with pytest.raises(KeyboardInterrupt):
        backfill(history, "churn")
    monkeypatch.setattr(ArtifactStore, "write_bytes", real)
    (part,) = [p for p in module.parts(store, "churn") if store.exists(summary_key(p))]
    assert not store.exists(keys_key(part))

    calls: list[int] = []
    real_summarise = module.part_summaries

    def counting(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        return real_summarise(*args, **kw)

    monkeypatch.setattr(module, "part_summaries", counting)
    done = backfill(history, "churn")
    # The first part's index is written from its stored summaries; the other three built.
    assert [p.outcome for p in done.parts] == ["built", "built", "built", "unanchored"]
    assert len(calls) == 3
    assert part_buckets(store, part) is not None
    anchors = anchors_for(module.load_baseline(history, "churn", 1))
    rows = sum(
        s.rows
        for s in bucket_summaries(store, lambda m, v: anchors if v == 1 else None, model="churn")
        if s.key.version == 1
    )
    assert rows == 1200  # three days of 400, each counted once


def test_bad_input_fails_before_any_work(vigil: Vigil) -> None:
    with pytest.raises(ModelNotFoundError):
        backfill(vigil, "nope")
    with pytest.raises(InvalidParameterError, match="must be before --until"):
        backfill(vigil, "churn", since=DAY0 + timedelta(days=2), until=DAY0)


def test_a_part_that_cannot_be_read_is_named_and_the_others_stay_built(history: Vigil) -> None:
    broken = "capture/model=churn/date=2025-03-03/part-zzz-broken.parquet"
    history.artifacts.write_bytes(broken, b"not parquet")
    with pytest.raises(DataFileError) as caught:
        backfill(history, "churn")
    assert caught.value.message.startswith(f"cannot build the summaries of {broken}: ")
    assert caught.value.detail == {"part": broken}
    built = [
        p for p in module.parts(history.artifacts, "churn") if module.is_built(history.artifacts, p)
    ]
    assert len(built) == 3  # the three days before it in key order
