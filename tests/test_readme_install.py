"""README's "Install" table names every extra pyproject.toml defines, with what it installs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def test_the_install_table_lists_every_extra_and_its_packages():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Install\n", 1)[1].split("\n## ", 1)[0]
    rows = {
        m[1]: m[2] for m in re.finditer(r"^\| `([a-z0-9]+)` \| ([^|]*) \|", section, re.MULTILINE)
    }
    assert sorted(rows) == sorted(extras)
    for extra, requirements in extras.items():
        for requirement in requirements:
            name = _requirement_name(requirement)
            if name == "vigil":  # another extra: named by its own row
                continue
            if extra == "dev":
                continue  # "the test, lint and benchmark tools"
            assert name in rows[extra].lower(), (extra, name, rows[extra])
    # The demo installs what it runs: the server, nothing of the test tools.
    assert extras["demo"] == ["vigil[serve]"]
