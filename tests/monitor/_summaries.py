"""Captured rows written straight in the capture format, and the baseline they are judged by.

A mixture like the drift tests use (tests/calibration/cells.py): numeric features
``x0..`` (the first ``shifted`` moved by 0.7 standard deviations) and categorical ``c0..``
(the first moved towards its rare levels when ``shifted`` > 0), a few missing and infinite
values, a binary classifier's predictions and probabilities, labels, latencies and some
rejected requests.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vigil.bundle.profile import build_profile
from vigil.bundle.signature import FeatureSpec, OutputSpec, Signature
from vigil.monitor.baseline import Baseline
from vigil.monitor.windows import SeriesKey, Window, parse_window

START = datetime(2026, 1, 5, tzinfo=UTC)
KEY = SeriesKey("m", 1, "native")
LEVELS = np.asarray([f"l{i}" for i in range(8)], dtype=object)
P_LEVELS = np.asarray([0.35, 0.2, 0.15, 0.1, 0.08, 0.06, 0.04, 0.02])
P_SHIFTED = P_LEVELS[::-1]


def features(
    n: int, seed: int, *, numeric: int, categorical: int, shifted: int = 0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for j in range(numeric):
        data[f"x{j}"] = rng.normal(0.7 if j < shifted else 0.0, 1.0, n)
    for j in range(categorical):
        data[f"c{j}"] = rng.choice(LEVELS, n, p=P_SHIFTED if j < min(shifted, 1) else P_LEVELS)
    frame = pd.DataFrame(data)
    if numeric > 1 and n >= 100:
        frame.loc[frame.index[::97], "x1"] = np.nan
        frame.loc[frame.index[5], "x1"] = np.inf
    return frame


def score(frame: pd.DataFrame) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(frame["x0"].to_numpy() + 0.5 * frame["x2"].to_numpy())))


def predict(frame: pd.DataFrame) -> np.ndarray:
    return (score(frame) > 0.5).astype(np.int64)


def signature(frame: pd.DataFrame) -> Signature:
    inputs = [
        FeatureSpec(name=c, dtype="float64" if c.startswith("x") else "string")
        for c in frame.columns
    ]
    outputs = OutputSpec(task="classification", dtype="int64", classes=[0, 1], has_proba=True)
    return Signature(inputs=inputs, outputs=outputs)


def baseline(reference: pd.DataFrame) -> Baseline:
    sig = signature(reference)
    profile = build_profile(reference, sig, predict=predict)
    return Baseline("m", 1, sig, profile, {"accuracy": 0.8, "roc_auc": 0.85})


def capture_table(frame: pd.DataFrame, seed: int, *, seconds: float = 3000.0) -> pa.Table:
    """The rows as captured: one-row requests over ``seconds`` from :data:`START`, a
    rejected request every 500 rows."""
    rng = np.random.default_rng(seed + 1)
    n = len(frame)
    p = score(frame)
    offsets = np.sort(rng.uniform(0, seconds, n))
    times = pd.Timestamp(START) + pd.to_timedelta(offsets, unit="s")
    status = np.where(rejected(n), 422, 200)
    columns: dict[str, pa.Array] = {
        "request_id": pc.binary_join_element_wise(
            "r", pc.cast(pa.array(np.arange(n)), pa.string()), ""
        ),
        "row": pa.array(np.zeros(n, dtype=np.int64)),
        "time": pa.array(times.to_numpy(), pa.timestamp("us", tz="UTC")),
        "route": _repeat("native", n),
        "model": _repeat("m", n),
        "version": pa.array(np.ones(n, dtype=np.int64)),
        "latency_ms": pa.array(rng.lognormal(1.0, 0.5, n)),
        "status": pa.array(status),
        "error_code": pa.array(["validation_error", None]).take(
            pa.array(np.where(status >= 400, 0, 1))
        ),
        "prediction": pa.array((p > 0.5).astype(np.int64)),
        "proba.0": pa.array(1.0 - p),
        "proba.1": pa.array(p),
    }
    for c in frame.columns:
        values = frame[c].to_numpy()
        columns[f"feature.{c}"] = pa.array(values, from_pandas=True)
    return pa.table(columns)


def rejected(n: int) -> np.ndarray:
    """Which of ``n`` captured requests were rejected (422): every 500th."""
    return np.arange(n) % 500 == 499


def answered(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` that :func:`capture_table` records as answered."""
    return frame[~rejected(len(frame))]


def _repeat(value: str, n: int) -> pa.Array:
    return pa.array([value]).take(pa.array(np.zeros(n, dtype=np.int64)))


def labels_for(table: pa.Table, seed: int, share: float = 0.5) -> pd.DataFrame:
    """Labels for ``share`` of the answered rows, drawn from the model's probability."""
    rng = np.random.default_rng(seed + 2)
    frame = table.select(["request_id", "row", "proba.1", "status"]).to_pandas()
    frame = frame[frame["status"] < 400]
    pick = rng.random(len(frame)) < share
    chosen = frame[pick]
    label = (rng.random(len(chosen)) < chosen["proba.1"].to_numpy()).astype(np.int64)
    return pd.DataFrame({"request_id": chosen["request_id"].to_numpy(), "row": 0, "label": label})


def window_of(table: pa.Table, seconds: float = 3600.0) -> Window:
    """The exact engine's window over the whole table (its rows as pandas)."""
    frame = table.to_pandas()
    ok = frame["status"] < 400
    return Window(
        KEY,
        parse_window("1h"),
        START,
        START + pd.Timedelta(seconds=seconds).to_pytimedelta(),
        frame[ok.to_numpy()].reset_index(drop=True),
        frame[~ok.to_numpy()].reset_index(drop=True),
        complete=True,
    )
