"""Capture: the durable inference log (append, compact to Parquet, mask, read back)."""

from __future__ import annotations

from vigil.capture.compact import CompactionResult, apply_retention, compact
from vigil.capture.log import SegmentLog, read_segment
from vigil.capture.masking import Masker
from vigil.capture.reader import read_capture, read_capture_table
from vigil.capture.record import CaptureRecord
from vigil.capture.settings import CaptureSettings
from vigil.capture.sink import CaptureSink

__all__ = [
    "CaptureRecord",
    "CaptureSettings",
    "CaptureSink",
    "CompactionResult",
    "Masker",
    "SegmentLog",
    "apply_retention",
    "compact",
    "read_capture",
    "read_capture_table",
    "read_segment",
]
