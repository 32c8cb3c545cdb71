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

A subject named by a feedback item's field (``field.<name>``, as the feedback store holds
it; with ``request_id`` or ``caller`` beside it, if at all) is found the other way round:

1. the feedback log is read to find the items carrying the value (``request_id``, ``row``);
2. the predictions they judge are removed from the capture segments and partitions;
3. those items are removed, with any other feedback on the same predictions.

Here the predictions go first, since the feedback is what ties them to the subject: a run
interrupted after them leaves the feedback, and the next run finds it again.
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
    RecordMatch,
    Subject,
    TableMatch,
    compaction_lock,
    erase_log,
    pairs_match,
    request_rotation,
    wait_for_rotation,
)
from vigil.capture.masking import Masker
from vigil.errors import ValidationError
from vigil.feedback.record import FIELD_PREFIX
from vigil.feedback.store import FEEDBACK_ROOT

if TYPE_CHECKING:
    from vigil.storage.artifacts import ArtifactStore

FEEDBACK_FIELDS = frozenset({"request_id", "caller"})
"""Fields of a feedback record a subject may be named by directly."""
_FEEDBACK_NESTED = {FIELD_PREFIX: "fields"}
"""A feedback item's ``fields``: an object ``fields`` in its record, ``field.<name>`` columns
in a part."""
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
    by_feedback = any(name.startswith(FIELD_PREFIX) for name in where)
    if by_feedback:
        subject = Subject(where, masker, nested=_FEEDBACK_NESTED)
        other = sorted(
            n for n in where if not n.startswith(FIELD_PREFIX) and n not in FEEDBACK_FIELDS
        )
        if other:
            raise ValidationError(
                f"a subject named by a feedback field ({FIELD_PREFIX}<name>) is found in the "
                f"feedback log, which does not hold {', '.join(other)}: name it by feedback "
                f"fields (and request_id or caller) only, or erase by {other[0]} in another run",
                detail={"fields": other},
            )
    else:
        subject = Subject(where, masker)
    if wait > 0:
        live = request_rotation(capture_dir) + sorted(feedback_dir.glob("*.open"))
        wait_for_rotation(live, wait)
    rows: set[tuple[str, int]] = set()

    def seen(record: Mapping[str, Any]) -> None:
        rows.add((str(record.get("request_id")), int(record.get("row") or 0)))

    if by_feedback:
        return _erase_by_feedback(
            subject,
            rows,
            seen,
            capture_dir=capture_dir,
            feedback_dir=feedback_dir,
            store=store,
            lock_timeout=lock_timeout,
            derived=derived,
        )
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
            record, table = _either(by_row, by_row_table, subject)
        feedback = erase_log(
            feedback_dir, "feedback", store, FEEDBACK_ROOT, record=record, table=table
        )
        capture = erase_log(
            capture_dir, "capture", store, CAPTURE_ROOT, record=subject.record, table=subject.table
        )
    return Erasure(subject.fields, capture, feedback)


def _erase_by_feedback(
    subject: Subject,
    rows: set[tuple[str, int]],
    seen: Callable[[Mapping[str, Any]], None],
    *,
    capture_dir: Path,
    feedback_dir: Path,
    store: ArtifactStore | None,
    lock_timeout: float,
    derived: Callable[[list[str]], None] | None,
) -> Erasure:
    """:func:`erase_subject` for a subject named by feedback fields (the module's second
    list): ``seen`` adds each matching feedback item's ``(request_id, row)`` to ``rows``."""
    with compaction_lock(capture_dir, timeout=lock_timeout):
        erase_log(
            feedback_dir,
            "feedback",
            store,
            FEEDBACK_ROOT,
            record=subject.record,
            table=subject.table,
            dry_run=True,
            seen=seen,
        )
        by_row, by_row_table = pairs_match(rows)
        if derived is not None:
            found = erase_log(
                capture_dir,
                "capture",
                store,
                CAPTURE_ROOT,
                record=by_row,
                table=by_row_table,
                dry_run=True,
            )
            if found.files:
                derived(found.files)
        capture = erase_log(
            capture_dir, "capture", store, CAPTURE_ROOT, record=by_row, table=by_row_table
        )
        record, table = _either(by_row, by_row_table, subject)
        feedback = erase_log(
            feedback_dir, "feedback", store, FEEDBACK_ROOT, record=record, table=table
        )
    return Erasure(subject.fields, capture, feedback)


def _either(
    by_row: RecordMatch, by_row_table: TableMatch, subject: Subject
) -> tuple[RecordMatch, TableMatch]:
    """Matchers of a record (and of a table's rows) that one of the ``(request_id, row)``
    pairs names, or the subject does."""

    def record(r: Mapping[str, Any]) -> bool:
        return by_row(r) or subject.record(r)

    def table(t: pa.Table) -> pa.Array | pa.ChunkedArray:
        return pc.or_(by_row_table(t), subject.table(t))

    return record, table
