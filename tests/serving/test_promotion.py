"""Zero-downtime promotion: move an alias (and roll it back) under load, nothing fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from tests._waiting import wait_for
from tests.serving.conftest import ServerThread
from tests.serving.test_workers import WorkerServer

from vigil.app import Vigil
from vigil.serving.config import ServingSettings
from vigil.serving.registry_provider import RegistryProvider, targets_from
from vigil.settings import load_settings

FEATURES = ["tenure", "spend", "calls", "age"]
ROW = {"tenure": 0.5, "spend": -1.0, "calls": 0.2, "age": 1.5}
POLL = 0.2
BOUND = 10.0  # seconds: poll interval + load and warm, with a wide margin for a busy CI


@pytest.fixture(scope="module")
def registry_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with ``churn`` versions 1 and 2 registered, production on 1."""
    home = tmp_path_factory.mktemp("promotion-home")
    X, y = make_classification(n_samples=200, n_features=4, random_state=0)
    frame = pd.DataFrame(X, columns=FEATURES)
    vigil = Vigil(load_settings(home=home))
    for c in (1.0, 0.01):
        model = LogisticRegression(C=c).fit(frame, y)
        vigil.register(model, name="churn", reference=frame.assign(y=y), target="y")
    vigil.registry.set_alias("churn", "production", 1)
    return home


@dataclass
class Load:
    """Client threads sending predictions until stopped, recording every answer."""

    url: str
    threads: int = 3
    answers: list[tuple[float, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _loop(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                try:
                    r = http.post("/v1/models/churn/predict", json={"inputs": ROW})
                except httpx.TransportError as exc:
                    self.failures.append(repr(exc))
                    continue
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    self.answers.append((time.monotonic(), r.json()["version"]))

    def __enter__(self) -> Load:
        self._workers = [threading.Thread(target=self._loop) for _ in range(self.threads)]
        for t in self._workers:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=30)

    def converged_at(self, version: int, since: float) -> float:
        """Seconds after ``since`` from which every answer came from ``version``."""

        def settled() -> list[float]:
            later = [(t, v) for t, v in list(self.answers) if t > since]
            if later and later[-1][1] == version:
                last_other = max((t for t, v in later if v != version), default=since)
                # settled: at least 0.5 s of answers only from the new version
                if later[-1][0] - last_other > 0.5:
                    return [last_other - since]
            return []

        (seconds,) = wait_for(settled, since + BOUND - time.monotonic(), what=f"version {version}")
        return seconds


def _promote_and_roll_back(url: str, home: Path) -> None:
    vigil = Vigil(load_settings(home=home))
    with Load(url) as load:
        wait_for(lambda: len(load.answers) >= 5, what="a few answers first")
        assert {v for _, v in load.answers} == {1}
        moved = time.monotonic()
        assert vigil.registry.set_alias("churn", "production", 2).version == 2
        assert load.converged_at(2, moved) < BOUND
        back = time.monotonic()
        assert vigil.registry.rollback("churn", "production") == (2, 1)
        assert load.converged_at(1, back) < BOUND
    assert load.failures == []
    assert len(load.answers) > 50


def test_targets_from_uris():
    assert targets_from(["models:/a@staging", "models:/b/2"])[1].version == 2
    from vigil.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="neither a version nor an alias"):
        targets_from(["models:/a"])


@pytest.mark.slow
def test_promotion_and_rollback_on_one_worker(registry_home: Path):
    app = Vigil(load_settings(home=registry_home))
    provider = RegistryProvider(app, poll_interval=POLL, settings=ServingSettings())
    with ServerThread(app.serving_app(provider)) as server:
        wait_for(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, what="readiness")
        _promote_and_roll_back(server.url, registry_home)
        # the retired version is no longer served, the alias answers its metadata
        assert httpx.get(f"{server.url}/v1/models/churn/versions/2").status_code == 404
        assert httpx.get(f"{server.url}/v1/models/churn@production").json()["version"] == 1
    assert provider.moves == 2


@pytest.fixture
def two_registry_workers(registry_home: Path) -> Iterator[WorkerServer]:
    env = {"VIGIL_HOME": str(registry_home), "VIGIL_WORKER_POLL_INTERVAL": str(POLL)}
    with WorkerServer(2, "vigil.app:serving_app_from_environment", env=env) as s:
        yield s


@pytest.mark.slow
def test_promotion_and_rollback_on_two_workers(two_registry_workers: WorkerServer, registry_home):
    _promote_and_roll_back(two_registry_workers.url, registry_home)
