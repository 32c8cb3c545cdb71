"""The hook the data plane calls after predicting and before replying: :class:`CaptureSink`.

The sink turns one answered request into per-row records, applies the masking rules and
appends them to the :class:`~vigil.capture.log.SegmentLog` in a single write. When it
returns, the records survive the death of the process; if it raises (disk full), the
caller must not answer 2xx, since the request would then be missing from the log.

>>> import tempfile, numpy as np
>>> from vigil.capture.log import SegmentLog, read_segment
>>> sink = CaptureSink(SegmentLog(tempfile.mkdtemp()))
>>> sink.record_prediction(request_id="r1", model="churn", version=2,
...     features=np.array([[1.0, 5.0], [2.0, float("nan")]]), feature_names=["a", "b"],
...     predictions=np.array([0, 1]), probabilities=np.array([[0.9, 0.1], [0.2, 0.8]]),
...     classes=[0, 1], latency_ms=1.5)
2
>>> rows, torn = read_segment(sink.log.rotate())
>>> rows[1]["features"], rows[1]["prediction"], rows[1]["probabilities"]
({'a': 2.0, 'b': None}, 1, {'0': 0.2, '1': 0.8})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vigil.capture.framing import encode_frame
from vigil.capture.log import SegmentLog
from vigil.capture.masking import Masker
from vigil.capture.record import CaptureRecord, safe_text
from vigil.capture.settings import CaptureSettings

_ERROR_MESSAGE_LIMIT = 1024


def feature_rows(features: Any, feature_names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Rows as ``{feature: value}`` dicts from an array, a DataFrame, columns or records.

    >>> feature_rows({"a": [1, 2], "b": ["x", "y"]})
    [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'y'}]
    """
    if features is None:
        return []
    if hasattr(features, "to_dict") and hasattr(features, "columns"):  # a pandas DataFrame
        rows: list[dict[str, Any]] = features.to_dict(orient="records")
        return rows
    if isinstance(features, Mapping):
        names = list(features)
        columns = [_as_list(features[n]) for n in names]
        return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
    values = _as_list(features)
    if values and isinstance(values[0], Mapping):
        return [dict(r) for r in values]
    if feature_names is None:
        feature_names = [f"x{i}" for i in range(len(values[0]) if values else 0)]
    names = list(feature_names)
    return [dict(zip(names, r, strict=True)) for r in values]


def _as_list(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


class CaptureSink:
    """Appends answered and rejected requests to the inference log.

    Parameters
    ----------
    log:
        Where the records go.
    masker:
        Rules hiding personal data; applied to features and rejected bodies.
    raw_body_limit:
        Characters of a rejected body kept as text.
    """

    def __init__(
        self, log: SegmentLog, *, masker: Masker | None = None, raw_body_limit: int = 2048
    ) -> None:
        self.log = log
        self.masker = masker if masker is not None and masker.active else None
        self.raw_body_limit = raw_body_limit

    def __repr__(self) -> str:
        return f"CaptureSink({self.log!r}, masker={self.masker!r})"

    @classmethod
    def from_settings(cls, settings: CaptureSettings, home: Path) -> CaptureSink | None:
        """The sink ``settings`` describe, or ``None`` when capture is disabled."""
        if not settings.enabled:
            return None
        log = SegmentLog(
            settings.resolved_dir(home),
            prefix="capture",
            fsync=settings.fsync,
            fsync_interval_s=settings.fsync_interval_s,
            segment_bytes=settings.segment_bytes,
            segment_seconds=settings.segment_seconds,
        )
        key = settings.hash_key.get_secret_value() if settings.hash_key else None
        return cls(
            log, masker=Masker(settings.mask, hash_key=key), raw_body_limit=settings.raw_body_limit
        )

    def record(self, records: Iterable[CaptureRecord]) -> None:
        """Append prepared records (masked here) in one write."""
        frames = []
        for r in records:
            data = r.to_dict()
            if self.masker is not None:
                data["features"] = self.masker.apply(data["features"])
                data["raw_body"] = self.masker.apply_body(data["raw_body"])
            frames.append(encode_frame(data))
        self.log.append_encoded(b"".join(frames))

    def record_prediction(
        self,
        *,
        request_id: str,
        model: str,
        version: int | None,
        features: Any,
        predictions: Any,
        feature_names: Sequence[str] | None = None,
        probabilities: Any = None,
        classes: Sequence[Any] | None = None,
        route: str = "native",
        latency_ms: float | None = None,
        status: int = 200,
        variant: str | None = None,
        caller: str | None = None,
        time: datetime | None = None,
    ) -> int:
        """Append one answered request as one record per row; returns the rows written."""
        rows = feature_rows(features, feature_names)
        outputs = _as_list(predictions)
        if len(rows) != len(outputs):
            raise ValueError(f"{len(rows)} feature rows but {len(outputs)} predictions")
        probas: list[Any] = [None] * len(rows)
        if probabilities is not None:
            keys = [str(c) for c in (classes if classes is not None else [])]
            matrix = _as_list(probabilities)
            if not keys and matrix:
                keys = [str(i) for i in range(len(matrix[0]))]
            probas = [dict(zip(keys, p, strict=True)) for p in matrix]
        stamp = (time or datetime.now(UTC)).astimezone(UTC).isoformat()
        masker = self.masker
        frames = []
        for i, (row, output, proba) in enumerate(zip(rows, outputs, probas, strict=True)):
            frames.append(
                encode_frame(
                    {
                        "request_id": request_id,
                        "row": i,
                        "time": stamp,
                        "route": route,
                        "model": model,
                        "version": version,
                        "variant": variant,
                        "caller": caller,
                        "features": masker.apply(row) if masker is not None else row,
                        "prediction": output,
                        "probabilities": proba,
                        "latency_ms": latency_ms,
                        "status": status,
                        "error_code": None,
                        "error_message": None,
                        "raw_body": None,
                    }
                )
            )
        self.log.append_encoded(b"".join(frames))
        return len(frames)

    def record_failure(
        self,
        *,
        request_id: str,
        status: int,
        error_code: str,
        error_message: str,
        model: str = "",
        version: int | None = None,
        body: bytes | str | None = None,
        route: str = "native",
        latency_ms: float | None = None,
        variant: str | None = None,
        caller: str | None = None,
        time: datetime | None = None,
    ) -> None:
        """Append one rejected request (e.g. a 422) with its body kept safely as text."""
        self.record(
            [
                CaptureRecord(
                    request_id=request_id,
                    row=0,
                    time=time or datetime.now(UTC),
                    route=route,
                    model=model,
                    version=version,
                    status=status,
                    latency_ms=latency_ms,
                    variant=variant,
                    caller=caller,
                    error_code=error_code,
                    error_message=safe_text(error_message, _ERROR_MESSAGE_LIMIT),
                    raw_body=safe_text(body, self.raw_body_limit),
                )
            ]
        )

    def close(self) -> None:
        self.log.close()
