"""The package graph points one way and the layout explains itself.

No cycle between vigil's top-level packages (function-level and ``TYPE_CHECKING`` imports
count: a cycle hidden behind them is still a cycle); the import-linter contracts of
``pyproject.toml`` hold, and a deliberate upward import breaks them; README's "Layout"
lists every top-level module and draws the same layers; every package says in its first
line what it holds.
"""

from __future__ import annotations

import ast
import itertools
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "vigil"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return list(layers)


def _top_level_modules() -> set[str]:
    names = {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    names |= {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    return names


def test_no_cycle_between_top_level_packages() -> None:
    graph = grimp.build_graph("vigil")
    packages = sorted(f"vigil.{name}" for name in _top_level_modules())
    cycles = [
        (a, b)
        for a, b in itertools.combinations(packages, 2)
        if graph.chain_exists(a, b, as_packages=True) and graph.chain_exists(b, a, as_packages=True)
    ]
    assert not cycles, f"packages that import each other: {cycles}"


def _lint(src: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_the_contracts_hold() -> None:
    result = _lint(ROOT / "src")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward", "contract"),
    [
        ("stats/__init__.py", "import vigil.serving.app", "layers point one way"),
        ("registry/__init__.py", "from vigil.monitor import engine", "layers point one way"),
        ("drift/__init__.py", "import sqlalchemy", "pure computation"),
        # a function-level import is an import all the same
        ("capture/__init__.py", "def _f():\n    import vigil.feedback.store", "one way"),
        # gRPC is a serving adapter: the layers below never speak it
        ("experiments/__init__.py", "import grpc", "only the serving layer speaks gRPC"),
    ],
)
def test_an_upward_import_breaks_a_contract(
    tmp_path: Path, module: str, upward: str, contract: str
) -> None:
    shutil.copytree(SRC, tmp_path / "vigil", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "vigil" / module
    target.write_text(target.read_text() + f"\n\n{upward}  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout[-2000:]
    assert re.search(rf"{contract}\s+BROKEN", result.stdout), result.stdout[-2000:]


def test_every_top_level_module_sits_in_one_layer() -> None:
    placed = [m.strip().removeprefix("vigil.") for layer in _layers() for m in layer.split("|")]
    assert sorted(placed) == sorted(_top_level_modules())
    assert len(placed) == len(set(placed))


def _readme_layout() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Layout\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def test_the_readme_lists_every_package_and_draws_the_layers() -> None:
    layout = _readme_layout()
    rows = [line.split("|")[1] for line in layout.splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`([a-z_]+)(?:/|\.py)`", row)}
    assert listed == _top_level_modules()
    diagram = re.search(r"```text\n(.*?)```", layout, re.S)
    assert diagram is not None
    assert diagram.group(1).splitlines() == [layer.replace("vigil.", "") for layer in _layers()]


def test_every_package_says_what_it_holds() -> None:
    for init in sorted(SRC.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init.relative_to(ROOT)} has no docstring"
        first = doc.split("\n\n")[0]
        assert first.rstrip().endswith((".", ":")), f"{init.relative_to(ROOT)}: {first!r}"
