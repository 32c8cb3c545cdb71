"""One shared set of checks run on every detector found in vigil.drift.detectors."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import vigil.drift.detectors as pkg
from vigil.drift.detectors.base import DriftDetector
from vigil.errors import InvalidParameterError


def discover() -> list[type[DriftDetector]]:
    found: dict[str, type[DriftDetector]] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, DriftDetector)
                and not inspect.isabstract(obj)
                and obj.__module__ == module.__name__
            ):
                found[obj.__name__] = obj
    return [found[k] for k in sorted(found)]


DETECTORS = discover()


def test_all_five_are_found() -> None:
    assert [d.__name__ for d in DETECTORS] == ["ADWIN", "DDM", "EDDM", "KSWIN", "PageHinkley"]


def stream(binary: bool) -> list[float]:
    rng = np.random.default_rng(11)
    if binary:
        return [*rng.binomial(1, 0.1, 800).astype(float), *rng.binomial(1, 0.5, 800).astype(float)]
    return [*rng.normal(0, 1, 400), *rng.normal(3, 1, 400)]


def make(cls: type[DriftDetector]) -> DriftDetector:
    return cls(seed=7) if "seed" in inspect.signature(cls).parameters else cls()  # type: ignore[call-arg]


def detections(det: DriftDetector, data: list[float]) -> list[int]:
    out = []
    for i, x in enumerate(data):
        det.update(float(x))
        if det.drift_detected:
            out.append(i)
    return out


@pytest.fixture(params=DETECTORS, ids=lambda c: c.__name__)
def cls(request: pytest.FixtureRequest) -> type[DriftDetector]:
    return request.param  # type: ignore[no-any-return]


def is_binary(cls: type[DriftDetector]) -> bool:
    return cls.__name__ in {"DDM", "EDDM"}


def test_clone_same_params_fresh_state(cls: type[DriftDetector]) -> None:
    det = make(cls)
    data = stream(is_binary(cls))
    first = detections(det, data)
    assert first, "each detector must find the planted shift"
    twin = det.clone()
    assert type(twin) is cls and twin is not det
    assert twin._get_params() == det._get_params()
    assert not twin.drift_detected
    assert detections(twin, data) == first  # fresh state: same run again


def test_repr_shows_params(cls: type[DriftDetector]) -> None:
    det = make(cls)
    text = repr(det)
    assert text.startswith(f"{cls.__name__}(")
    for name, value in det._get_params().items():
        assert f"{name}={value!r}" in text


def test_seeding_is_deterministic(cls: type[DriftDetector]) -> None:
    data = stream(is_binary(cls))
    assert detections(make(cls), data) == detections(make(cls), data)


def test_no_mutable_defaults(cls: type[DriftDetector]) -> None:
    for p in inspect.signature(cls).parameters.values():
        assert not isinstance(p.default, list | dict | set | bytearray), p.name


def test_drift_detected_is_read_only(cls: type[DriftDetector]) -> None:
    det = make(cls)
    with pytest.raises(AttributeError):
        det.drift_detected = True  # type: ignore[misc]
    assert det.drift_detected is False


def test_init_only_stores_params(cls: type[DriftDetector]) -> None:
    det = make(cls)
    for name in inspect.signature(cls).parameters:
        assert hasattr(det, name)


def planted(cls: type[DriftDetector]) -> list[float]:
    """A stable stream with one change at t = 1,000, as in the issue's report."""
    rng = np.random.default_rng(21)
    if is_binary(cls):
        before, after = rng.binomial(1, 0.1, 1000), rng.binomial(1, 0.5, 1000)
    else:
        before, after = rng.normal(0, 1, 1000), rng.normal(3, 1, 1000)
    return [float(x) for x in (*before, *after)]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, None], ids=repr)
def test_non_finite_values_are_skipped_and_counted(
    cls: type[DriftDetector], bad: float | None
) -> None:
    data = planted(cls)
    clean = detections(make(cls), data)
    assert any(i >= 1000 for i in clean), "the planted change must be found"
    det = make(cls)
    dirty = [*data[:500], bad, *data[500:]]
    found = []
    for i, x in enumerate(dirty):
        det.update(x)
        assert not (x is bad and det.drift_detected), "a skipped value completes nothing"
        if det.drift_detected:
            found.append(i if i < 500 else i - 1)
    # The value never entered the state: the same detections as without it.
    assert found == clean
    assert det.n_skipped == 1


def test_a_window_of_non_finite_values_does_not_raise(cls: type[DriftDetector]) -> None:
    det = make(cls)
    for _ in range(300):
        det.update(float("nan"))
    assert det.n_skipped == 300 and not det.drift_detected
    clone = det.clone()
    assert clone.n_skipped == 0


INVALID = {
    "ADWIN": [{"delta": 0.0}, {"delta": 1.5}, {"clock": 0}, {"grace_period": -1}],
    "DDM": [{"warm_start": -1}, {"drift_threshold": 0.0}, {"warning_threshold": 5.0}],
    "EDDM": [{"alpha": 0.0}, {"beta": 1.5}, {"alpha": 0.5, "beta": 0.6}],
    "KSWIN": [{"alpha": 2.0}, {"window_size": 1}, {"stat_size": 100}],
    "PageHinkley": [{"threshold": 0.0}, {"delta": -1.0}, {"mode": "sideways"}],
}


def test_invalid_parameters_get_the_one_template(cls: type[DriftDetector]) -> None:
    # The same message shape as the bandit policies and the statistics (vigil.params).
    for bad in INVALID[cls.__name__]:
        with pytest.raises(InvalidParameterError, match=rf"^{cls.__name__}: \w+ must be .*; got "):
            cls(**bad)
