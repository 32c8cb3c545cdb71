"""A registry-backed `vigil serve` app on a real socket, with the console, API keys of
every role and a firing alert."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.serving.conftest import ServerThread
from tests.serving.test_auth import make_tokens, register_churn
from tests.ui._browser import browser  # noqa: F401  (the fixture, for every browser test here)

from vigil.app import Vigil
from vigil.monitor.alerts import record_event
from vigil.serving.config import ServingSettings
from vigil.serving.registry_provider import RegistryProvider

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Served:
    vigil: Vigil
    url: str
    tokens: dict[str, str]


def add_alert(vigil: Vigil, rule: str = "dataset_drift") -> int:
    event = record_event(
        vigil.database,
        rule=rule,
        status="firing",
        severity="warning",
        summary="the churn inputs drifted",
        labels={"model": "churn", "version": "1", "alertname": rule},
        metric="drift.share",
        value=0.6,
        threshold=0.3,
    )
    assert event is not None
    return event.id


def serve(home: Path, *, auth: str) -> tuple[Vigil, ServerThread]:
    """A server of ``churn`` whose overview reads the store on every load (the tests add
    alerts behind its back)."""
    vigil = register_churn(home)
    provider = RegistryProvider(vigil, poll_interval=0.5, settings=ServingSettings(auth=auth))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VIGIL_UI_OVERVIEW_CACHE_S", "0")  # read once, as the app is built
        app = vigil.serving_app(provider)
    assert vigil.console_settings.overview_cache_s == 0
    return vigil, ServerThread(app)


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    vigil, server = serve(tmp_path_factory.mktemp("ui-home"), auth="on")
    with server:
        yield Served(vigil, server.url, make_tokens(vigil))


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found is not None, page[:2000]
    return found.group(1)


@contextmanager
def sign_in(url: str, token: str) -> Iterator[httpx.Client]:
    """A client holding a console session opened with ``token`` (as a browser would)."""
    with httpx.Client(base_url=url, timeout=30, follow_redirects=False) as client:
        yield _signed_in(client, url, token)


def _signed_in(client: httpx.Client, url: str, token: str) -> httpx.Client:
    page = client.get("/ui/signin")
    assert page.status_code == 200, page.text
    r = client.post(
        "/ui/signin",
        data={"key": token, "csrf": csrf_of(page.text)},
        headers={"Origin": url, "Sec-Fetch-Site": "same-origin"},
    )
    assert r.status_code == 303, r.text
    return client
