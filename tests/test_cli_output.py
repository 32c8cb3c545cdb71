"""What the CLI prints of user data cannot drive the terminal or restyle the output.

Free text (reasons, descriptions, tag values, key names, actors, alert summaries and
labels, endpoint fields) is stored with terminal escape sequences, a right-to-left
override and rich markup in it; every command that shows it runs as a real process, and
its output must show the text as text: no raw control character, the markup literal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from vigil.app import Vigil
from vigil.auth.keys import KeyStore
from vigil.console import shown
from vigil.experiments.config import parse_endpoint
from vigil.experiments.store import EndpointStore
from vigil.monitor.notify import fire_event
from vigil.monitor.settings import MonitorSettings
from vigil.settings import load_settings

# Sets the window title, clears the screen, then a markup tag and a right-to-left override.
EVIL = "\x1b]0;pwned\x07\x1b[2J[bold red]owned[/]\u202eevil"
MARKUP = "[bold red]owned[/]"
ESCAPED = r"\x1b]0;pwned\x07\x1b[2J"


def test_shown_makes_control_characters_and_markup_visible() -> None:
    assert shown(EVIL) == r"\x1b]0;pwned\x07\x1b[2J\[bold red]owned\[/]\u202eevil"
    assert shown("plain text, ünïcode and 日本語") == "plain text, ünïcode and 日本語"
    assert shown("two\nlines\ttab") == r"two\nlines\ttab"
    assert shown(None) == "" and shown(3) == "3"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose every free-text field holds EVIL."""
    root = tmp_path_factory.mktemp("evil-home")
    vigil = Vigil(load_settings(home=root, actor=EVIL))
    X, y = make_classification(
        n_samples=100, n_features=3, n_informative=2, n_redundant=0, random_state=0
    )
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = LogisticRegression().fit(frame, y)
    vigil.register(model, name="churn", description=EVIL, tags={"team": EVIL}, metrics={"auc": 0.9})
    vigil.register(model, name="churn", description=EVIL)
    vigil.registry.set_alias("churn", "production", 1, reason=EVIL)
    KeyStore.from_vigil(vigil).create("read", name=MARKUP)  # names must be printable
    fire_event(
        vigil,
        name="drift",
        severity="warning",
        summary=EVIL,
        labels={"model": "churn", "note": EVIL},
        settings=MonitorSettings(),
    )
    endpoint = {
        "name": "checkout",
        "variants": [
            {"name": "a", "model": "models:/churn@production"},
            {"name": "b", "model": "models:/churn/2"},
        ],
        "policy": {"kind": "split", "weights": {"a": 1, "b": 1}},
        "unit": {"header": EVIL},
    }
    EndpointStore(vigil).create(parse_endpoint(endpoint), actor=EVIL)
    return root


def vigil(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "VIGIL_HOME": str(home), "COLUMNS": "400"},
        timeout=120,
        check=False,
    )


def assert_inert(text: str) -> None:
    controls = [c for c in text if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) < 0xA0]
    assert not controls, repr(text[:300])
    assert "\u202e" not in text


@pytest.mark.parametrize(
    "command",
    [
        ["audit"],
        ["model", "show", "churn"],
        ["model", "show", "models:/churn/1"],
        ["key", "list"],
        ["alert", "list"],
        ["endpoint", "show", "checkout"],
        ["endpoint", "list"],
    ],
    ids=" ".join,
)
def test_user_text_is_printed_as_text(home: Path, command: list[str]) -> None:
    r = vigil(*command, home=home)
    assert r.returncode == 0, r.stderr
    assert_inert(r.stdout + r.stderr)
    assert ESCAPED in r.stdout and MARKUP in r.stdout, r.stdout


def test_an_error_quoting_user_input_is_printed_as_text(home: Path) -> None:
    r = vigil("alias", "set", "[red]x\x1b[2J", "production", "1", home=home)
    assert r.returncode == 1
    assert_inert(r.stdout + r.stderr)
    assert r.stderr.startswith("error: ") and "[red]x" in r.stderr, r.stderr


def test_piped_tables_do_not_wrap(tmp_path: Path) -> None:
    # Piped, rich folded every table at 80 columns: a long key name split across lines.
    name = "a-very-long-key-name-for-the-nightly-batch-scoring-job-of-the-churn-team"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["VIGIL_HOME"] = str(tmp_path / "home")
    run = [sys.executable, "-m", "vigil.cli"]
    made = subprocess.run(
        [*run, "key", "create", "--role", "read", "--name", name],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    listed = subprocess.run(
        [*run, "key", "list"], env=env, capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert any(name in line for line in listed.stdout.splitlines())
