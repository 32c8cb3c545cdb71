"""A model trained and registered once per session; each test gets a copy of its home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.monitor._data import Trained, copied_home, home_vigil, register, train

from vigil.app import Vigil, reset_default

# Run by NannyML's own virtualenv (tests/monitor/_nannyml.py), never imported here.
collect_ignore = ["nannyml/cbpe.py", "nannyml/dle.py"]


@pytest.fixture(scope="session")
def trained() -> Trained:
    return train(seed=0)


@pytest.fixture(scope="session")
def registered_home(tmp_path_factory: pytest.TempPathFactory, trained: Trained) -> Path:
    """A VIGIL_HOME holding ``churn`` version 1 (reference data, accuracy metric)."""
    home = tmp_path_factory.mktemp("monitor-template") / "home"
    vigil = home_vigil(home)
    assert register(vigil, trained) == 1
    vigil.database.dispose()
    return home


@pytest.fixture
def vigil(registered_home: Path, vigil_home: Path) -> Iterator[Vigil]:
    """A private copy of the registered home, also the process default (``VIGIL_HOME``)."""
    yield from copied_home(registered_home, vigil_home)


@pytest.fixture
def empty_vigil(vigil_home: Path) -> Iterator[Vigil]:
    """A fresh home with nothing registered (for alerts and webhooks)."""
    reset_default()
    instance = home_vigil(vigil_home)
    yield instance
    instance.database.dispose()
    reset_default()
