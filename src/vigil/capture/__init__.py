"""Capture: the durable inference log (append, compact to Parquet, mask, read back).

The serving glue (sink, feedback store and compactor of one worker) is
:class:`vigil.serving.capture_runtime.CaptureRuntime`, built by the composition root.

The names below are imported on first use: a serving worker imports the sink, and must not
pay for PyArrow (compaction, reading back) on its way to ready. (The compaction function
is ``vigil.capture.compact.compact``: here ``compact`` names its module.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vigil._lazy import lazy_exports

if TYPE_CHECKING:
    from vigil.capture.compact import CompactionResult, apply_retention
    from vigil.capture.compactor import Compactor
    from vigil.capture.group import GroupCommit
    from vigil.capture.log import SegmentLog, read_segment
    from vigil.capture.lookup import Captured, CaptureLookup
    from vigil.capture.masking import Masker
    from vigil.capture.reader import read_capture, read_capture_table
    from vigil.capture.record import CaptureRecord
    from vigil.capture.settings import CaptureSettings
    from vigil.capture.sink import Answered, CaptureSink

_MODULES = {
    "Answered": "sink",
    "CaptureLookup": "lookup",
    "CaptureRecord": "record",
    "CaptureSettings": "settings",
    "CaptureSink": "sink",
    "Captured": "lookup",
    "CompactionResult": "compact",
    "Compactor": "compactor",
    "GroupCommit": "group",
    "Masker": "masking",
    "SegmentLog": "log",
    "apply_retention": "compact",
    "read_capture": "reader",
    "read_capture_table": "reader",
    "read_segment": "log",
}
__all__ = [
    "Answered",
    "CaptureLookup",
    "CaptureRecord",
    "CaptureSettings",
    "CaptureSink",
    "Captured",
    "CompactionResult",
    "Compactor",
    "GroupCommit",
    "Masker",
    "SegmentLog",
    "apply_retention",
    "read_capture",
    "read_capture_table",
    "read_segment",
]


__getattr__ = lazy_exports(__name__, _MODULES)
