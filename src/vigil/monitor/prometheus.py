"""vigil's Prometheus registry and its exposition, shared by serving and monitoring.

Every metric vigil publishes (the serving core's in :mod:`vigil.serving.metrics`, the
monitoring gauges in :mod:`vigil.monitor.exporter`) is created once, on :data:`REGISTRY`,
so embedding vigil never collides with an application's own metrics.

With ``PROMETHEUS_MULTIPROC_DIR`` set (several worker processes), prometheus-client writes
values to files there and :func:`exposition` aggregates every worker's files, so totals
are correct across workers. Workers come and go while others scrape (a killed worker is
replaced, its live gauges' files removed), so the files are read as :class:`WorkerFiles`
reads them: a file a starting worker has not sized yet holds no value and is passed over,
as is a replaced worker's live gauge removed while it is read; a file that cannot be read
fails the scrape with a one-line :class:`~vigil.errors.MetricsUnreadableError` naming it,
never a traceback.
"""

from __future__ import annotations

import glob
import os
import struct
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from vigil.errors import MetricsUnreadableError

REGISTRY = CollectorRegistry(auto_describe=True)
"""vigil's own registry, so embedding vigil never collides with an application's metrics."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_HEADER = 8
"""Bytes before a metric file's first value: its used length (4) and padding (4)."""

# What prometheus-client raises on a file it cannot parse (a short header, a length past
# the end, a key that is not JSON or not UTF-8).
_UNPARSABLE = (ValueError, RuntimeError, struct.error)


def _initialised(path: str) -> bool:
    """Whether a worker has sized its metric file yet.

    prometheus-client creates the file empty (``open``) and only then sizes it
    (``truncate``, which fills it with zeros: no value yet), so a scrape between the two
    would read zero bytes and fail; a worker killed between the two leaves the file empty
    for good. Files never shrink, so one sized now stays readable.
    """
    try:
        return os.stat(path).st_size >= _HEADER
    except FileNotFoundError:
        return False


class WorkerFiles(Collector):
    """Every worker's metric files in ``directory``, merged as prometheus-client merges
    them (counters summed, live gauges per pid...), read so that workers starting, dying
    and being replaced never fail a scrape, and nothing of a live worker is left out."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        pattern = os.path.join(self.directory, "*.db")
        files = [f for f in glob.glob(pattern) if _initialised(f)]
        try:
            # The live gauges of a replaced worker may go between the listing and the
            # read (mark_process_dead): prometheus-client passes over those itself.
            return MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-any-return,no-untyped-call]
        except FileNotFoundError as exc:
            raise MetricsUnreadableError(
                f"the metric file {os.path.basename(exc.filename or '')} was removed from "
                f"{MULTIPROC_ENV} while it was read; vigil removes only a replaced worker's "
                "live gauges there: is another process cleaning that directory?"
            ) from None
        except _UNPARSABLE:
            raise self._unreadable(files) from None

    def _unreadable(self, files: list[str]) -> MetricsUnreadableError:
        """The error naming the first file that cannot be read on its own."""
        for path in files:
            try:
                MultiProcessCollector.merge([path])  # type: ignore[no-untyped-call]
            except FileNotFoundError:
                continue
            except _UNPARSABLE as exc:
                name = os.path.basename(path)
                return MetricsUnreadableError(
                    f"the metric file {name} in {MULTIPROC_ENV} cannot be read "
                    f"({type(exc).__name__}: {exc}); the scrape fails rather than leave its "
                    "values out of the totals. Restarting the server starts a fresh metrics "
                    "directory",
                    detail={"file": name},
                )
        return MetricsUnreadableError(
            f"the metric files in {MULTIPROC_ENV} could not be merged, though each one "
            "reads on its own; scrape again"
        )


def collecting_registry() -> CollectorRegistry:
    """The registry to read now: :data:`REGISTRY`, or with several workers one that
    merges every worker's files (:class:`WorkerFiles`)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return REGISTRY
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerFiles(directory))
    return registry


def exposition() -> bytes:
    """The current metrics in Prometheus text format (all workers in multiprocess mode)."""
    return generate_latest(collecting_registry())
