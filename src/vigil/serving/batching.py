"""Adaptive micro-batching: requests that arrive while the model is busy share one call.

A lone request runs at once: when nothing is queued and no batch is in flight it goes
straight to the model. Requests that arrive *while* a batch is in flight queue up; when the
batch finishes they are joined into the next one (up to ``max_batch_size`` rows), held at
most until the oldest of them has waited ``max_wait`` seconds for more company. So under
light load latency is that of a single call, and under heavy load the model sees large
vectorised batches without anyone tuning a timer.

Model calls run on ONE worker thread per model version, so the event loop keeps accepting
and decoding requests while the model computes. Inputs are validated before they are
queued, so one client's bad row cannot fail another's request; if the model still raises
on a joined batch, each request is retried alone to isolate the one that fails.

>>> import asyncio, numpy as np
>>> def double(X, want_proba):
...     return X[:, 0] * 2, None
>>> async def main():
...     batcher = MicroBatcher(double, max_batch_size=8, metrics=None)
...     results = await asyncio.gather(
...         *(batcher.submit(np.array([[float(i)]]), 1, False) for i in range(5)))
...     batcher.close()
...     return [float(r.predictions[0]) for r in results], batcher.stats.largest_batch > 1
>>> asyncio.run(main())
([0.0, 2.0, 4.0, 6.0, 8.0], True)
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    Table = np.ndarray[Any, Any] | pd.DataFrame

Output = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]
PredictFn = Callable[[Any, bool], Output]
"""``predict(X, want_proba) -> (predictions, probabilities or None)`` on a whole batch."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One request's share of a batch."""

    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None
    queue_seconds: float
    """Time between the request joining the queue and its model call starting."""
    predict_seconds: float
    batch_rows: int
    """Rows in the model call this request was part of."""


@dataclass(slots=True)
class BatcherStats:
    """What the batcher did, for tests and diagnostics (metrics hold the same, aggregated)."""

    batches: int = 0
    rows: int = 0
    largest_batch: int = 0
    recent_queue_seconds: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=1024)
    )


class _Item:
    __slots__ = ("X", "enqueued", "future", "n_rows", "want_proba")

    def __init__(
        self, X: Any, n_rows: int, want_proba: bool, future: asyncio.Future[BatchResult]
    ) -> None:
        self.X = X
        self.n_rows = n_rows
        self.want_proba = want_proba
        self.future = future
        self.enqueued = perf_counter()


class MicroBatcher:
    """Joins concurrent requests of one model version into vectorised calls.

    Parameters
    ----------
    predict
        ``predict(X, want_proba)`` on a whole batch; called on the batcher's worker thread.
    max_batch_size
        Most rows per call; ``1`` disables batching (every request is its own call).
    max_wait
        Longest (seconds) a queued request is held to let a batch fill; lone requests
        never wait.
    metrics
        Pre-bound Prometheus children ``(batch size, queue time, predict time, rows)``, or
        ``None`` to record nothing.
    """

    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_size: int = 64,
        max_wait: float = 0.002,
        metrics: tuple[Any, Any, Any, Any] | None = None,
        thread_name: str = "vigil-model",
    ) -> None:
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.stats = BatcherStats()
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._pending: collections.deque[_Item] = collections.deque()
        self._pending_rows = 0
        self._running = False
        self._full: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._drainer: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """Whether a batch is in flight or requests are queued."""
        return self._running or bool(self._pending)

    async def submit(self, X: Any, n_rows: int, want_proba: bool) -> BatchResult:
        """Predict ``X`` (``n_rows`` validated rows), batched with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        item = _Item(X, n_rows, want_proba, loop.create_future())
        if self._running:
            self._pending.append(item)
            self._pending_rows += n_rows
            if self._full is not None and self._pending_rows >= self.max_batch_size:
                self._full.set()
            return await item.future
        # Nothing in flight: run now, then hand whatever queued meanwhile to the drainer.
        self._running = True
        try:
            await self._execute([item], loop)
        finally:
            if self._pending:
                self._start_drainer(loop)
            else:
                self._set_idle()
        return await item.future

    def _start_drainer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._running = True
        self._drainer = loop.create_task(self._drain(loop))

    def _set_idle(self) -> None:
        self._running = False
        if self._idle is not None:
            self._idle.set()

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self._pending:
                if self.max_wait > 0 and self._pending_rows < self.max_batch_size:
                    remaining = self._pending[0].enqueued + self.max_wait - perf_counter()
                    if remaining > 0:
                        self._full = asyncio.Event()
                        try:
                            await asyncio.wait_for(self._full.wait(), remaining)
                        except TimeoutError:
                            pass
                        finally:
                            self._full = None
                await self._execute(self._take(), loop)
        finally:
            self._set_idle()

    def _take(self) -> list[_Item]:
        batch = [self._pending.popleft()]
        rows = batch[0].n_rows
        while self._pending and rows + self._pending[0].n_rows <= self.max_batch_size:
            item = self._pending.popleft()
            rows += item.n_rows
            batch.append(item)
        self._pending_rows -= rows
        return batch

    async def _execute(self, batch: list[_Item], loop: asyncio.AbstractEventLoop) -> None:
        started = perf_counter()
        outcomes = await loop.run_in_executor(self._executor, self._call, batch)
        elapsed = perf_counter() - started
        rows = sum(item.n_rows for item in batch)
        stats = self.stats
        stats.batches += 1
        stats.rows += rows
        stats.largest_batch = max(stats.largest_batch, rows)
        metrics = self._metrics
        if metrics is not None:
            metrics[0].observe(rows)
            metrics[2].observe(elapsed)
            metrics[3].inc(rows)
        for item, outcome in zip(batch, outcomes, strict=True):
            queued = started - item.enqueued
            stats.recent_queue_seconds.append(queued)
            if metrics is not None:
                metrics[1].observe(queued)
            if item.future.done():  # the caller went away
                continue
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(BatchResult(outcome[0], outcome[1], queued, elapsed, rows))

    def _call(self, batch: list[_Item]) -> list[Output | BaseException]:
        """Runs on the worker thread: one vectorised call, split back by row ranges."""
        if len(batch) == 1:
            item = batch[0]
            try:
                return [self.predict(item.X, item.want_proba)]
            except Exception as exc:
                return [exc]
        want_proba = any(item.want_proba for item in batch)
        try:
            pred, proba = self.predict(_concat([item.X for item in batch]), want_proba)
        except Exception:
            # Isolate the request the model chokes on; the others still get answers.
            return [self._call([item])[0] for item in batch]
        outcomes: list[Output | BaseException] = []
        start = 0
        for item in batch:
            stop = start + item.n_rows
            part_proba = proba[start:stop] if proba is not None and item.want_proba else None
            outcomes.append((pred[start:stop], part_proba))
            start = stop
        return outcomes

    async def wait_idle(self) -> None:
        """Wait until nothing is queued or in flight (used to drain a replaced version)."""
        while self.busy:
            self._idle = asyncio.Event()
            await self._idle.wait()
        self._idle = None

    def close(self) -> None:
        """Stop the worker thread once the work it holds is done."""
        self._executor.shutdown(wait=True)


def _concat(parts: list[Any]) -> Any:
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=0)
    import pandas as pd

    return pd.concat(parts, ignore_index=True)
