"""Bulk feedback from a file: CSV, Parquet or JSON Lines with ``request_id`` and a label or reward."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

from vigil.errors import ValidationError
from vigil.feedback.record import FIELD_PREFIX, FeedbackRecord, check_feedback
from vigil.file_formats import ROWS, format_of


def _clean(value: Any) -> Any:
    # Empty CSV cells and missing JSON keys arrive as NaN/None: they mean "not given".
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def load_feedback_file(path: str | Path) -> list[FeedbackRecord]:
    """Read and validate every feedback row of ``path`` (``.csv``, ``.parquet``, ``.jsonl``).

    Columns: ``request_id`` (required), ``row`` (default 0), ``label`` and/or ``reward``,
    ``time`` (optional, ISO 8601 with a time zone), and a column ``field.<name>`` for each
    feedback field (see :mod:`vigil.feedback.record`; an empty cell: not given). A bad row raises
    :class:`~vigil.errors.ValidationError` naming its line; nothing is returned then.
    """
    # pandas: only when a frame is built
    import pandas as pd

    path = Path(path)
    kind = format_of(path, ROWS, what="feedback file ")
    if kind == "csv":
        frame = pd.read_csv(path, dtype={"request_id": str})
    elif kind == "parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_json(path, lines=True, dtype={"request_id": str})
    if "request_id" not in frame.columns:
        raise ValidationError(
            f"{path.name} has no request_id column (found {list(frame.columns)[:10]})",
            detail={"field": "request_id"},
        )
    if "label" not in frame.columns and "reward" not in frame.columns:
        raise ValidationError(
            f"{path.name} needs a label or a reward column (found {list(frame.columns)[:10]})",
            detail={"field": "label"},
        )
    columns = [c for c in ("request_id", "row", "label", "reward", "time") if c in frame.columns]
    named = [c for c in frame.columns if isinstance(c, str) and c.startswith(FIELD_PREFIX)]
    records = []
    rows = frame[columns + named].itertuples(index=False, name=None)
    for line, values in enumerate(rows, start=1):
        item = {c: _clean(v) for c, v in zip(columns, values, strict=False)}
        fields = {
            c[len(FIELD_PREFIX) :]: _clean(v)
            for c, v in zip(named, values[len(columns) :], strict=True)
        }
        if any(v is not None for v in fields.values()):
            item["fields"] = {k: v for k, v in fields.items() if v is not None}
        if isinstance(item.get("time"), pd.Timestamp):
            item["time"] = item["time"].to_pydatetime()
        if kind == "csv" and isinstance(item.get("reward"), str):
            # CSV is all text: a column with one bad cell arrives as strings, so parse here.
            # Left as text when it is not a number: check_feedback names the line and value.
            with contextlib.suppress(ValueError):
                item["reward"] = float(item["reward"])
        if isinstance(item.get("row"), float) and item["row"].is_integer():
            item["row"] = int(item["row"])
        try:
            records.append(check_feedback(item))
        except ValidationError as exc:
            raise ValidationError(
                f"{path.name} line {line}: {exc.message}", detail=exc.detail
            ) from None
    return records
