"""Erase one person's predictions and their feedback (``vigil capture erase``).

The subject is named by ``FIELD=VALUE`` conditions (:class:`~vigil.capture.erase.Subject`:
all must hold; hashed fields are compared through the capture's keyed hash). Under the
compaction lock, so no compactor moves a file meanwhile:

1. the capture log is read to find the subject's rows (``request_id``, ``row``);
2. their feedback is removed from the feedback segments and partitions;
3. the rows themselves are removed from the capture segments and partitions.

Before that, running servers are asked to close their live segments (which only their
writers may touch) and waited for, at most ``wait`` seconds.

Feedback goes first: a run interrupted after it leaves the predictions, which the next
run finds again (with whatever feedback arrived since). Every file is rewritten crash
safely and re-chained (:mod:`vigil.capture.erase`). The result names the fields, counts
and files, never the values: it is what the audit records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from vigil.capture.compact import CAPTURE_ROOT
from vigil.capture.erase import (
    LogErasure,
    Subject,
    compaction_lock,
    erase_log,
    pairs_match,
    request_rotation,
    wait_for_rotation,
)
from vigil.capture.masking import Masker
from vigil.feedback.store import FEEDBACK_ROOT

if TYPE_CHECKING:
    from vigil.storage.artifacts import ArtifactStore

FEEDBACK_FIELDS = frozenset({"request_id", "caller"})
"""Fields of a feedback record a subject may be named by directly."""
MAX_FILES_AUDITED = 100
"""Files named in the audit entry (the count is always whole)."""


@dataclass(frozen=True)
class Erasure:
    """What :func:`erase_subject` removed."""

    fields: list[str]
    capture: LogErasure
    feedback: LogErasure

    @property
    def complete(self) -> bool:
        """Whether nothing of the subject is left in live segments of running writers."""
        return self.capture.live == 0 and self.feedback.live == 0

    def audit(self) -> dict[str, Any]:
        """The audit entry's content: fields, counts and files, never a value."""
        files = self.capture.files + self.feedback.files
        return {
            "fields": self.fields,
            "records": self.capture.records,
            "feedback_records": self.feedback.records,
            "files": len(files),
            "file_names": files[:MAX_FILES_AUDITED],
            "left_in_live_segments": self.capture.live + self.feedback.live,
        }


def erase_subject(
    where: Mapping[str, str],
    *,
    capture_dir: Path,
    feedback_dir: Path,
    store: ArtifactStore | None,
    masker: Masker | None = None,
    wait: float = 0.0,
    lock_timeout: float = 120.0,
    derived: Callable[[list[str]], None] | None = None,
) -> Erasure:
    """Remove the records ``where`` names, and their feedback (see the module docstring),
    after asking running servers to close their live segments and waiting for them at
    most ``wait`` seconds. ``derived`` is called with the files about to be rewritten
    (segment names, store keys) before any is, to delete what was derived from them."""
    subject = Subject(where, masker)
    if wait > 0:
        live = request_rotation(capture_dir) + sorted(feedback_dir.glob("*.open"))
        wait_for_rotation(live, wait)
    rows: set[tuple[str, int]] = set()

    def seen(record: Mapping[str, Any]) -> None:
        rows.add((str(record.get("request_id")), int(record.get("row") or 0)))

    with compaction_lock(capture_dir, timeout=lock_timeout):
        found = erase_log(
            capture_dir,
            "capture",
            store,
            CAPTURE_ROOT,
            record=subject.record,
            table=subject.table,
            dry_run=True,
            seen=seen,
        )
        if derived is not None and found.files:
            # What is derived from the files about to change (the monitor's stored part
            # summaries) goes first: a crash after it only costs a rebuild.
            derived(found.files)
        by_row, by_row_table = pairs_match(rows)
        record, table = by_row, by_row_table
        if set(subject.fields) <= FEEDBACK_FIELDS:
            # Named by fields feedback has too: its own rows match even when their
            # prediction is gone already (expired, or erased by an earlier run).
            def record(r: Mapping[str, Any]) -> bool:
                return by_row(r) or subject.record(r)

            def table(t: pa.Table) -> pa.Array | pa.ChunkedArray:
                return pc.or_(by_row_table(t), subject.table(t))

        feedback = erase_log(
            feedback_dir, "feedback", store, FEEDBACK_ROOT, record=record, table=table
        )
        capture = erase_log(
            capture_dir, "capture", store, CAPTURE_ROOT, record=subject.record, table=subject.table
        )
    return Erasure(subject.fields, capture, feedback)
