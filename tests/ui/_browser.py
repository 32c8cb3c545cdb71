"""Debian's headless Chromium driven by Selenium through chromium-driver, for the
console's browser tests: the driver fixture and a :class:`Tour` of pages that checks each
for console errors and saves its screenshot."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait


def _which(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    pytest.fail(f"{names[0]} is not installed: run `make test` as root (it installs it)")


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = _which("chromium", "chromium-browser")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(_which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


class Tour:
    """Opens console pages in the browser, checks each for console errors and saves a
    screenshot of it."""

    def __init__(self, driver: webdriver.Chrome, url: str, shots: Path) -> None:
        self.driver, self.url, self.shots = driver, url, shots

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def check(self, shot: str, answered: int | None = None) -> None:
        """No console error on this page (but the page's own status, ``answered``, when
        it is one on purpose), and its screenshot."""
        errors = [
            e
            for e in self.driver.get_log("browser")
            if e["level"] == "SEVERE"
            and not (
                answered and e["source"] == "network" and f"status of {answered}" in e["message"]
            )
        ]
        assert errors == [], errors
        path = self.shots / f"{shot}.png"
        self.driver.save_screenshot(str(path))
        print(f"screenshot: {path}")

    def click(self, by: str, value: str) -> None:
        """Click and wait for the next page (a form's answer) to replace this one."""
        element = self.driver.find_element(by, value)
        element.click()
        WebDriverWait(self.driver, 10).until(staleness_of(element))

    def sign_in(self, token: str) -> None:
        self.open("/ui/signin")
        self.driver.find_element(By.ID, "key").send_keys(token)
        self.click(By.CSS_SELECTOR, "form.signin button")

    def sign_out(self) -> None:
        self.click(By.CSS_SELECTOR, "form[action='/ui/signout'] button")
        assert self.driver.current_url.endswith("/ui/signin")

    def text(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "body").text)
