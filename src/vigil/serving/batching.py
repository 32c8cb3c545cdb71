"""Adaptive micro-batching: requests that arrive together share one model call.

Requests are gathered per model version. When the model is idle, a request starts a batch
that takes in every request decoded while the event loop keeps turning with new arrivals
(a lone request is held for one turn, microseconds); requests that arrive *while* a call is
in flight queue up and are joined into the next one, held at most until the oldest of them
has waited ``max_wait`` seconds for more company. No batch exceeds ``max_batch_size``
rows. So under light load latency is that of a single call, and under heavy load the
model sees large vectorised batches without anyone tuning a timer. A protocol whose
concurrent requests reach the batcher several turns of the loop apart (gRPC) says so with
:data:`GATHER_TURNS`, and a batch one of its requests starts waits that many quiet turns.

Where the call runs depends on what it costs, measured when the model is warmed
(:meth:`MicroBatcher.calibrate`) and kept up to date from every call (time on the worker
thread also counts waiting for the GIL, so a model there is tried on the event loop again
now and then, less often each time it is still too slow): a batch estimated
to take at most ``inline_budget`` seconds (a linear model, a small tree ensemble) runs on
the event loop itself, since handing it to another thread and back would cost more than
the call; a longer one runs on the model version's ONE worker thread, so the event loop
keeps accepting and decoding requests while the model computes. Either way the model is
never called twice at once. Inputs are validated before they are queued, so one client's
bad row cannot fail another's request; if the model still raises on a joined batch, each
request is retried alone to isolate the one that fails.

>>> import asyncio, numpy as np
>>> def double(X, want_proba):
...     return X[:, 0] * 2, None
>>> async def main():
...     batcher = MicroBatcher(double, max_batch_size=8, metrics=None)
...     results = await asyncio.gather(
...         *(batcher.submit(np.array([[float(i)]]), 1, False) for i in range(5)))
...     batcher.close()
...     return [float(r.predictions[0]) for r in results], batcher.stats.largest_batch
>>> asyncio.run(main())
([0.0, 2.0, 4.0, 6.0, 8.0], 5)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from vigil.serving.metrics import observe_many

if TYPE_CHECKING:
    import pandas as pd

    Table = np.ndarray[Any, Any] | pd.DataFrame

Output = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]
PredictFn = Callable[[Any, bool], Output]
"""``predict(X, want_proba) -> (predictions, probabilities or None)`` on a whole batch."""
AnswerLog = Callable[[list[tuple[Any, Output]]], None]
"""Called with ``(note, output)`` of every request a call answered, before any of them is
released, on the thread the call ran on (the event loop or the model's worker thread); if
it raises, each of those requests fails with its exception instead."""


class BatchResult(NamedTuple):
    """One request's share of a batch (a named tuple: one is built per request)."""

    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None
    queue_seconds: float
    """Time between the request joining the queue and its model call starting."""
    predict_seconds: float
    batch_rows: int
    """Rows in the model call this request was part of."""


_result = functools.partial(tuple.__new__, BatchResult)
"""A :class:`BatchResult` from one tuple of its fields (its own constructor takes them as
Python arguments: about three times the cost, once per request)."""


@dataclass(slots=True)
class BatcherStats:
    """What the batcher did, for tests and diagnostics (metrics hold the same, aggregated)."""

    batches: int = 0
    rows: int = 0
    largest_batch: int = 0
    inline_batches: int = 0
    """Model calls made on the event loop rather than on the worker thread."""
    recent_queue_seconds: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=1024)
    )


@dataclass(slots=True)
class CallCost:
    """What a model call is expected to cost: ``fixed + per_row * rows`` seconds."""

    fixed: float
    per_row: float

    def estimate(self, rows: int) -> float:
        return self.fixed + self.per_row * rows


GATHER_TURNS: contextvars.ContextVar[int] = contextvars.ContextVar("gather_turns", default=1)
"""How many turns of the event loop in a row may bring no new request before a batch that
a request starts stops waiting for company (still at most ``max_wait``). One suits requests
that arrive together (the HTTP server reads every ready connection in one turn); a protocol
whose concurrent requests come several turns apart sets more in its request's task (see
:mod:`vigil.serving.grpc.service`).

>>> GATHER_TURNS.get()
1
"""

