"""Fixtures of the batch-scoring tests (the data behind them lives in ``_data``)."""

from __future__ import annotations

import pytest
from tests.batch._data import Models, build_models


@pytest.fixture(scope="session")
def models() -> Models:
    return build_models()
