"""Debian's headless Chromium run once per page (``--dump-dom``, ``--screenshot``), as the
browser tests of static pages (reports, model cards, console pages) run it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(
    args: list[str], profile: Path, *, window: str = "1280,2400"
) -> subprocess.CompletedProcess[str]:
    """Chromium with ``args`` in its own ``profile`` directory (fails the test when it is
    not installed: `make test` installs it as root)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run `make test` as root (it installs chromium)")
    return subprocess.run(
        [found, *FLAGS, f"--window-size={window}", f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