_SMOOTHING = 0.1
"""Weight of the newest call in the running estimate of a call's fixed cost (on the worker
thread)."""
_RECENT_CALLS = 9
"""Inline calls whose median fixed cost is the estimate while the model runs on the event
loop: on a shared machine the OS preempts the server now and then, and one call that
straddled a preemption (milliseconds of wall time for a 100 µs call) must not send a cheap
model to the worker thread; a model that really turned slow does it on every call and
moves after a handful of them."""
PROBE_INTERVAL = 1.0
"""Seconds before a model on its worker thread is first tried on the event loop again."""
_LONGEST_PROBE_INTERVAL = 60.0
_PROBE_LIMIT = 10.0
"""A model whose calls on its worker thread take more than this many times the inline
budget is never probed on the event loop: waiting for the GIL there (at most a few switch
intervals of 5 ms) cannot make a cheap model look that slow, and a probe of a model that
really is (a 400 ms call) would stop every other request for as long."""


class RunQueueClock:
    """Seconds the calling thread has spent runnable but waiting for a CPU (Linux's
    ``/proc/thread-self/schedstat``; always 0 where it cannot be read). On a shared
    machine the difference over a model call is what preemption added to its wall time.

    >>> clock = RunQueueClock()
    >>> clock.seconds() >= 0.0
    True
    """

    __slots__ = ("_fd", "_owner")

    def __init__(self) -> None:
        self._fd: int | None = None
        self._owner: tuple[int, int] | None = None

    def seconds(self) -> float:
        owner = (os.getpid(), threading.get_ident())
        if owner != self._owner:  # first use, another thread, or a forked child
            self._owner, self._fd = owner, None
            with contextlib.suppress(OSError):
                self._fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY | os.O_CLOEXEC)
        if self._fd is None:
            return 0.0
        try:
            return int(os.pread(self._fd, 64, 0).split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return 0.0


@dataclass(slots=True)
class _Item:
    X: Any
    n_rows: int
    want_proba: bool
    future: asyncio.Future[BatchResult]
    log: AnswerLog | None
    note: Any
    trace: Any
    """The request's :class:`~vigil.serving.tracing.RequestTrace`; ``None``: not traced."""
    enqueued: float = field(default_factory=perf_counter)


class MicroBatcher:
    """Joins concurrent requests of one model version into vectorised calls.

    Parameters
    ----------
    predict
        ``predict(X, want_proba)`` on a whole batch.
    max_batch_size
        Most rows per call; ``1`` disables batching (every request is its own call).
    max_wait
        Longest (seconds) a request is held to let its batch fill; a lone request is
        held for one turn of the event loop only.
    inline_budget
        Calls estimated to take at most this long (seconds) run on the event loop; ``0``
        runs every call on the worker thread. Until :meth:`calibrate` has measured the
        model, every call runs on the worker thread.
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
        inline_budget: float = 0.0,
        metrics: tuple[Any, Any, Any, Any] | None = None,
        thread_name: str = "vigil-model",
    ) -> None:
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.inline_budget = inline_budget
        self.cost: CallCost | None = None
        """The measured cost of a call (None until :meth:`calibrate`)."""
        self._probe_at = 0.0
        self._probe_interval = PROBE_INTERVAL
        self._probing = False
        self._recent: collections.deque[float] = collections.deque(maxlen=_RECENT_CALLS)
        self._run_queue = RunQueueClock()
        """The event loop's (inline calls); the worker thread has its own."""
        self._worker_run_queue = RunQueueClock()
        self.stats = BatcherStats()
        self._metrics = metrics
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        """The model's worker thread (also where it is loaded and warmed)."""
        self._pending: collections.deque[_Item] = collections.deque()
        self._pending_rows = 0
        self._gather_turns = 1
        self._traced = False
        """Set once a traced request came: from then on each batch looks for traces."""
        self._running = False
        self._full: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._drainer: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """Whether a batch is in flight or requests are queued."""
        return self._running or bool(self._pending)

    def calibrate(self, one: Any, many: Callable[[], Any], want_proba: bool) -> CallCost | None:
        """Measure what a call costs on one row (``one``) and on a full batch (``many()``
        builds ``max_batch_size`` rows) and keep the estimate that decides where calls run.
        Call it where the model runs (its worker thread), after a first call has paid any
        lazy initialisation. A model too slow to ever run inline is timed on one row only.
        """
        if self.inline_budget <= 0:
            return None

        clock = RunQueueClock()

        def timed(X: Any) -> float:
            times: list[float] = []
            while len(times) < 3:
                queued = clock.seconds()
                started = perf_counter()
                self.predict(X, want_proba)
                times.append(perf_counter() - started - (clock.seconds() - queued))
                if times[0] > 4 * self.inline_budget:
                    break  # far too slow for the event loop: no need to be precise
            return sorted(times)[len(times) // 2]

        single = timed(one)
        rows = self.max_batch_size
        if rows == 1 or single > self.inline_budget:
            self.cost = CallCost(fixed=single, per_row=0.0)
            return self.cost
        X = many()
        try:
            self.predict(X, want_proba)  # a batch this size may have lazy costs of its own
        except Exception:
            # The model takes no batch this size (an ONNX graph with a fixed batch
            # dimension, say): joined batches will fail and be split into single calls.
            self.cost = CallCost(fixed=0.0, per_row=single)
            return self.cost
        per_row = max(0.0, (timed(X) - single) / (rows - 1))
        self.cost = CallCost(fixed=max(0.0, single - per_row), per_row=per_row)
        self._recent.append(self.cost.fixed)
        return self.cost

    def _runs_inline(self, rows: int) -> bool:
        cost = self.cost
        # The cost was measured on at most max_batch_size rows: a larger call (one request
        # of many rows) is not trusted to the estimate, it goes to the worker thread.
        if cost is None or rows > self.max_batch_size:
            return False
        if cost.estimate(rows) <= self.inline_budget:
            self._probe_at = 0.0
            return True
        # On the worker thread a call's time also counts waiting for the GIL while the
        # event loop decodes requests, so a cheap model that one slow call sent there could
        # look slow for ever: now and then one batch is tried on the loop again.
        now = perf_counter()
        if self._probe_at == 0.0:
            self._probe_at = now + self._probe_interval
        elif (
            now >= self._probe_at
            and cost.per_row * rows <= self.inline_budget
            and cost.estimate(rows) <= _PROBE_LIMIT * self.inline_budget
        ):
            self._probing = True
            return True
        return False

    def _observe(self, seconds: float, rows: int, inline: bool) -> None:
        """Fold a call's wall time into the estimate: a model that turns slow under real
        inputs moves to the worker thread (on the event loop, once the median of its last
        calls is too slow: see :data:`_RECENT_CALLS`); a probe's time replaces the estimate."""
        cost = self.cost
        if cost is None:
            return
        fixed = max(0.0, seconds - cost.per_row * rows)
        recent = self._recent
        if not self._probing:
            if inline:
                recent.append(fixed)
                cost.fixed = sorted(recent)[(len(recent) - 1) // 2]
            else:
                recent.clear()
                cost.fixed += _SMOOTHING * (fixed - cost.fixed)
            return
        self._probing = False
        recent.clear()
        recent.append(fixed)
        cost.fixed = fixed
        if cost.estimate(rows) <= self.inline_budget:
            self._probe_at, self._probe_interval = 0.0, PROBE_INTERVAL
        else:  # still slow: probe less and less often
            self._probe_interval = min(2 * self._probe_interval, _LONGEST_PROBE_INTERVAL)
            self._probe_at = perf_counter() + self._probe_interval

    def submit(
        self,
        X: Any,
        n_rows: int,
        want_proba: bool,
        log: AnswerLog | None = None,
        note: Any = None,
        trace: Any = None,
    ) -> asyncio.Future[BatchResult]:
        """Predict ``X`` (``n_rows`` validated rows), batched with whatever else is waiting:
        queued now, answered by the future returned (a future, not a coroutine: one frame
        less on every request's path).

        With ``log``, the answer is handed to it as ``(note, output)`` together with the
        others of its call before the future is resolved (see :data:`AnswerLog`). With
        ``trace`` (the request's :class:`~vigil.serving.tracing.RequestTrace`), its wait ends
        and its batch's span starts when its batch does.
        """
        loop = asyncio.get_running_loop()
        item = _Item(X, n_rows, want_proba, loop.create_future(), log, note, trace)
        if trace is not None:
            self._traced = True
        self._pending.append(item)
        self._pending_rows += n_rows
        turns = GATHER_TURNS.get()
        if turns > self._gather_turns:
            self._gather_turns = turns
        if not self._running:
            # The drainer's first step runs after the other requests of this tick.
            self._running = True
            self._drainer = loop.create_task(self._drain(loop))
        elif self._full is not None and self._pending_rows >= self.max_batch_size:
            self._full.set()
        return item.future

    def _set_idle(self) -> None:
        self._running = False
        if self._idle is not None:
            self._idle.set()

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            await self._gather()
            while self._pending:
                batch = self._take()
                if batch:  # else every request taken was cancelled
                    await self._execute(batch, loop)
                if self._pending:
                    await self._fill()
        finally:
            self._set_idle()

    async def _gather(self) -> None:
        """Before a first call: let the event loop turn while each turn brings more requests
        (their bytes were already on the way), up to a full batch or ``max_wait``. A lone
        request is held for one turn of the loop, microseconds (or for the
        :data:`GATHER_TURNS` its protocol asked)."""
        deadline = self._pending[0].enqueued + self.max_wait
        quiet = 0
        try:
            while self._pending_rows < self.max_batch_size:
                seen = len(self._pending)
                await asyncio.sleep(0)
                quiet = quiet + 1 if len(self._pending) == seen else 0
                if quiet >= self._gather_turns or perf_counter() > deadline:
                    return
        finally:
            self._gather_turns = 1

    async def _fill(self) -> None:
        """After a call: requests that queued behind it wait for company until the oldest of
        them has waited ``max_wait`` or a batch is full."""
        if self.max_wait <= 0 or self._pending_rows >= self.max_batch_size:
            return
        remaining = self._pending[0].enqueued + self.max_wait - perf_counter()
        if remaining > 0:
            self._full = asyncio.Event()
            try:
                await asyncio.wait_for(self._full.wait(), remaining)
            except TimeoutError:
                pass
            finally:
                self._full = None

    def _take(self) -> list[_Item]:
        """The next batch: the oldest request, then more while they fit. A request whose
        caller was cancelled meanwhile (a drain deadline) is dropped, not predicted."""
        batch: list[_Item] = []
        rows = 0
        pending = self._pending
        while pending and (not batch or rows + pending[0].n_rows <= self.max_batch_size):
            item = pending.popleft()
            self._pending_rows -= item.n_rows
            if item.future.done():
                continue
            rows += item.n_rows
            batch.append(item)
        return batch

    async def _execute(self, batch: list[_Item], loop: asyncio.AbstractEventLoop) -> None:
        rows = sum(item.n_rows for item in batch)
        stats = self.stats
        started = perf_counter()
        inline = self._runs_inline(rows)
        traced = _start_batch(batch, rows, inline) if self._traced else None
        if inline:
            queued_before = self._run_queue.seconds()
            outcomes = self._call(batch)
            elapsed = perf_counter() - started
            # What the call cost the loop: its wall time less the time the OS kept this
            # thread waiting for a CPU meanwhile (another process's turn, not the model's).
            self._observe(elapsed - (self._run_queue.seconds() - queued_before), rows, inline=True)
            stats.inline_batches += 1
            if any(item.log is not None for item in batch):
                _hand_to_logs(batch, outcomes)
        else:
            outcomes, seconds = await loop.run_in_executor(self.executor, self._timed_call, batch)
            elapsed = perf_counter() - started
            self._observe(seconds, rows, inline=False)
        stats.batches += 1
        stats.rows += rows
        stats.largest_batch = max(stats.largest_batch, rows)
        metrics = self._metrics
        queue_times = [started - item.enqueued for item in batch]
        stats.recent_queue_seconds.extend(queue_times)
        if traced is not None:
            traced.end(outcomes)
        if metrics is not None:
            metrics[0].observe(rows)
            observe_many(metrics[1], queue_times)
            metrics[2].observe(elapsed)
            metrics[3].inc(rows)
        for item, outcome, queued in zip(batch, outcomes, queue_times, strict=True):
            if item.future.done():  # the caller went away
                continue
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(_result((outcome[0], outcome[1], queued, elapsed, rows)))

    def _timed_call(self, batch: list[_Item]) -> tuple[list[Output | BaseException], float]:
        clock = self._worker_run_queue
        queued = clock.seconds()
        started = perf_counter()
        outcomes = self._call(batch)
        seconds = perf_counter() - started - (clock.seconds() - queued)
        # Logged here too, on the worker thread: encoding the answers of a call too slow
        # for the event loop (a large batch) is work the loop should not do either.
        if any(item.log is not None for item in batch):
            _hand_to_logs(batch, outcomes)
        return outcomes, seconds

    def _call(self, batch: list[_Item]) -> list[Output | BaseException]:
        """One vectorised call, split back by row ranges."""
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
        self.executor.shutdown(wait=True)


def _start_batch(batch: list[_Item], rows: int, inline: bool) -> Any:
    """The span of a batch that serves traced requests (``None`` if none is traced)."""
    traces = [item.trace for item in batch if item.trace is not None]
    return traces[0].tracing.start_batch(traces, rows, inline) if traces else None


def _hand_to_logs(batch: list[_Item], outcomes: list[Output | BaseException]) -> None:
    """Hand each log the answers it is owed, once per log; where a log fails, its
    requests get the failure instead of their answers."""
    owed: dict[AnswerLog, list[int]] = {}
    for i, item in enumerate(batch):
        answered = not isinstance(outcomes[i], BaseException)
        if item.log is not None and answered and not item.future.done():
            owed.setdefault(item.log, []).append(i)
    for log, indices in owed.items():
        try:
            log([(batch[i].note, outcomes[i]) for i in indices])  # type: ignore[misc]
        except Exception as exc:
            for i in indices:
                outcomes[i] = exc


def _concat(parts: list[Any]) -> Any:
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=0)
    import pandas as pd  # only a frame-fed model's batches: pandas stays off the start

    return pd.concat(parts, ignore_index=True)
