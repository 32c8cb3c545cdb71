"""The exposition of several workers' metric files while workers come and go.

The files are written by real worker-like processes (vigil's own metrics, in
prometheus-client's multiprocess mode); the states a scrape can meet while a worker is
replaced are then made directly, so each race is played every time rather than by timing.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from vigil.errors import MetricsUnreadableError
from vigil.monitor import prometheus

# A worker's share of traffic: three answered predictions, and its resident memory (a live
# gauge, one series per pid).
_WORKER = """
from vigil.serving import metrics
for _ in range(3):
    metrics.record_request("native_predict", "clf", "1", 200, 0.01)
metrics.record_process_memory()
"""

NO_SUCH_PID = 2**22 + 1  # above Linux's largest pid_max: no live process has it


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The metric files two workers left: six requests, two resident-memory series."""
    directory = tmp_path_factory.mktemp("multiproc")
    env = {**os.environ, prometheus.MULTIPROC_ENV: str(directory)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _WORKER], env=env, check=True, timeout=60)
    return directory


@pytest.fixture
def directory(written: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the two workers' files that a test may add to, set as the server's."""
    copy = tmp_path / "multiproc"
    shutil.copytree(written, copy)
    monkeypatch.setenv(prometheus.MULTIPROC_ENV, str(copy))
    return copy


def _reference(directory: Path) -> bytes:
    """What prometheus-client's own collector makes of ``directory``."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def _requests_and_pids(text: bytes) -> tuple[float, int]:
    requests, pids = 0.0, set()
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            if s.name == "vigil_requests_total" and s.labels["route"] == "native_predict":
                requests += s.value
            if family.name == "vigil_process_resident_memory_bytes":
                pids.add(s.labels["pid"])
    return requests, len(pids)


def test_every_workers_values_are_exposed(directory: Path):
    exposed = prometheus.exposition()
    assert exposed == _reference(directory)
    assert _requests_and_pids(exposed) == (6.0, 2)


@pytest.mark.parametrize("kind", ["counter", "histogram", "gauge_liveall", "gauge_max"])
def test_a_file_a_starting_worker_has_not_sized_yet_is_passed_over(directory: Path, kind: str):
    # prometheus-client opens a new file (zero bytes) and only then sizes it; a scrape in
    # between, or after a worker killed in between, used to fail with struct.error (a 500).
    expected = _reference(directory)
    (directory / f"{kind}_{NO_SUCH_PID}.db").touch()
    with pytest.raises(struct.error):  # what the library alone makes of it
        _reference(directory)
    exposed = prometheus.exposition()
    assert exposed == expected  # nothing of the two workers is left out
    assert _requests_and_pids(exposed) == (6.0, 2)


def test_a_file_sized_but_not_yet_written_holds_nothing(directory: Path):
    # The step after: sized to zeros, its used length not yet set. Read as empty already.
    expected = _reference(directory)
    (directory / f"counter_{NO_SUCH_PID}.db").write_bytes(bytes(1 << 16))
    assert prometheus.exposition() == expected


@pytest.mark.parametrize("kind", ["gauge_liveall", "gauge_livesum", "counter"])
def test_a_file_removed_between_the_listing_and_the_read(
    directory: Path, monkeypatch: pytest.MonkeyPatch, kind: str
):
    # The supervisor removes a replaced worker's live gauges (mark_process_dead) while
    # another worker may be scraping: those are passed over. vigil removes no other file,
    # so a counter that vanishes is a clear error, not a traceback.
    expected = _reference(directory)
    gone = directory / f"{kind}_{NO_SUCH_PID}.db"
    gone.write_bytes(bytes(1 << 16))  # sized: listed and read
    initialised = prometheus._initialised

    def then_removed(path: str) -> bool:
        sized = initialised(path)
        if path == str(gone):
            gone.unlink()
        return sized

    monkeypatch.setattr(prometheus, "_initialised", then_removed)
    if kind.startswith("gauge_live"):
        assert prometheus.exposition() == expected
    else:
        with pytest.raises(MetricsUnreadableError, match=f"{gone.name} was removed from"):
            prometheus.exposition()


def test_an_unreadable_file_fails_the_scrape_with_one_clear_error(directory: Path):
    # Used length past the file's end: no worker writes this, so the scrape fails rather
    # than answer totals with that file's values missing, and says which file it was.
    broken = directory / f"counter_{NO_SUCH_PID}.db"
    broken.write_bytes(struct.pack("i", 64) + bytes(12))
    with pytest.raises(MetricsUnreadableError) as caught:
        prometheus.exposition()
    error = caught.value
    assert (error.status, error.code) == (500, "metrics_unreadable")
    assert f"{broken.name} in PROMETHEUS_MULTIPROC_DIR cannot be read" in error.message
    assert "Restarting the server" in error.message
    assert str(directory) not in error.message  # /metrics is open: no server paths
    assert error.detail == {"file": broken.name}
    assert error.__cause__ is None and error.__suppress_context__  # no traceback to log


def test_one_process_reads_its_own_registry(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(prometheus.MULTIPROC_ENV, raising=False)
    assert prometheus.collecting_registry() is prometheus.REGISTRY
