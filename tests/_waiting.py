"""Waiting in tests for something to happen: poll a condition, never sleep a fixed time.

A fixed sleep is a guess at how long something takes, and a loaded two-core CI machine
proves every guess short some day; a condition is right on any machine, and fast on an
idle one. Every test that waits uses :func:`wait_for`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    check: Callable[[], T],
    timeout: float = 60.0,
    *,
    what: str | Callable[[], str] = "the condition",
    interval: float = 0.05,
) -> T:
    """Poll ``check`` until it returns something true and return that; fail after
    ``timeout`` seconds, saying ``what`` was awaited (a function is asked only then, so it
    can report the state at the time, such as a server's log)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {said}")
        time.sleep(interval)
