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
"""

from __future__ import annotations

import gc

_enabled = False


def enable() -> None:
    """Let :func:`settle` act in this process."""
    global _enabled
    _enabled = True


def settle() -> bool:
    """Collect, then freeze what survives, if :func:`enable` was called; whether it did."""
    if not _enabled:
        return False
    gc.collect()
    gc.freeze()
    return True
