"""The demo's own home: a fresh directory every run, never the user's ``VIGIL_HOME``.

Each run starts from an empty home (a directory the demo made before is emptied; any other
non-empty directory is refused), with every ``VIGIL_*`` setting of the caller's
environment and any ``./vigil.yaml`` left out, so the story it tells is the same on every
run and on every machine. Only ``--database-url`` brings an outside database in.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT = Path("vigil-demo")
"""Where the demo keeps its state by default: under the working directory."""
MARKER = ".vigil-demo"
"""A file the demo leaves in its home, so a rerun knows the directory is its own."""


def prepare(home: Path) -> Path:
    """Make ``home`` an empty demo home (absolute); refuse a directory the demo did not
    make that holds anything."""
    home = home.expanduser().absolute()
    if home.exists():
        if not home.is_dir():
            raise SystemExit(f"demo: {home} is not a directory; choose another --home")
        if (home / MARKER).is_file():
            shutil.rmtree(home)
        elif any(home.iterdir()):
            raise SystemExit(
                f"demo: {home} holds files the demo did not make; it only uses a new or empty "
                "directory (or its own from an earlier run): choose another --home"
            )
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text("made by `vigil demo`, which empties this directory on each run\n")
    (home / "vigil.yaml").write_text("# the demo runs on vigil's defaults\n")
    return home


@contextmanager
def environment(home: Path, database_url: str | None) -> Iterator[dict[str, str]]:
    """Point this process and the demo's children at ``home`` alone, for the duration."""
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("VIGIL_")]:
        del os.environ[key]
    os.environ["VIGIL_HOME"] = str(home)
    # An empty config file: a vigil.yaml in the working directory does not reach the demo.
    os.environ["VIGIL_CONFIG"] = str(home / "vigil.yaml")
    if database_url:
        os.environ["VIGIL_DATABASE_URL"] = database_url
    try:
        yield dict(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def vigil_command() -> str:
    """How to run ``vigil`` from the caller's shell: ``vigil`` when that is this
    installation's script on the PATH, else the script's full path."""
    script = Path(sys.executable).parent / "vigil"
    if not script.is_file():
        return f"{sys.executable} -m vigil.cli"
    on_path = shutil.which("vigil")
    if on_path is not None and Path(on_path).resolve() == script.resolve():
        return "vigil"
    return str(script)


def activate_hint() -> str | None:
    """How to put ``vigil`` on the PATH, when it is not there."""
    if vigil_command() == "vigil":
        return None
    activate = Path(sys.prefix) / "bin" / "activate"
    if sys.prefix != sys.base_prefix and activate.is_file():
        return f"`source {activate}` puts vigil on your PATH"
    return None
