"""Short garbage-collector pauses in a long-running server: :func:`settle`.

Everything a serving worker builds before it takes traffic (imported modules, models,
caches) lives as long as the process, yet CPython's full collections scan all of it every
time: hundreds of thousands of objects once scikit-learn and pandas are imported, a pause
of 40-90 ms that lands on whatever requests are in flight (settling took the p99 at 128
connections from 85-91 ms to 12-17 ms, see docs/benchmarks.md).
:func:`settle` collects once, then moves every object alive to the permanent generation
(:func:`gc.freeze`), so later collections scan only what requests allocate.

It acts only in a process that asked for it (:func:`enable`: ``vigil serve`` workers): an
application that embeds vigil's app keeps its own collector policy. Parts that import a
heavy stack lazily (the capture's feedback store, the first monitoring cycle) call it
again once they have.

For the same reason a ``vigil serve`` worker starts with the collector off (:func:`pause`,
until :func:`settle` at ready turns it back on): on the way to ready nearly everything
allocated (modules, classes, the model) lives for good, so the collections that the
imports of scikit-learn, SQLAlchemy and pydantic trigger find next to nothing to free, and
scan more each time. With them off a skops worker reached ready on 0.92x the CPU (1.80 s
against 1.96 s; docs/benchmarks.md, "Cold start").

At ready the heap is frozen without a collection first (``settle(collect=False)``, as
CPython's documentation of :func:`gc.freeze` advises: collector off early, freeze without
collecting). A full collection there would scan everything start-up built to free almost
nothing: for a skops worker 0.15 s of CPU over 204,000 objects to free 1,331 (tuples,
functions, cells, classes that imports made and dropped; 0.76 MB, the same at every
start). Those few are frozen with the rest, for the life of the process.

:func:`limit_arenas` keeps a serving worker's resident memory from creeping up: glibc
gives each thread that allocates its own malloc arena (up to eight per core), and memory
freed in one (a monitoring cycle's tables, a compaction's records, both built on worker
threads) stays mapped there for that thread's next peak, so the worker's RSS ratchets up
cycle after cycle. Two arenas are enough: the event loop does the hot path's allocating on
one thread. In a five-minute soak the cap alone took the growth after warm-up from about
+26 % to +5.7 % (docs/benchmarks.md, "Soak").
"""

from __future__ import annotations

import ctypes
import gc

_enabled = False
_paused = False
_M_ARENA_MAX = -8  # glibc's <malloc.h>
SERVING_ARENAS = 2


def enable() -> None:
    """Let :func:`settle` act in this process."""
    global _enabled
    _enabled = True


def settle(*, collect: bool = True) -> bool:
    """Collect (unless ``collect`` is false), then freeze what survives, if :func:`enable`
    was called; whether it did. Either way the collector runs again if :func:`pause`
    stopped it."""
    if not _enabled:
        resume()
        return False
    if collect:
        gc.collect()
    gc.freeze()
    resume()
    return True


def pause() -> None:
    """Turn the collector off until :func:`settle` or :func:`resume` (a serving worker's
    start, see the module docstring); a no-op if it is off already (someone else's
    choice, which :func:`resume` then leaves alone)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Turn the collector back on if :func:`pause` turned it off."""
    global _paused
    if _paused:
        _paused = False
        gc.enable()


def limit_arenas(count: int = SERVING_ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``count`` for this process (threads started from now on
    share them); whether it did. A no-op where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_ARENA_MAX, count))
