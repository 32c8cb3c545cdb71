"""The model and endpoint pages served by `vigil serve` in a real headless Chromium: the
drift heatmap of a monitored model and its drill-down to the two distributions, then an
experiment concluded from the endpoint page (checked in the endpoint store and the
audit); no console error (a CSP violation is one), a screenshot of every page. The server
is a loopback one with authentication off, as on a laptop: every page says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import Select, WebDriverWait
from tests.experiments._registry import split_endpoint
from tests.serving.conftest import ServerThread
from tests.ui._browser import Tour

from vigil.app import Vigil
from vigil.experiments.config import parse_endpoint
from vigil.experiments.store import EndpointStore
from vigil.serving.config import ServingSettings
from vigil.serving.registry_provider import RegistryProvider

pytestmark = pytest.mark.browser


@pytest.fixture
def served(vigil: Vigil, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # The built home's traffic is from 2025: kept, not deleted by the 90-day retention the
    # server's compactor applies.
    monkeypatch.setenv("VIGIL_CAPTURE_RETENTION_DAYS", "100000")
    assert vigil.capture_settings.retention_days == 100000
    EndpointStore(vigil).create(parse_endpoint(split_endpoint()), actor="ada")
    provider = RegistryProvider(vigil, poll_interval=0.5, settings=ServingSettings(auth="off"))
    with ServerThread(vigil.serving_app(provider)) as server:
        yield server.url


def test_the_heatmap_drills_down_and_an_experiment_is_concluded(
    browser: webdriver.Chrome, served: str, vigil: Vigil, tmp_path: Path
) -> None:
    tour = Tour(browser, served, tmp_path)
    browser.delete_all_cookies()
    tour.open("/ui")
    assert "authentication is off" in tour.text().lower()
    tour.check("overview-auth-off")

    tour.open("/ui/models/churn")
    cells = browser.find_elements(By.CSS_SELECTOR, "svg a[href*='feature=age']")
    assert len(cells) == 2  # one cell per monitored window, each linking to its drill-down
    tour.check("model-heatmap")
    shifted = cells[-1]  # the second window, where age was shifted
    shifted.click()
    WebDriverWait(browser, 10).until(staleness_of(shifted))
    assert "feature=age" in browser.current_url
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart"), "the two distributions"
    tour.check("model-drill-down")

    tour.open("/ui/endpoints/checkout")
    tour.check("endpoint")
    form = "form[action='/ui/endpoints/checkout/conclude']"
    Select(browser.find_element(By.CSS_SELECTOR, form + " select[name='variant']")).select_by_value(
        "b"
    )
    browser.find_element(By.CSS_SELECTOR, form + " input[name='confirm']").click()
    tour.click(By.CSS_SELECTOR, form + " button")
    assert "checkout concluded: every request goes to b" in tour.text()
    tour.check("endpoint-concluded")
    config = EndpointStore(vigil).get("checkout")
    assert config.policy.kind == "fixed" and config.policy.variant == "b", config
    concluded = [e for e in vigil.registry.audit(limit=20) if e.action == "experiment.conclude"]
    assert concluded and concluded[0].actor == "http:anonymous", concluded
