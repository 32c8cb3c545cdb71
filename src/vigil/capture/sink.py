"""The hook the data plane calls after predicting and before replying: :class:`CaptureSink`.

The sink turns answered requests into per-row records, applies the masking rules and
appends them to the :class:`~vigil.capture.log.SegmentLog` in a single write. When it
returns, the records survive the death of the process; if it raises (disk full), the
caller must not answer 2xx, since the request would then be missing from the log.

Answered requests are written as columnar batches (:func:`~vigil.capture.framing.
encode_batch_frame`): the requests of one model version that are recorded together share
one frame whose feature matrix, predictions and probabilities are the NumPy arrays of the
model call, encoded by orjson without building a dict per row. That is what keeps capture
cheap on the serving hot path (see :class:`~vigil.capture.group.GroupCommit`).

>>> import tempfile, numpy as np
>>> from vigil.capture.log import SegmentLog, read_segment
>>> sink = CaptureSink(SegmentLog(tempfile.mkdtemp()))
>>> sink.record_prediction(request_id="r1", model="churn", version=2,
...     features=np.array([[1.0, 5.0], [2.0, float("nan")]]), feature_names=["a", "b"],
...     predictions=np.array([0, 1]), probabilities=np.array([[0.9, 0.1], [0.2, 0.8]]),
...     classes=[0, 1], latency_ms=1.5)
2
>>> rows, torn = read_segment(sink.log.rotate())
>>> rows[1]["features"], rows[1]["prediction"], rows[1]["probabilities"], rows[1]["row"]
({'a': 2.0, 'b': None}, 1, {'0': 0.2, '1': 0.8}, 1)
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vigil.capture.crypt import LogCodec
from vigil.capture.framing import encode_batch_frame, encode_frame
from vigil.capture.log import SegmentLog
from vigil.capture.masking import MASKABLE_BODY_CHARS, Masker
from vigil.capture.record import CaptureRecord, safe_text
from vigil.capture.settings import CaptureSettings

_ERROR_MESSAGE_LIMIT = 1024
# Per-request fields that usually hold one value for a whole batch; stored once when they do.
_SHAREABLE = ("route", "caller", "variant", "endpoint", "cached", "propensity")


class Answered(NamedTuple):
    """One answered predict request, as the data plane hands it to the sink.

    ``features`` is the validated model input: a 2-D array (columns ``feature_names``) or a
    DataFrame; ``predictions`` and ``probabilities`` are the model's outputs for its rows.
    """

    request_id: str
    model: str
    version: int | None
    features: Any
    feature_names: Sequence[str]
    predictions: Any
    probabilities: Any = None
    classes: Sequence[Any] | None = None
    route: str = "native"
    latency_ms: float | None = None
    variant: str | None = None
    caller: str | None = None
    endpoint: str | None = None
    cached: bool = False
    """Answered from the prediction cache rather than by a model call."""
    propensity: float | None = None
    """The chance the endpoint's policy gave ``variant`` (bandits and weighted splits)."""
    passthrough: Mapping[str, Sequence[Any]] | None = None
    """Fields sent beside the features and never given to the model, one list of values
    per field (a row each): logged as ``passthrough.<field>`` columns, masked like
    features (sensitive attributes for :mod:`vigil.monitor.fairness`)."""


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


_REQUEST_ID, _MODEL, _VERSION, _FEATURES, _NAMES, _PREDICTIONS, _PROBABILITIES = range(7)
_LATENCY_MS = Answered._fields.index("latency_ms")
_PASSTHROUGH = Answered._fields.index("passthrough")
_NONE = type(None)
_SHAREABLE_AT = tuple((name, Answered._fields.index(name)) for name in _SHAREABLE)


def _column(group: Sequence[Answered], index: int) -> list[Any]:
    """One field of every entry (``operator.itemgetter`` over a batch, in C)."""
    return list(map(itemgetter(index), group))


def _one_group(answered: Sequence[Answered]) -> bool:
    """Whether every entry shares one frame: the same model version, feature names and
    kind of features (arrays), all with probabilities or all without, and the same
    passthrough fields. Checked a field at
    a time (``count`` compares in C, by identity first: the data plane hands the same
    objects for every request of a version)."""
    n = len(answered)
    if n == 1:
        return True
    for index in (_MODEL, _VERSION, _NAMES):
        values = _column(answered, index)
        if values.count(values[0]) != n:
            return False
    # By type: an array compared with None is an array, not a truth value.
    with_proba = n - list(map(type, _column(answered, _PROBABILITIES))).count(_NONE)
    if with_proba not in (0, n):
        return False
    kinds = set(map(type, _column(answered, _FEATURES)))
    if len(kinds) != 1:
        return False
    # Passthrough fields: none at all (the common case), or the same names in every entry.
    passthrough = _column(answered, _PASSTHROUGH)
    absent = list(map(type, passthrough)).count(_NONE)
    if absent == n:
        return True
    return absent == 0 and len({tuple(p) for p in passthrough}) == 1


