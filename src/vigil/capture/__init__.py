"""Capture: the durable inference log (append, compact to Parquet, mask, read back).

The serving glue (sink, feedback store and compactor of one worker) is
:class:`vigil.capture.runtime.CaptureRuntime`, imported from its module.
"""

from __future__ import annotations

from vigil.capture.compact import CompactionResult, apply_retention, compact
from vigil.capture.compactor import Compactor
from vigil.capture.group import GroupCommit
from vigil.capture.log import SegmentLog, read_segment
from vigil.capture.lookup import Captured, CaptureLookup
from vigil.capture.masking import Masker
from vigil.capture.reader import read_capture, read_capture_table
from vigil.capture.record import CaptureRecord
from vigil.capture.settings import CaptureSettings
from vigil.capture.sink import Answered, CaptureSink

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
    "compact",
    "read_capture",
    "read_capture_table",
    "read_segment",
]
