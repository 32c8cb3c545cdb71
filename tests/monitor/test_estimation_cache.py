"""A version's performance estimator is fitted once per process, not at every monitoring
pass (a regressor's DLE fit costs seconds), and only the last few versions are kept."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.monitor import estimation


def test_a_versions_estimator_is_fitted_once_and_the_cache_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fits: list[str] = []

    def fit(signature: Any, profile: Any) -> Any:
        fits.append(signature)
        return f"estimator of {signature}"

    monkeypatch.setattr(estimation, "fit_estimator", fit)
    monkeypatch.setattr(estimation, "_FITTED", type(estimation._FITTED)())
    first = estimation.version_estimator("digest-a", "a", None)  # type: ignore[arg-type]
    again = estimation.version_estimator("digest-a", "a", None)  # type: ignore[arg-type]
    assert first == again == "estimator of a" and fits == ["a"]
    for i in range(estimation._FITTED_KEPT):
        estimation.version_estimator(f"digest-{i}", str(i), None)  # type: ignore[arg-type]
    assert len(estimation._FITTED) == estimation._FITTED_KEPT
    estimation.version_estimator("digest-a", "a", None)  # type: ignore[arg-type]
    assert fits.count("a") == 2  # the oldest was let go, and fitted again when asked
