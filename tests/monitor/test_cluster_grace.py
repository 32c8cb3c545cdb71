"""A server on a shared database says when its monitoring windows would become final before
other replicas' predictions reach the store (tests/cluster runs replicas that agree)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vigil.app import Vigil
from vigil.settings import load_settings

SHARED = "postgresql+psycopg://vigil@127.0.0.1:1/never-connected"


def _schedule(home: Path, database_url: str | None, caplog: pytest.LogCaptureFixture) -> str:
    with caplog.at_level(logging.WARNING, logger="vigil.monitor"):
        assert Vigil(load_settings(home=home, database_url=database_url)).monitor_scheduler()
    return caplog.text


def test_the_defaults_on_a_shared_database_are_named(tmp_path: Path, caplog) -> None:
    said = _schedule(tmp_path, SHARED, caplog)
    assert "VIGIL_MONITOR_GRACE_S" in said and "3660 s" in said  # one-hour segments + 60 s


def test_a_grace_longer_than_compaction_says_nothing(
    tmp_path: Path, caplog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_CAPTURE_SEGMENT_SECONDS", "30")
    monkeypatch.setenv("VIGIL_CAPTURE_COMPACT_INTERVAL_S", "20")
    monkeypatch.setenv("VIGIL_MONITOR_GRACE_S", "90")
    assert _schedule(tmp_path, SHARED, caplog) == ""


def test_the_embedded_database_has_no_other_replica(tmp_path: Path, caplog) -> None:
    assert _schedule(tmp_path, None, caplog) == ""
