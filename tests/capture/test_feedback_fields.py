"""Feedback ``fields``: masked by the capture's rules before they are stored, kept through
compaction, and read from a bulk file's ``field.<name>`` columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from vigil.capture.masking import MASKED, Masker
from vigil.errors import ValidationError
from vigil.feedback import FeedbackStore, check_feedback, load_feedback_file
from vigil.storage.artifacts import ArtifactStore


def test_fields_are_masked_stored_and_compacted(tmp_path: Path) -> None:
    masker = Masker({"band": "mask", "zip": "drop", "email": "hash"}, hash_key="k")
    store = FeedbackStore(
        tmp_path / "feedback", store=ArtifactStore(str(tmp_path / "store")), masker=masker
    )
    try:
        items = [
            {"request_id": "a", "label": 1, "fields": {"band": "x", "zip": "75001", "n": 3}},
            {"request_id": "b", "label": 0, "fields": {"email": "ann@example.com"}},
            {"request_id": "c", "reward": 1.0},
        ]
        assert store.submit(items).accepted == 3
        live = store.read().set_index("request_id")
        store.log.rotate()
        assert store.compact().rows == 3
        compacted = store.read().set_index("request_id")
    finally:
        store.close()
    for frame in (live, compacted):
        assert frame.loc["a", "field.band"] == MASKED and "field.zip" not in frame
        assert frame.loc["a", "field.n"] == 3
        assert frame.loc["b", "field.email"] == masker.hash_value("ann@example.com")
        assert pd.isna(frame.loc["c", "field.band"])
    segments = list((tmp_path / "feedback").rglob("*"))
    assert not any(b"75001" in p.read_bytes() for p in segments if p.is_file())


def test_bad_fields_name_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="invalid field name") as caught:
        check_feedback({"request_id": "a", "label": 1, "fields": {"a b": 1}})
    assert caught.value.detail["field"] == "fields"
    with pytest.raises(ValidationError, match="must be a JSON scalar") as caught:
        check_feedback({"request_id": "a", "label": 1, "fields": {"x": float("nan")}})
    assert caught.value.detail["field"] == "fields.x"
    # Fields alone are no feedback: the first item of a row wins, so a label must come along.
    with pytest.raises(ValidationError, match="give a label"):
        check_feedback({"request_id": "a", "fields": {"x": 1}})


def test_a_bulk_file_carries_fields_in_field_columns(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["a", "b"], "label": [1, 0], "field.band": ["x", None]}).to_csv(
        path, index=False
    )
    records = load_feedback_file(path)
    assert [r.fields for r in records] == [{"band": "x"}, None]