def _is_frame(features: Any) -> bool:
    return not isinstance(features, np.ndarray) and hasattr(features, "columns")


def _class_keys(classes: Sequence[Any] | None, matrix: Any) -> list[str]:
    """Probability keys: the class labels as text (``0..C-1`` when the model has none)."""
    if classes is None:
        return [str(i) for i in range(matrix.shape[1] if matrix.ndim == 2 else 0)]
    return [str(c) for c in classes]


class _Clock:
    """The current time as ISO 8601 UTC text with microseconds, cheaply: the part up to the
    second is formatted once a second, only the microseconds on each call.

    >>> from datetime import datetime
    >>> datetime.fromisoformat(_Clock()()).utcoffset()
    datetime.timedelta(0)
    """

    def __init__(self) -> None:
        self._cached = (-1, "")

    def __call__(self) -> str:
        now = _time.time()
        second = int(now)
        cached_second, prefix = self._cached  # one tuple: threads never see half an update
        if second != cached_second:
            prefix = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(second))
            self._cached = (second, prefix)
        return f"{prefix}.{int((now - second) * 1e6):06d}+00:00"


utc_stamp = _Clock()


def _concat(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts)


def _by_column(matrix: Any) -> Any:
    """A 2-D array column-major, for the frame: a reader then parses one list per column,
    not one per row (a large request has hundreds of thousands of rows, a model tens of
    features). One copy of the array, at memory speed."""
    array = np.asarray(matrix)
    return np.ascontiguousarray(array.T) if array.ndim == 2 else array


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
    def from_settings(
        cls, settings: CaptureSettings, home: Path, *, codec: LogCodec | None = None
    ) -> CaptureSink | None:
        """The sink ``settings`` describe, or ``None`` when capture is disabled
        (``codec``: encrypts the segments, see :mod:`vigil.capture.crypt`)."""
        if not settings.enabled:
            return None
        log = SegmentLog(
            settings.resolved_dir(home),
            prefix="capture",
            fsync=settings.fsync,
            fsync_interval_s=settings.fsync_interval_s,
            segment_bytes=settings.segment_bytes,
            segment_seconds=settings.segment_seconds,
            codec=codec,
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
            data["raw_body"] = safe_text(data["raw_body"], self.raw_body_limit)
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
        variant: str | None = None,
        caller: str | None = None,
        endpoint: str | None = None,
        time: datetime | None = None,
        propensity: float | None = None,
        passthrough: Mapping[str, Sequence[Any]] | None = None,
    ) -> int:
        """Append one answered request as one record per row; returns the rows written.

        ``features`` may be a 2-D array (with ``feature_names``), a DataFrame, a mapping of
        columns or a list of row mappings; ``passthrough`` one list of values per field
        sent beside the features (see :class:`Answered`).
        """
        if not _is_frame(features) and not isinstance(features, np.ndarray):
            rows = feature_rows(features, feature_names)
            names = list(dict.fromkeys(k for r in rows for k in r))
            features = np.array([[r.get(n) for n in names] for r in rows], dtype=object)
            feature_names = names
        elif feature_names is None:
            feature_names = (
                [str(c) for c in features.columns]
                if _is_frame(features)
                else [f"x{i}" for i in range(features.shape[1])]
            )
        outputs = np.asarray(predictions)
        if len(features) != len(outputs):
            raise ValueError(f"{len(features)} feature rows but {len(outputs)} predictions")
        entry = Answered(
            request_id,
            model,
            version,
            features,
            list(feature_names),
            outputs,
            None if probabilities is None else np.asarray(probabilities),
            classes,
            route,
            latency_ms,
            variant,
            caller,
            endpoint,
            propensity=propensity,
            passthrough=passthrough,
        )
        self.record_answered([entry], time=time)
        return len(outputs)

    def record_answered(self, answered: Sequence[Answered], *, time: datetime | None = None) -> int:
        """Append many answered requests with one write; returns the rows written.

        Requests of the same model version (and with or without probabilities alike) share
        one columnar frame.
        """
        stamp = utc_stamp() if time is None else time.astimezone(UTC).isoformat()
        if _one_group(answered):  # one model version's call: no grouping to do
            frame = encode_batch_frame(self._batch(answered, stamp))
            self.log.append_encoded(frame)
            return sum(map(len, _column(answered, _PREDICTIONS)))
        groups: dict[tuple[Any, ...], list[Answered]] = {}
        for entry in answered:
            key = (
                entry.model,
                entry.version,
                entry.probabilities is None,
                _is_frame(entry.features),
                tuple(entry.feature_names),
                tuple(entry.passthrough) if entry.passthrough else (),
            )
            group = groups.get(key)
            if group is None:
                groups[key] = [entry]
            else:
                group.append(entry)
        frames = [encode_batch_frame(self._batch(group, stamp)) for group in groups.values()]
        self.log.append_encoded(frames[0] if len(frames) == 1 else b"".join(frames))
        return sum(len(e.predictions) for e in answered)

    def _batch(self, group: Sequence[Answered], stamp: str) -> dict[str, Any]:
        first = group[0]
        same: dict[str, Any] = {
            "time": stamp,
            "model": first.model,
            "version": first.version,
            "status": 200,
            "error_code": None,
            "error_message": None,
            "raw_body": None,
        }
        if len(group) == 1:  # the common case at low load: no per-request columns to build
            per_request: dict[str, Any] = {
                "sizes": [len(first.predictions)],
                "request_id": [first.request_id],
                "latency_ms": [first.latency_ms],
            }
            same.update(
                route=first.route,
                caller=first.caller,
                variant=first.variant,
                endpoint=first.endpoint,
                cached=first.cached,
                propensity=first.propensity,
            )
        else:
            # Field by field: one transposition in C instead of a Python loop per field.
            fields = list(zip(*group, strict=True))
            per_request = {
                "sizes": list(map(len, fields[_PREDICTIONS])),
                "request_id": list(fields[_REQUEST_ID]),
                "latency_ms": list(fields[_LATENCY_MS]),
            }
            for name, index in _SHAREABLE_AT:
                values = fields[index]
                if values.count(values[0]) == len(values):
                    same[name] = values[0]
                else:
                    per_request[name] = list(values)
        keys = first.feature_names
        features: dict[str, Any]
        if _is_frame(first.features):
            columns = [_concat([e.features[k].to_numpy() for e in group]) for k in keys]
            if self.masker is not None:
                keys, columns = self.masker.apply_columns(list(keys), columns)
            features = {"keys": keys, "columns": columns}
        else:
            rows = _concat(_column(group, _FEATURES))
            masker = self.masker
            if masker is not None and any(k in masker.rules for k in keys):
                # Column by column: a masked column is one value repeated, a dropped one is
                # gone, and the others stay NumPy arrays, where rows rebuilt in Python cost
                # seconds for a request of many rows.
                columns = [np.ascontiguousarray(rows[:, j]) for j in range(rows.shape[1])]
                keys, columns = masker.apply_columns(list(keys), columns)
                features = {"keys": keys, "columns": columns}
            else:
                features = {"keys": keys, "columns": _by_column(rows)}
        maps: dict[str, Any] = {"features": features}
        if first.passthrough:
            names = list(first.passthrough)
            passed = [[v for e in group for v in (e.passthrough or {}).get(n, ())] for n in names]
            if self.masker is not None:
                names, passed = self.masker.apply_columns(names, passed)
            maps["passthrough"] = {"keys": names, "columns": passed}
        if first.probabilities is not None:
            matrix = _concat(_column(group, _PROBABILITIES))
            maps["probabilities"] = {
                "keys": _class_keys(first.classes, matrix),
                "columns": _by_column(matrix),
            }
        else:
            same["probabilities"] = None
        return {
            "n": sum(per_request["sizes"]),
            "same": same,
            "requests": per_request,
            "rows": {"prediction": _concat(_column(group, _PREDICTIONS))},
            "maps": maps,
        }

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
        endpoint: str | None = None,
        time: datetime | None = None,
    ) -> None:
        """Append one rejected request (e.g. a 422) with its body kept safely as text.

        The masking rules see the whole body (so a masked field is found wherever it sits);
        only then is it cut to ``raw_body_limit`` characters.
        """
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
                    endpoint=endpoint,
                    error_code=error_code,
                    error_message=safe_text(error_message, _ERROR_MESSAGE_LIMIT),
                    raw_body=self._body_text(body),
                )
            ]
        )

    def _body_text(self, body: bytes | str | None) -> str | None:
        """A rejected body as text: whole for the masking rules to see (up to what they
        mask), else only the part that is kept (decoding megabytes to keep 2 KB is a cost
        worth skipping)."""
        if body is None:
            return None
        # 4 bytes at most per character: the masker still sees a body too long to mask as
        # too long, and the cut in record() falls inside what is decoded.
        keep = MASKABLE_BODY_CHARS if self.masker is not None else self.raw_body_limit
        body = body[: 4 * keep + 4]
        return safe_text(body, len(body))

    def close(self) -> None:
        self.log.close()
