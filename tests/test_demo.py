"""``make demo`` as a new user runs it: in a clean copy of the tree, twice, with HOME and
VIGIL_HOME pointed at directories of the test's own.

As close to "a fresh clone" as CI allows: the virtual environment already exists (the
one running these tests), so ``make`` is told it is installed; everything else is the
real target. The demo must keep its state in its own home (not ``VIGIL_HOME``, not
``~/.vigil``), tell the same story on the second run as on the first, and every command it
suggests at its end must work when pasted.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# What differs between two honest runs: ports, content digests (skops files carry zip
# timestamps), wall-clock times.
_VOLATILE = [
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "DIGEST"),
    (re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"), "TIME"),
]


def _copy_tree(dest: Path) -> None:
    """The files git tracks (a clone's content), or the tree without build products."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
        ).stdout.decode()
        files = [f for f in listed.split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
    if not files:
        shutil.copytree(
            REPO,
            dest,
            ignore=shutil.ignore_patterns(
                ".git", ".venv*", "__pycache__", "*_cache", "vigil-demo", ".venvs"
            ),
        )
        return
    for name in files:
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, dest / name)


def _story(output: str) -> str:
    for pattern, replacement in _VOLATILE:
        output = pattern.sub(replacement, output)
    return output


def _make_demo(tree: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    venv = Path(sys.prefix)
    # The venv is installed: its stamps are newer than what they depend on. Both are
    # named, so `make` can never install into the venv running the tests.
    day_ago = time.time() - 86400
    for name in ("pyproject.toml", "constraints.txt"):
        os.utime(tree / name, (day_ago, day_ago))
    stamps = {"STAMP": tree / ".installed", "DEMO_STAMP": tree / ".installed-demo"}
    for stamp in stamps.values():
        stamp.touch()
    return subprocess.run(
        ["make", "--no-print-directory", "demo", f"VENV={venv}"]
        + [f"{name}={path}" for name, path in stamps.items()],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_make_demo_twice_in_a_clean_tree_tells_the_same_story(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.fail("make is not installed (Debian: apt-get install make)")
    tree, home, user_vigil = tmp_path / "clone", tmp_path / "home", tmp_path / "users-vigil"
    tree.mkdir()
    home.mkdir()
    _copy_tree(tree)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VIGIL_", "MAKE", "XDG_")) and k != "MFLAGS"
    }
    venv_bin = str(Path(sys.prefix) / "bin")
    env |= {
        # A new user's shell: the venv's scripts are not on the PATH.
        "PATH": os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin),
        "HOME": str(home),
        "VIGIL_HOME": str(user_vigil),  # the user's own home: the demo must leave it alone
        "PYTHONPATH": str(tree / "src"),  # the copy's code, through the existing venv
    }

    first = _make_demo(tree, env)
    assert first.returncode == 0, first.stderr[-3000:]
    second = _make_demo(tree, env)
    assert second.returncode == 0, second.stderr[-3000:]

    demo_home = tree / "vigil-demo"
    assert f"home: {demo_home} (the demo's own" in first.stdout
    assert (demo_home / "vigil.db").is_file()
    assert (demo_home / "reports" / "breast-cancer.html").is_file()
    assert not user_vigil.exists() and not (home / ".vigil").exists()

    # The same story, line for line, once ports, digests and clock times are set aside.
    assert _story(second.stdout) == _story(first.stdout)
    out = second.stdout
    # ... and the story is the demo's whole one: a fresh version 1 and challenger 2, ...
    assert "registered models:/breast-cancer/1 (sklearn" in out
    assert "registered models:/breast-cancer/2 as 'challenger'" in out
    assert "identical to the trained object: True" in out
    assert out.count("identical to the model: True") == 3
    # monitoring: two windows of the held-out rows, the second drifting on exactly the
    # eight shifted features with the accuracy alert delivered, ...
    assert "0 of 30" in out and "8 of 30" in out
    assert "alert firing accuracy_drop" in out
    # an experiment over 600 users whose split is the same every run.
    split = re.search(r"600 requests from 600 users \(v1 (\d+), v2 (\d+)\)", out)
    assert split is not None and int(split[1]) + int(split[2]) == 600
    # The table counts exactly those requests (the demo's wait for the endpoint is one of
    # them, not an extra request).
    requests_row = re.search(r"│ requests +│ (\d+) +│ (\d+) +│", out)
    assert requests_row is not None and requests_row.groups() == split.groups()
    assert "checkout: split experiment" in out and "P(best)" in out
    assert "split check (SRM)" in out
    # Written to a pipe, prose is never folded mid-sentence.
    assert re.search(r"endpoint checkout: split 50/50 .* sticky by the X-Unit-ID header\n", out)

    # Every command it suggests works as printed.
    suggested = out.split("next, look around what the demo left in", 1)[1].splitlines()[1:]
    assert suggested[0] == f"  export VIGIL_HOME={demo_home}"
    commands = [shlex.split(line) for line in suggested[1:] if line.startswith("  ")]
    assert len(commands) == 5
    for command in commands:
        assert Path(command[0]).is_absolute() and os.access(command[0], os.X_OK), command
        done = subprocess.run(
            command,
            env={**env, "VIGIL_HOME": str(demo_home)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (command, done.stderr)
        assert "breast-cancer" in done.stdout or "accuracy_drop" in done.stdout, done.stdout
    # vigil is not on this PATH: the demo says how to put it there.
    assert "puts vigil on your PATH" in suggested[-1]


def test_the_demo_refuses_a_home_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "demo", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"demo: {tmp_path} holds files the demo did not make; it only uses a new or empty "
        "directory (or its own from an earlier run): choose another --home"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
