"""Fixtures of the ``vigil report`` tests: a home with a model and captured traffic
(see :mod:`tests.report._capture`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from tests.report._capture import CAPTURED, REQUEST_ROWS, CaptureHome, population


@pytest.fixture(scope="session")
def capture_home(tmp_path_factory: pytest.TempPathFactory) -> CaptureHome:
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from vigil.app import Vigil
    from vigil.capture.compact import compact
    from vigil.capture.log import SegmentLog
    from vigil.capture.sink import CaptureSink
    from vigil.settings import load_settings

    home = tmp_path_factory.mktemp("capture-home")
    rng = np.random.default_rng(21)
    reference = population(3000, rng, shifted=False)
    y = (reference["age"] + rng.normal(0, 8, 3000) > 42).astype(int)
    model = make_pipeline(
        make_column_transformer(
            (SimpleImputer(), ["age", "income"]),
            (OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
        ),
        LogisticRegression(max_iter=500),
    ).fit(reference, y)
    vigil = Vigil(load_settings(home=home))
    for _ in CAPTURED:
        vigil.register(model, name="churn", reference=reference)
    vigil.registry.set_alias("churn", "production", 2)

    log = SegmentLog(home / "capture")
    sink = CaptureSink(log)
    now = datetime.now(UTC)
    captured: dict[int, pd.DataFrame] = {}
    predictions: dict[int, np.ndarray] = {}
    for version, n in CAPTURED.items():
        frame = population(n, rng, shifted=True)
        when = now - (timedelta(hours=2) if version == 1 else timedelta(minutes=30))
        preds = model.predict(frame)
        for start in range(0, n, REQUEST_ROWS):
            batch = frame.iloc[start : start + REQUEST_ROWS]
            sink.record_prediction(
                request_id=f"v{version}-{start}",
                model="churn",
                version=version,
                features=batch,
                predictions=preds[start : start + REQUEST_ROWS],
                probabilities=model.predict_proba(batch),
                classes=[0, 1],
                time=when,
            )
        captured[version], predictions[version] = frame, preds
        if version == 1:
            log.rotate()
            assert compact(log, vigil.artifacts).rows == n
    sink.record_failure(
        request_id="bad",
        status=422,
        error_code="validation_error",
        error_message="age must be a number",
        model="churn",
        version=2,
        body=b'{"age": "old"}',
        time=now - timedelta(minutes=20),
    )
    log.close()
    return CaptureHome(home, captured, predictions)


@pytest.fixture
def use_capture_home(
    capture_home: CaptureHome, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CaptureHome]:
    """Point ``VIGIL_HOME`` (and the CLI's process-wide ``Vigil``) at the capture home."""
    from vigil.app import reset_default

    monkeypatch.setenv("VIGIL_HOME", str(capture_home.home))
    reset_default()
    yield capture_home
    reset_default()
