"""A benchmark child's memory: its RSS now and its peak RSS since a reset (Linux).

``ru_maxrss`` alone is not enough: Linux carries it over ``fork`` + ``exec``, so a child
started by a parent that had just built a large data set reports the parent's peak.
Writing ``5`` to ``/proc/self/clear_refs`` resets the kernel's high-water mark
(``VmHWM``), after which the peak is the child's own; where that is unavailable the
caller falls back to ``ru_maxrss`` and says so.
"""

from __future__ import annotations

import resource


def rss_now() -> int:
    """Resident set size of this process, in bytes."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize()


def reset_peak() -> bool:
    """Reset the peak-RSS mark; False when the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    """Peak RSS in bytes since the last :func:`reset_peak` (else since the start)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
