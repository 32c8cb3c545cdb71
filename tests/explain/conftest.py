"""Seeded small data and bundles for the explanation tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression

from vigil.bundle.bundle import build_bundle, load_bundle
from vigil.bundle.manifest import read_manifest
from vigil.bundle.model import LoadedBundle
from vigil.bundle.trust import TrustPolicy

NAMES = [f"x{i}" for i in range(5)]


@pytest.fixture(scope="session")
def regression() -> tuple[pd.DataFrame, Any]:
    X, y = make_regression(n_samples=200, n_features=5, noise=5.0, random_state=0)
    return pd.DataFrame(X, columns=NAMES), y


@pytest.fixture(scope="session")
def binary() -> tuple[pd.DataFrame, Any]:
    X, y = make_classification(n_samples=200, n_features=5, n_informative=3, random_state=1)
    return pd.DataFrame(X, columns=NAMES), y


@pytest.fixture(scope="session")
def three_classes() -> tuple[pd.DataFrame, Any]:
    X, y = make_classification(
        n_samples=240, n_features=5, n_informative=3, n_classes=3, random_state=2
    )
    return pd.DataFrame(X, columns=NAMES), y


Bundler = Callable[[Any, pd.DataFrame], LoadedBundle]


@pytest.fixture(scope="session")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Bundler:
    """Save a fitted model as a bundle with ``reference`` data and load it back, as a
    server would (trusting the types the bundle says it needs: we built it)."""
    count = iter(range(1_000))

    def make(model: Any, reference: pd.DataFrame) -> LoadedBundle:
        dest = Path(tmp_path_factory.mktemp("explain")) / f"b{next(count)}"
        build_bundle(model, dest, reference=reference)
        needed = tuple(read_manifest(dest).required_trusted_types)
        return load_bundle(dest, trust=TrustPolicy(trusted_types=needed))

    return make
