"""kill -9 under load: every request that got a 2xx is in the inference log after restart.

Two ``vigil serve`` workers (registry-backed, capture on by default) answer four client
threads that each remember the request ids answered 2xx. One worker is SIGKILLed mid-load;
the supervisor replaces it and the load goes on. After the server is stopped and started
again, its start-up compaction recovers the dead worker's segment, and every 2xx request id
is found in the compacted Parquet partitions.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from tests._waiting import wait_for
from tests.serving.test_workers import WorkerServer

from vigil.app import Vigil
from vigil.capture.reader import read_capture
from vigil.settings import load_settings
from vigil.storage.artifacts import ArtifactStore

PROVIDER = "vigil.app:serving_app_from_environment"
FEATURES = ["a", "b", "c", "d"]


def register_churn(home: Path) -> None:
    """Register a LogisticRegression on :data:`FEATURES` as ``churn@production``."""
    X, y = make_classification(n_samples=200, n_features=4, random_state=3)
    frame = pd.DataFrame(X, columns=FEATURES)
    model = LogisticRegression().fit(frame, y)
    Vigil(load_settings(home=home)).register(
        model, name="churn", reference=frame.assign(y=y), target="y", alias="production"
    )


class Server(WorkerServer):
    """A worker server given time to start on a busy machine, and whose workers are all
    gone once it has stopped: one still draining when the supervisor gives up is killed
    (``kill -9`` again; the restart recovers its segment like any other)."""

    def __init__(self, workers: int, env: dict[str, str]) -> None:
        super().__init__(workers, PROVIDER, env=env)
        self.pids: set[int] = set()

    def wait_ready(self, timeout: float = 240, until: Any = None) -> set[int]:
        if self.workers > 1:
            pids = super().wait_ready(timeout, until)
        else:  # a single worker labels no metric with its pid: ask /readyz and /livez

            def ready() -> set[int] | None:
                assert self.proc.poll() is None, self.output()
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                        return {httpx.get(f"{self.url}/livez", timeout=5).json()["pid"]}
                return None

            pids = wait_for(ready, timeout, what=lambda: f"the server:\n{self.output()}")
        self.pids |= pids
        return pids

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _busiest(capture_dir: Path, pids: set[int]) -> int:
    """The worker (of ``pids``) whose live capture segment is the largest."""
    sizes: dict[int, int] = {}
    for path in capture_dir.glob("capture-*.open"):
        pid = int(path.name.split("-")[2])  # capture-<host>-<pid>-<ns>-<seq>.open
        if pid in pids:
            sizes[pid] = sizes.get(pid, 0) + path.stat().st_size
    assert sizes, "no worker has written anything"
    return max(sizes, key=sizes.__getitem__)


def _segments(capture_dir: Path) -> list[Path]:
    return sorted(p for p in capture_dir.glob("capture-*") if p.suffix in (".open", ".seg"))


@pytest.mark.slow
def test_every_2xx_survives_kill_9_of_its_worker(vigil_home: Path) -> None:
    register_churn(vigil_home)
    env = {
        "VIGIL_HOME": str(vigil_home),
        "VIGIL_WORKER_MODELS": '["models:/churn@production"]',
        "VIGIL_WORKER_POLL_INTERVAL": "0",
        "VIGIL_CAPTURE_COMPACT_INTERVAL_S": "3600",  # only the start-up pass
    }
    capture_dir = vigil_home / "capture"
    answered: list[str] = []
    failed: list[str] = []
    lock = threading.Lock()
    with Server(2, env) as server:
        pids = server.worker_pids()
        stop = threading.Event()

        def client(n: int) -> None:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                i = 0
                while not stop.is_set():
                    rid = f"c{n}-{i}-{uuid.uuid4().hex[:6]}"
                    i += 1
                    row = {f: (i % 7) / 7 - 0.5 for f in FEATURES}
                    try:
                        r = http.post(
                            "/v1/models/churn/predict",
                            json={"inputs": row},
                            headers={"x-request-id": rid},
                        )
                    except httpx.TransportError as exc:
                        with lock:
                            failed.append(type(exc).__name__)
                        continue
                    if r.is_success:
                        with lock:
                            answered.append(rid)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        # Counted rather than timed, so a busy machine still kills mid-load.
        wait_for(lambda: len(answered) >= 40, 90, what="the load to progress")
        with lock:
            before_kill = len(answered)
        # The kernel may hand every connection to one worker: kill one that is answering,
        # the one whose live segment holds the most.
        victim = _busiest(capture_dir, pids)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(answered) >= before_kill + 40, 90, what="the load to progress")
        server.wait_ready(until=lambda pids: victim not in pids)  # note the replacement
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert len(failed) <= 4, failed  # at most the requests in flight on the killed worker

    # Restart: the start-up compaction closes and compacts what the dead worker left.
    with Server(1, env):
        # Nothing is left uncompacted: the dead workers' segments were closed and moved to
        # Parquet, and this worker, having answered nothing, has no segment of its own.
        wait_for(lambda: not _segments(capture_dir), 90, what="every segment to be compacted")
    store = ArtifactStore(str(vigil_home / "artifacts"))
    compacted = read_capture(store=store)  # Parquet only: no segment left to read
    logged = set(compacted["request_id"])
    missing = set(answered) - logged
    assert not missing, (
        f"{len(missing)} of {len(answered)} 2xx requests missing: {sorted(missing)[:5]}"
    )
    assert compacted["segment"].str.contains(f"-{victim}-").any()  # the dead worker's rows
    assert (compacted["model"] == "churn").all() and (compacted["status"] == 200).all()
    assert compacted["request_id"].is_unique
