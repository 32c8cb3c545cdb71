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
# timestamps), wall-clock times, the policy run's id (its start time and a random suffix),
# and how many of the live requests of the loop's shadow and canary arrived before the
# server's loops looked (the bounds they met are the same every run).
_VOLATILE = [
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "DIGEST"),
    (re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"), "TIME"),
    (re.compile(r"\b\d{8}T\d{6}-[0-9a-f]{8}\b"), "RUN"),
    (re.compile(r"\d+ copies answered"), "N copies answered"),
    (re.compile(r"served version \d+\.\d%"), "served version N%"),
    (re.compile(r"after \d+ of its requests"), "after N of its requests"),
    (re.compile(r"\d+ requests went through"), "N requests went through"),
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
    assert "registered models:/breast-cancer/3 as 'challenger'" in out
    assert "identical to the trained object: True" in out
    assert out.count("identical to the model: True") == 3
    # monitoring: two windows of the held-out rows, the second drifting on exactly the
    # eight shifted features with the accuracy alert delivered, ...
    assert "0 of 30" in out and "8 of 30" in out
    assert "alert firing accuracy_drop" in out
    _check_the_loop(out)
    # an experiment over 600 users whose split is the same every run.
    split = re.search(r"600 requests from 600 users \(a (\d+), b (\d+)\)", out)
    assert split is not None and int(split[1]) + int(split[2]) == 600
    # The table counts exactly those requests (the demo's wait for the endpoint is one of
    # them, not an extra request).
    requests_row = re.search(r"│ requests +│ (\d+) +│ (\d+) +│", out)
    assert requests_row is not None and requests_row.groups() == split.groups()
    assert "checkout: split experiment" in out and "P(best)" in out
    assert "split check (SRM)" in out
    # Written to a pipe, prose is never folded mid-sentence.
    assert re.search(r"endpoint checkout: split 50/50 .* sticky by the X-Unit-ID header\n", out)
    assert re.search(
        r"policy.triggered triggered by the alert accuracy_drop .*\(alert below -0.05\)\n", out
    )

    # Every command it suggests works as printed.
    suggested = out.split("next, look around what the demo left in", 1)[1].splitlines()[1:]
    assert suggested[0] == f"  export VIGIL_HOME={demo_home}"
    commands = [shlex.split(line) for line in suggested[1:] if line.startswith("  ")]
    assert len(commands) == 7
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
        if command[1:3] == ["policy", "status"]:
            assert "promoted" in done.stdout and "production is now version 2" in done.stdout
        if command[1] == "card":  # the demo model's card, every section filled
            assert "- **Owner:** vigil demo team" in done.stdout
            assert "| production | set | 1 | 2 |" in done.stdout, done.stdout
            assert "| accuracy\\_drop | firing |" in done.stdout, done.stdout
    # vigil is not on this PATH: the demo says how to put it there.
    assert "puts vigil on your PATH" in suggested[-2]
    # It ends with the web console's address and how to sign in.
    assert suggested[-1].startswith("the web console: run ")
    assert (
        "http://127.0.0.1:8000/ui" in suggested[-1] and "key create --role admin" in suggested[-1]
    )


_LOOP = [
    "policy.set",
    "policy.triggered",
    "policy.exporting",
    "policy.training",
    "policy.gating",
    "policy.shadow",
    "policy.canary",
    "canary.start",
    "canary.advance",
    "canary.promote",
    "policy.promoted",
]
"""The audit trail of the demo's policy run: every transition, in order."""


def _check_the_loop(out: str) -> None:
    """Step 6: the alert starts the update policy's run, which ends promoted; the numbers
    printed as it goes agree with each other and with the tables."""
    loop = out.split("6. the loop:", 1)[1].split("7. an A/B experiment", 1)[0]
    window = int(re.search(r"(\d+) held-out rows as they are", out)[1])  # type: ignore[index]
    export = re.search(
        r"exported (\d+) rows to train on and held (\d+) out for the gate: (\d+) labelled of "
        r"(\d+) answered rows \(label coverage ([\d.]+)%\)",
        loop,
    )
    assert export is not None, loop
    rows, held, labelled, answered = (int(x) for x in export.groups()[:4])
    # Every labelled row of step 5 (both phases), split between training and the gate.
    assert labelled == 2 * window and rows + held == labelled and 0 < held < labelled
    assert export[5] == f"{100 * labelled / answered:.1f}"
    assert "training: python -m vigil.demo.retrain" in loop
    assert "the job registered models:/breast-cancer/2 as the candidate" in loop
    gate = re.search(
        r"gate passed on (\d+) held-out replayed rows: accuracy ([\d.]+) served, ([\d.]+) "
        r"candidate \(McNemar p ([\d.e+-]+); at least \+0.02 needed\)",
        loop,
    )
    assert gate is not None, loop
    assert int(gate[1]) == held
    assert float(gate[3]) >= float(gate[2]) + 0.02 and float(gate[4]) < 0.05
    shadow = re.search(r"shadow passed: (\d+) copies answered, errors 0.0%", loop)
    assert shadow is not None and int(shadow[1]) >= 20, loop
    assert "100% of users after" in loop and "alias production moved to version 2" in loop
    assert "promoted: models:/breast-cancer/2 serves production, in place of version 1" in loop
    # Each transition was printed as it happened, and is in the audit trail, in order.
    printed = re.findall(r"^   ((?:policy|canary)\.[a-z_]+) ", loop, flags=re.MULTILINE)
    trail = loop.split("Audit trail of policy run", 1)[1].split("the run ended", 1)[0]
    audited = re.findall(r"^│ [^│]+│ [^│]+│ ((?:policy|canary)\.[a-z_]+) +│", trail, re.MULTILINE)
    assert audited == _LOOP, trail
    assert printed == _LOOP[1:], loop
    assert "the run ended promoted; models:/breast-cancer@production is version 2;" in loop
    versions = loop.split("Versions of breast-cancer", 1)[1]
    assert re.search(r"│ 1 +│ sklearn │ +│", versions), versions
    assert re.search(r"│ 2 +│ sklearn │ production +│", versions), versions


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
