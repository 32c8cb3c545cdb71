"""The capture disk fills up under load, then space comes back.

``ENOSPC`` is injected at the capture writer's ``os.write`` (the first failing call writes
half its buffer, as a real full disk does), for the capture and feedback logs alike. While
the disk is full, predictions fail fast with 503 (the log cannot hold them, so they are
not answered), feedback too; never a 500, and nothing answered 2xx is missing from the log.
Once space is back, the next prediction succeeds, and the compactor turns every segment,
including the one a failed write tore, into Parquet.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from tests._waiting import wait_for
from tests.reliability._traffic import Traffic
from tests.serving.conftest import (
    CLF_FEATURES,
    SETTINGS,
    ServerThread,
    SklearnAdapter,
    clf_signature,
)

import vigil.capture.log
from vigil.bundle.model import LoadedBundle
from vigil.capture.reader import read_capture
from vigil.capture.settings import CaptureSettings
from vigil.serving import metrics
from vigil.serving.app import create_app
from vigil.serving.capture_runtime import CaptureRuntime
from vigil.serving.provider import StaticProvider
from vigil.storage.artifacts import ArtifactStore


class FullDisk:
    """The ``os`` module as :mod:`vigil.capture.log` sees it: while ``full``, the first
    write writes half its buffer and every write after it fails with ``ENOSPC``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._full = False
        self._torn = False
        self.failed = 0

    def fill(self) -> None:
        with self._lock:
            self._full, self._torn = True, False

    def free(self) -> None:
        with self._lock:
            self._full = False

    def write(self, fd: int, data: Any) -> int:
        with self._lock:
            full, torn = self._full, self._torn
            if full:
                self._torn = True
                self.failed += 1
        if full and not torn and len(data) > 1:
            return os.write(fd, bytes(data[: len(data) // 2]))
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, CaptureRuntime, ArtifactStore]]:
    X, y = make_classification(n_samples=200, n_features=20, random_state=0)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    provider = StaticProvider(
        [LoadedBundle(SklearnAdapter(clf), clf_signature(), name="clf", version=1)],
        settings=SETTINGS,
    )
    store = ArtifactStore(str(tmp_path / "artifacts"))
    settings = CaptureSettings(compact_interval_s=3600)  # only the start-up pass runs alone
    runtime = CaptureRuntime.from_settings(settings, home=tmp_path, store=store)
    assert runtime is not None
    with ServerThread(create_app(provider, capture=runtime)) as running:
        yield running.url, runtime, store


ROW = dict.fromkeys(CLF_FEATURES, 0.25)


def test_a_full_capture_disk_fails_fast_with_503_and_loses_no_2xx(
    server: tuple[str, CaptureRuntime, ArtifactStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, runtime, store = server
    failures = metrics.CAPTURE_WRITE_FAILURES.labels("answered")
    failed_before = failures._value.get()
    disk = FullDisk()
    monkeypatch.setattr(vigil.capture.log, "os", disk)
    with Traffic(url, "/v1/models/clf/predict", {"inputs": ROW}) as traffic:
        traffic.wait(50, status=200)
        disk.fill()
        traffic.wait(30, status=503)
        during = traffic.count()
        full_feedback = httpx.post(f"{url}/v1/feedback", json={"request_id": "r", "label": 1})
        disk.free()
        traffic.wait(50, status=200)  # the next requests succeed: nothing stayed wedged
    statuses = traffic.statuses()
    assert set(statuses) == {200, 503}, statuses  # fast 503s, never a 500 nor a hang
    assert disk.failed >= 1  # one write per micro-batch: fewer writes than requests
    # Each failed group write is counted once for Prometheus (its requests all got 503).
    assert 1 <= failures._value.get() - failed_before <= statuses[503]
    # the newest of the 503s waited for above (later ones may all come after the disk frees)
    failure = next(a for a in reversed(traffic.answers[:during]) if a.status == 503)
    assert failure.body["error"] == "not_ready"
    assert failure.body["detail"]["reason"] == "capture_unavailable"
    assert "No space left on device" in failure.body["message"]
    assert full_feedback.status_code == 503, full_feedback.text
    assert "free disk space" in full_feedback.json()["message"]
    ok = httpx.post(f"{url}/v1/feedback", json={"request_id": "r", "label": 1})
    assert ok.status_code == 200 and ok.json()["accepted"] == 1

    # The compactor resumes: every segment, torn ones included, becomes Parquet, and every
    # request answered 2xx is in it.
    runtime.sink.log.rotate()
    compactor = runtime.compactor
    assert compactor is not None
    wait_for(lambda: compactor.run_once() is not None, what="the compaction lock")
    assert runtime.sink.log.all_segments() == []
    logged = set(read_capture(store=store)["request_id"])
    missing = traffic.answered() - logged
    assert not missing, f"{len(missing)} acknowledged predictions lost: {sorted(missing)[:5]}"
