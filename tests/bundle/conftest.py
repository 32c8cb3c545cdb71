"""Shared seeded data for the bundle tests."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, make_classification


@pytest.fixture(scope="session")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    """Breast-cancer features (30 floats, names with spaces) and a binary label."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="session")
def blobs() -> tuple[pd.DataFrame, pd.Series]:
    """A seeded 3-class problem with plain column names (LightGBM rewrites spaces)."""
    X, y = make_classification(
        n_samples=400, n_features=6, n_informative=4, n_classes=3, random_state=0
    )
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    return frame, pd.Series(y, name="label")


def files_in(path: object) -> list[str]:
    """Everything under a directory (empty when it does not exist)."""
    from pathlib import Path

    p = Path(str(path))
    return sorted(str(f.relative_to(p)) for f in p.rglob("*")) if p.exists() else []
